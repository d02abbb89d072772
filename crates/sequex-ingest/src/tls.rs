//! Whom the daemon trusts when it connects to an exchange over TLS: the system's trust
//! store (what the image's or host's CA bundle holds, `SSL_CERT_FILE` and `SSL_CERT_DIR`
//! included, so a network that inspects TLS with its own CA works as it does for every
//! other program there), plus the CAs of `--ws-tls-ca`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Why no TLS client could be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `--ws-tls-ca` could not be read or holds no certificate.
    #[error("cannot use --ws-tls-ca {path}: {detail}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Nothing to verify an exchange's certificate with.
    #[error(
        "no trusted CA certificates: the system trust store is empty or unreadable ({detail}); install the ca-certificates package or pass --ws-tls-ca"
    )]
    NoRoots {
        /// What the store loader said.
        detail: String,
    },
}

/// The rustls client configuration of every websocket connection.
pub(crate) fn client_config(
    extra_ca: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(system.certs);
    let errors: Vec<String> = system.errors.iter().map(ToString::to_string).collect();
    if let Some(path) = extra_ca {
        let ca_error = |detail: String| TlsError::CaFile {
            path: path.to_path_buf(),
            detail,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_error(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| ca_error(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error("no PEM certificate in it".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots {
            detail: if errors.is_empty() {
                "no certificates found".into()
            } else {
                errors.join("; ")
            },
        });
    }
    tracing::info!(
        system = added,
        extra = extra_ca.map(|p| p.display().to_string()),
        "TLS trust store loaded"
    );
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}
