//! With `[tls]`, the control plane serves gRPC over TLS only.

mod support;

use airlock_bundle::SigningKey;
use airlock_control_plane::api;
use airlock_control_plane::api::bundle_service_client::BundleServiceClient;
use airlock_control_plane::TlsFiles;
use std::time::Duration;
use support::{authed, Plane, ADMIN};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

#[tokio::test]
async fn a_tls_client_is_served_and_a_plaintext_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = dir.path().join("server.crt");
    let key_path = dir.path().join("server.key");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();

    let key = SigningKey::generate();
    let mut config = support::config(&dir.path().join("data"), &key);
    config.tls = Some(TlsFiles {
        cert: cert_path,
        key: key_path,
    });
    let plane = Plane::start_with(config).await;

    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(certified.cert.pem()))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://{}", plane.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("TLS handshake with the configured certificate");
    let list = BundleServiceClient::new(channel)
        .list(authed(api::BundleServiceListRequest {}, ADMIN))
        .await
        .unwrap();
    assert!(list.into_inner().bundles.is_empty());

    let plain = Channel::from_shared(format!("http://{}", plane.addr))
        .unwrap()
        .timeout(Duration::from_secs(5))
        .connect()
        .await;
    if let Ok(channel) = plain {
        let result = BundleServiceClient::new(channel)
            .list(authed(api::BundleServiceListRequest {}, ADMIN))
            .await;
        assert!(result.is_err(), "plaintext must not be served: {result:?}");
    }
    plane.stop().await;
}
