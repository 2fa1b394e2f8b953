//! TLS material for talking to the API server: one rustls configuration
//! shared by every connection (calls and watches), so all of them trust
//! (and present) exactly the same things. Everything is validated here: a
//! bad certificate or key is a config error naming the part, never a panic.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// The certificates and key that decide whom we trust and who we are.
pub struct TlsMaterial {
    /// Trust anchors for the API server's certificate.
    pub roots: Vec<CertificateDer<'static>>,
    /// Client certificate and key, when the credentials are mTLS.
    pub identity: Option<Identity>,
    /// Only ever set when the kubeconfig says `insecure-skip-tls-verify`.
    pub insecure: bool,
}

/// A client certificate chain and its private key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Parses a certificate chain and a key (PKCS#1, PKCS#8 or SEC1).
    /// Whether they belong together is checked when the TLS configuration
    /// is built.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Identity, String> {
        Ok(Identity {
            chain: certs_from_pem(cert_pem, "client certificate")?,
            key: key_from_pem(key_pem, "client key")?,
        })
    }
}

/// Ready-to-use TLS configurations, built once per connection config.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) rustls: Arc<ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls{..}")
    }
}

/// Every certificate in a PEM bundle, in order. ureq's `Certificate::from_pem`
/// keeps only the first one, which silently drops the rest of a CA bundle.
pub fn certs_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem) {
        certs.push(item.map_err(|e| format!("{what}: bad PEM: {e}"))?);
    }
    if certs.is_empty() {
        return Err(format!("{what}: no PEM certificate found"));
    }
    Ok(certs)
}

/// The first private key (PKCS#1, PKCS#8 or SEC1) in a PEM file.
pub fn key_from_pem(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => format!("{what}: no PEM private key found"),
        e => format!("{what}: bad PEM: {e}"),
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds both configurations, or says precisely which part is unusable.
pub(crate) fn build(material: &TlsMaterial) -> Result<Tls, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| format!("TLS setup: {e}"))?;

    let builder = if material.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(
                provider.signature_verification_algorithms,
            )))
    } else {
        let mut store = RootCertStore::empty();
        let mut rejected = Vec::new();
        for (i, cert) in material.roots.iter().enumerate() {
            if let Err(e) = store.add(cert.clone()) {
                rejected.push(format!(
                    "certificate {} of {}: {e}",
                    i + 1,
                    material.roots.len()
                ));
            }
        }
        if store.is_empty() {
            return Err(if rejected.is_empty() {
                "no certificate authority configured: TLS to the API server must be verified"
                    .to_string()
            } else {
                format!("certificate authority unusable: {}", rejected.join("; "))
            });
        }
        for r in &rejected {
            log::warn!("kube: ignoring certificate authority {r}");
        }
        builder.with_root_certificates(store)
    };

    let rustls_config = match &material.identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .map_err(|e| format!("client certificate/key rejected: {e}"))?,
        None => builder.with_no_client_auth(),
    };

    Ok(Tls {
        rustls: Arc::new(rustls_config),
    })
}

/// Accepts any server certificate, but still checks the handshake
/// signatures. Used only when the kubeconfig explicitly asks for it.
#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
