//! End-to-end: JWT bearer identities. A real JWKS endpoint on 127.0.0.1 stands in
//! for the identity provider; `airlock proxy` verifies tokens against it, hands the
//! claims to the policy, refetches the keys on rotation, and refuses every forged,
//! expired, misdirected or algorithm-swapped token with 401 `invalid_token`.

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::{demo_server, ProxyBuilder, RunningProxy, AGENT_KEY};

const ISSUER: &str = "https://idp.test/";
const AUDIENCE: &str = "airlock";

/// Tool calls need the `acme` tenant claim and the `agents` group; the rest passes.
const POLICY: &str = r#"package airlock

import rego.v1

default decision := {"verdict": "deny", "reasons": ["test.not_acme"], "message": "only acme agents may call tools"}

decision := {"verdict": "allow"} if input.message.method != "tools/call"

decision := {"verdict": "allow"} if {
	input.message.method == "tools/call"
	input.identity.claims.tenant == "acme"
	"agents" in input.identity.groups
	input.identity.kind == "agent"
}
"#;

/// A stand-in identity provider serving a JWK Set it can rotate.
struct Idp {
    jwks_url: String,
    served: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

impl Idp {
    async fn start(keys: &[(&str, &ed25519_dalek::SigningKey)]) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let served = Arc::new(Mutex::new(jwks(keys)));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (s, f) = (Arc::clone(&served), Arc::clone(&fetches));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (s, f) = (Arc::clone(&s), Arc::clone(&f));
                tokio::spawn(async move {
                    let service = service_fn(move |_req| {
                        f.fetch_add(1, Ordering::SeqCst);
                        let body = s.lock().unwrap().to_string();
                        async move {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from(body),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Idp {
            jwks_url,
            served,
            fetches,
        }
    }

    fn rotate(&self, keys: &[(&str, &ed25519_dalek::SigningKey)]) {
        *self.served.lock().unwrap() = jwks(keys);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn jwks(keys: &[(&str, &ed25519_dalek::SigningKey)]) -> Value {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(kid, key)| {
            json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                   "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes())})
        })
        .collect();
    json!({"keys": keys})
}

fn signing_key(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a good token; tests change what they attack.
fn claims() -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "agent-7", "exp": now() + 600,
           "groups": ["agents"], "tenant": "acme"})
}

fn sign(kid: &str, key: &ed25519_dalek::SigningKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    let der = key.to_pkcs8_der().expect("pkcs8");
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der.as_bytes())).expect("sign")
}

fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn proxy(jwks_url: &str, demo_url: &str) -> RunningProxy {
    ProxyBuilder::new()
        .upstream("demo", demo_url, "prod")
        .policy(POLICY)
        .table(&format!(
            "[[jwt]]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_url = \"{jwks_url}\"\n"
        ))
        .start()
}

/// The status, `WWW-Authenticate` and error message of an `initialize` with `token`.
async fn ping(proxy: &RunningProxy, token: &str) -> (u16, String, String) {
    let reply = proxy
        .client("demo", Some(token))
        .try_initialize("2025-06-18")
        .await;
    let challenge = reply
        .headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let message = reply.last()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (reply.status.as_u16(), challenge, message)
}

/// A tools/call with `token`: `None` when allowed, else the refusal's reason.
async fn call(proxy: &RunningProxy, token: &str) -> Option<String> {
    let mut client = proxy.client("demo", Some(token));
    client.initialize().await;
    let reply = client
        .call_tool("query", json!({"sql": "SELECT count(*) FROM customers"}))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let error = reply.last().get("error")?;
    Some(
        error["data"]["reasons"][0]
            .as_str()
            .unwrap_or("?")
            .to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_token_is_an_identity_whose_claims_the_policy_sees() {
    let key = signing_key(1);
    let idp = Idp::start(&[("k1", &key)]).await;
    let demo = demo_server();
    let proxy = proxy(&idp.jwks_url, &demo.url);

    assert_eq!(call(&proxy, &sign("k1", &key, &claims())).await, None);
    let mut other_tenant = claims();
    other_tenant["tenant"] = json!("globex");
    assert_eq!(
        call(&proxy, &sign("k1", &key, &other_tenant)).await,
        Some("test.not_acme".to_owned())
    );
    // A single group as a string counts too; API keys keep working beside tokens.
    let mut one_group = claims();
    one_group["groups"] = json!("agents");
    assert_eq!(call(&proxy, &sign("k1", &key, &one_group)).await, None);
    assert_eq!(ping(&proxy, AGENT_KEY).await.0, 200);
    assert_eq!(idp.fetches(), 1, "keys fetched once at start-up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_misdirected_tokens_get_401_invalid_token() {
    let key = signing_key(1);
    let idp = Idp::start(&[("k1", &key)]).await;
    let demo = demo_server();
    let proxy = proxy(&idp.jwks_url, &demo.url);
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        c
    };
    let public = key.verifying_key().to_bytes();
    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some("k1".into());
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            sign("k1", &key, &edit(&|c| c["exp"] = json!(now() - 120))),
            "expired",
        ),
        (
            "not yet valid",
            sign("k1", &key, &edit(&|c| c["nbf"] = json!(now() + 600))),
            "not valid yet",
        ),
        (
            "wrong audience",
            sign("k1", &key, &edit(&|c| c["aud"] = json!("someone-else"))),
            "audience",
        ),
        (
            "untrusted issuer",
            sign(
                "k1",
                &key,
                &edit(&|c| c["iss"] = json!("https://evil.test/")),
            ),
            "not trusted",
        ),
        (
            "no exp",
            sign(
                "k1",
                &key,
                &edit(&|c| drop(c.as_object_mut().unwrap().remove("exp"))),
            ),
            "exp",
        ),
        (
            "no subject",
            sign(
                "k1",
                &key,
                &edit(&|c| drop(c.as_object_mut().unwrap().remove("sub"))),
            ),
            "sub",
        ),
        (
            "signed by another key under the known kid",
            sign("k1", &signing_key(9), &claims()),
            "signature",
        ),
        (
            "alg none",
            unsigned(&json!({"alg": "none", "kid": "k1"}), &claims()),
            "JWT",
        ),
        (
            "HS256 keyed with the public key",
            jsonwebtoken::encode(&hs256, &claims(), &EncodingKey::from_secret(&public)).unwrap(),
            "not accepted",
        ),
    ];
    for (what, token, hint) in cases {
        let (status, challenge, message) = ping(&proxy, &token).await;
        assert_eq!(status, 401, "{what}: {message}");
        assert_eq!(
            challenge, "Bearer realm=\"airlock\", error=\"invalid_token\"",
            "{what}"
        );
        assert!(message.contains(hint), "{what}: {message}");
    }
    assert_eq!(
        ping(&proxy, &sign("k1", &key, &claims())).await.0,
        200,
        "the good token still passes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_fetched_on_first_sight_and_refetches_are_rate_limited() {
    let (old, new) = (signing_key(1), signing_key(2));
    let idp = Idp::start(&[("k1", &old)]).await;
    let demo = demo_server();
    let proxy = proxy(&idp.jwks_url, &demo.url);
    assert_eq!(ping(&proxy, &sign("k1", &old, &claims())).await.0, 200);
    let before = idp.fetches();

    // The provider rotates: k2 in, k1 withdrawn. Within 10 s of start-up an unknown
    // kid does not hammer it.
    idp.rotate(&[("k2", &new)]);
    let (status, _, message) = ping(&proxy, &sign("k2", &new, &claims())).await;
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("`k2`"), "{message}");
    assert_eq!(idp.fetches(), before, "no refetch inside the rate limit");
    let old_token = sign("k1", &old, &claims());
    assert_eq!(ping(&proxy, &old_token).await.0, 200, "k1 still known here");

    tokio::time::sleep(std::time::Duration::from_millis(10_100)).await;
    // Eight agents present the new key at once: one refetch serves them all.
    let token = sign("k2", &new, &claims());
    let statuses = futures_util::future::join_all((0..8).map(|_| ping(&proxy, &token))).await;
    assert!(statuses.iter().all(|(s, _, _)| *s == 200), "{statuses:?}");
    assert_eq!(idp.fetches(), before + 1, "one refetch for the new kid");
    // The withdrawn key's token, verified (and remembered) before, is refused now.
    let (status, _, message) = ping(&proxy, &old_token).await;
    assert_eq!(
        status, 401,
        "a withdrawn key's token must stop working: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_jwks_fails_closed_for_tokens_and_says_why() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", closed.local_addr().unwrap());
    drop(closed);
    let demo = demo_server();
    let proxy = proxy(&url, &demo.url);
    let (status, _, message) = ping(&proxy, &sign("k1", &signing_key(1), &claims())).await;
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("JWKS"), "{message}");
    assert_eq!(ping(&proxy, AGENT_KEY).await.0, 200, "API keys still work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_url_over_https_is_verified_with_the_outbound_trust() {
    let key = signing_key(4);
    let server = support::tls::TlsServer::start(jwks(&[("k4", &key)])).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = server.write_cert(dir.path(), "idp-ca.pem");
    let demo = demo_server();
    let table = |outbound: &str| {
        format!(
            "[[jwt]]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_url = \"{}/jwks.json\"\n{outbound}",
            server.base
        )
    };
    let token = sign("k4", &key, &claims());

    let untrusting = ProxyBuilder::new()
        .upstream("demo", &demo.url, "prod")
        .policy(POLICY)
        .table(&table(""))
        .start();
    let (status, _, message) = ping(&untrusting, &token).await;
    assert_eq!(status, 401, "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");

    let trusting = ProxyBuilder::new()
        .upstream("demo", &demo.url, "prod")
        .policy(POLICY)
        .table(&table(&format!(
            "[outbound_tls]\nca_certs = [\"{}\"]\n",
            ca.display()
        )))
        .start();
    assert_eq!(ping(&trusting, &token).await.0, 200);
}
