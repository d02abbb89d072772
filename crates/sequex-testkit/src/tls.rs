//! A test certificate authority and a server certificate it signed, for a `wss://` fake
//! exchange that no system trusts until told to.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Error;

/// A CA and a certificate for `127.0.0.1` and `localhost` that it signed.
#[derive(Debug)]
pub struct TestPki {
    /// The CA certificate, PEM: what a client must trust.
    pub ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
}

impl TestPki {
    /// Generates a fresh CA and server certificate.
    pub fn new() -> Result<Self, Error> {
        let rcgen_error =
            |e: rcgen::Error| Error::Setup(format!("generating test certificates: {e}"));
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Sequex test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(rcgen_error)?)
            .map_err(rcgen_error)?;
        let key = KeyPair::generate().map_err(rcgen_error)?;
        let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .map_err(rcgen_error)?
            .signed_by(&key, &ca)
            .map_err(rcgen_error)?;
        Ok(TestPki {
            ca_pem: ca.pem(),
            server_chain: vec![server.der().clone()],
            server_key: key.serialize_der(),
        })
    }

    /// The server side of TLS with the signed certificate.
    pub fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, Error> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(self.server_chain.clone(), key)
            .map_err(|e| Error::Setup(format!("test TLS server config: {e}")))?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}
