//! `[outbound_tls]`: whom the proxy trusts when it connects out over TLS (to
//! `https://` upstreams and `jwks_url`s).
//!
//! ```toml
//! [outbound_tls]
//! ca_certs = ["corp-root-ca.pem"]   # trusted besides the system's roots (PEM, relative to this file)
//! ```
//! Certificates are always verified against the host name; there is no switch to
//! turn verification off.

use super::Validator;
use crate::config::ConfigError;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutboundTls {
    #[serde(default)]
    ca_certs: Vec<PathBuf>,
}

impl Validator<'_> {
    /// Reads every CA file now, so a bad one stops the start-up naming it.
    pub(super) fn outbound_ca_certs(
        &self,
        raw: RawOutboundTls,
    ) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
        let mut all = Vec::new();
        for (i, file) in raw.ca_certs.iter().enumerate() {
            let key = format!("outbound_tls.ca_certs[{i}]");
            let path = self.anchor(file);
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
                .and_then(|certs| certs.collect::<Result<_, _>>())
                .map_err(|e| {
                    self.invalid(
                        &key,
                        format!("cannot read PEM certificates from {} ({e})", path.display()),
                        "give a PEM file with -----BEGIN CERTIFICATE----- blocks",
                    )
                })?;
            let mut check = rustls::RootCertStore::empty();
            let (added, refused) = check.add_parsable_certificates(certs.iter().cloned());
            if added == 0 || refused > 0 {
                return Err(self.invalid(
                    &key,
                    format!(
                        "{} has {added} usable and {refused} unusable CA certificates",
                        path.display()
                    ),
                    "every block must be an X.509 CA certificate in PEM",
                ));
            }
            all.extend(certs);
        }
        Ok(all)
    }
}
