//! The control plane of `airlock dev`: sled data in `control-plane/` of the data
//! directory, the keys apart in `keys/` (0700: the bundle signing key and the audit
//! checkpoint key, never inside the control plane's own data), an operator token
//! (admin + reviewer) for the CLI and a node token for the proxy, and the default
//! policies published as the first bundle.

use super::dev::{is_addr_in_use, DevSecrets};
use airlock_bundle::{PublicKey, SigningKey};
use airlock_control_plane::{ControlPlane, ControlPlaneConfig, Role, TokenEntry};
use anyhow::Context as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long `airlock dev` waits for the proxy to install the first bundle.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// What the proxy and the printed instructions need of the control plane.
pub(super) struct Link {
    /// `http://127.0.0.1:PORT`.
    pub(super) url: String,
    /// The key file the proxy trusts.
    pub(super) public_key: PathBuf,
    /// The key file `airlock bundle push` signs with.
    pub(super) signing_key: PathBuf,
}

/// A bound control plane with its signing key.
pub(super) struct DevControlPlane {
    pub(super) plane: ControlPlane,
    pub(super) signing_key: PathBuf,
    pub(super) public_key: PathBuf,
    key: SigningKey,
}

impl DevControlPlane {
    /// `http://127.0.0.1:PORT`.
    pub(super) fn url(&self) -> String {
        format!("http://{}", self.plane.local_addr())
    }

    /// The reviewer page, `http://127.0.0.1:PORT/ui`.
    pub(super) fn ui_url(&self) -> String {
        match self.plane.ui_addr() {
            Some(addr) => format!("http://{addr}/ui"),
            None => "(no reviewer page)".to_owned(),
        }
    }

    /// Signs `policies` with the dev key and publishes (activates) it in process;
    /// returns the revision.
    pub(super) async fn publish_policies(&self, policies: &Path) -> anyhow::Result<String> {
        let built = airlock_bundle::build_from_dir(policies, None, &self.key)
            .with_context(|| format!("building a bundle from {}", policies.display()))?;
        let summary = self
            .plane
            .publish(built.bytes, "airlock-dev")
            .await
            .with_context(|| {
                format!(
                    "publishing {} (check it with `airlock policy test {}`)",
                    policies.display(),
                    policies.display()
                )
            })?;
        Ok(summary.revision)
    }
}

/// Creates (or reuses, with `--data-dir`) the signing key and starts the control
/// plane on `port`, or on a free port when that one is taken.
pub(super) async fn start(
    data_dir: &Path,
    port: u16,
    secrets: &DevSecrets,
    groups: &[String],
) -> anyhow::Result<DevControlPlane> {
    let (signing_key, public_key) = signing_key(data_dir)?;
    let key = SigningKey::from_file(&signing_key)?;
    let trusted = PublicKey::from_file(&public_key)?;
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    let tokens = vec![
        // Approvals: the operator reviews the held calls, in every group the
        // policies ask for; a second reviewer makes two-approver rules possible.
        TokenEntry::from_plain(
            "dev-operator",
            &secrets.operator_token,
            &[Role::Admin, Role::Reviewer],
        )
        .with_groups(&groups),
        TokenEntry::from_plain(
            "dev-reviewer-2",
            &secrets.second_reviewer_token,
            &[Role::Reviewer],
        )
        .with_groups(&groups),
        TokenEntry::from_plain("dev-proxy", &secrets.node_token, &[Role::Node]),
    ];
    let mut port = port;
    loop {
        let mut config = ControlPlaneConfig::new(
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            data_dir.join("control-plane"),
            vec![trusted.clone()],
            tokens.clone(),
        );
        // Approvals: the reviewer page, on a free loopback port.
        config.ui_listen = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        // The audit key outside the control plane's data, like in production.
        config.audit.signing_key = Some(data_dir.join("keys").join("audit-signing.key"));
        match ControlPlane::start(config).await {
            Ok(plane) => {
                return Ok(DevControlPlane {
                    plane,
                    signing_key,
                    public_key,
                    key,
                })
            }
            Err(err) if port != 0 && is_addr_in_use(&err) => {
                eprintln!("control-plane port {port} is taken; using a free port instead");
                port = 0;
            }
            Err(err) => return Err(err).context("starting the control plane"),
        }
    }
}

/// The reviewer groups the policies' decisions ask for (at least `dba` and
/// `security`, the default bundle's).
pub(super) fn reviewer_groups(policies: &Path) -> anyhow::Result<Vec<String>> {
    let bundle = airlock_policy::Bundle::from_dir(policies)
        .with_context(|| format!("reading {}", policies.display()))?;
    let mut groups = airlock_policy::proof::reviewer_groups_of(&bundle).with_context(|| {
        format!(
            "checking {} (try `airlock policy test`)",
            policies.display()
        )
    })?;
    groups.extend(["dba".to_owned(), "security".to_owned()]);
    Ok(groups.into_iter().collect())
}

/// `keys/dev-signing.{key,pub}` in the data directory, generated on first use.
fn signing_key(data_dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let keys = data_dir.join("keys");
    airlock_control_plane::secrets::create_private_dir(&keys)
        .with_context(|| format!("creating {}", keys.display()))?;
    let prefix = keys.join("dev-signing");
    let pair = (prefix.with_extension("key"), prefix.with_extension("pub"));
    if pair.0.exists() && pair.1.exists() {
        return Ok(pair);
    }
    Ok(airlock_bundle::write_keypair(&prefix)?)
}

/// Waits until the proxy serves a bundle, so the printed instructions hold.
pub(super) async fn wait_ready(proxy: &airlock_data_plane::Proxy) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = proxy.policy();
    while store.revision().is_none() {
        if started.elapsed() > READY_WITHIN {
            anyhow::bail!(
                "the proxy did not receive the first bundle from the in-process control plane within {READY_WITHIN:?}; see the log file"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
