//! TLS for the gRPC listener (rustls, through tonic): the server's certificate chain and
//! key from PEM files and, for service-to-service callers, optional client-certificate
//! verification (mTLS) against a CA bundle.

use std::path::PathBuf;

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// Whether clients must present a certificate signed by the client CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientAuth {
    /// Every connection must present a valid client certificate.
    Required,
    /// A client certificate is verified when presented; connections without one are accepted.
    Optional,
}

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
    /// CA bundle for client certificates; `None` turns mTLS off.
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// PEM contents, read once at start.
#[derive(Clone, Debug)]
pub struct TlsMaterial {
    pub certificate: Vec<u8>,
    pub key: Vec<u8>,
    pub client_ca: Option<Vec<u8>>,
    pub client_auth: ClientAuth,
}

impl TlsFiles {
    pub fn read(&self) -> Result<TlsMaterial, String> {
        let read = |what: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| format!("cannot read the TLS {what} {}: {e}", path.display()))
        };
        Ok(TlsMaterial {
            certificate: read("certificate", &self.certificate)?,
            key: read("key", &self.key)?,
            client_ca: self.client_ca.as_ref().map(|path| read("client CA", path)).transpose()?,
            client_auth: self.client_auth,
        })
    }
}

impl TlsMaterial {
    pub fn server_config(&self) -> ServerTlsConfig {
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(&self.certificate, &self.key));
        if let Some(ca) = &self.client_ca {
            config = config
                .client_ca_root(Certificate::from_pem(ca))
                .client_auth_optional(self.client_auth == ClientAuth::Optional);
        }
        config
    }
}
