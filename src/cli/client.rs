//! The connection to a running Accord server: the address (TLS for `https://`, with an
//! optional CA bundle and client certificate), one eager connect that turns "nothing
//! answers" into one clear line, and the metadata every request carries — the bearer
//! token when one is given, otherwise the caller's name (`x-accord-actor`, which only a
//! server in local development mode accepts) — and, when given, the correlation id.
//!
//! Every call has a 30 s deadline, except on the second, unbounded channel: a call whose
//! reply comes only when the work is done (verifying the whole log, importing an export)
//! takes as long as the log is big.

use std::{path::PathBuf, time::Duration};

use tonic::{
    Request, Response, Status,
    metadata::{AsciiMetadataValue, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

use super::output::{ExitClass, Failure};
use crate::config::DEFAULT_SERVER;
use crate::domain::values::quote;
use crate::proto::{
    alignment_service_client::AlignmentServiceClient, audit_service_client::AuditServiceClient,
    command_service_client::CommandServiceClient, webhook_service_client::WebhookServiceClient,
};
use crate::security::guard::{ACTOR_HEADER, AUTHORIZATION_HEADER, CORRELATION_HEADER};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub type Commands = CommandServiceClient<InterceptedService<Channel, RequestMetadata>>;
pub type Queries = AlignmentServiceClient<InterceptedService<Channel, RequestMetadata>>;
pub type Audit = AuditServiceClient<InterceptedService<Channel, RequestMetadata>>;
pub type WebhookAdmin = WebhookServiceClient<InterceptedService<Channel, RequestMetadata>>;

/// The caller's identity when neither --as nor ACCORD_AS is given: `$USER@localhost`.
pub fn default_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .ok()
        .filter(|u| !u.is_empty() && u.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "anonymous".to_owned());
    format!("{user}@localhost")
}

/// The `sub` claim of a JWT, read without verifying it (the server verifies); `None`
/// for anything else, such as a service token.
pub fn token_subject(token: &str) -> Option<String> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let mut parts = token.trim().split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
}

/// The server URL: `host:port` gets `http://`; anything tonic cannot parse is refused.
pub fn server_url(given: Option<&str>) -> Result<String, Failure> {
    let given = given.map(str::trim).filter(|s| !s.is_empty()).unwrap_or(DEFAULT_SERVER);
    let url = if given.contains("://") { given.to_owned() } else { format!("http://{given}") };
    Endpoint::from_shared(url.clone()).map_err(|_| {
        Failure::invalid(format!("--server {} is not an address; expected e.g. {DEFAULT_SERVER}", quote(given)))
    })?;
    Ok(url)
}

/// How the client proves who it is, and how it reaches the server.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// A bearer token (JWT or service token); without one, the caller's name is sent for
    /// a server in local development mode.
    pub token: Option<String>,
    /// CA bundle to verify the server's certificate (`https://` servers); default: the
    /// system's roots.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key, for servers that verify clients (mTLS).
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// Adds the credentials and the correlation id to every request.
#[derive(Clone, Debug)]
pub struct RequestMetadata {
    actor: AsciiMetadataValue,
    authorization: Option<AsciiMetadataValue>,
    correlation_id: Option<AsciiMetadataValue>,
}

impl Interceptor for RequestMetadata {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        match &self.authorization {
            Some(authorization) => request.metadata_mut().insert(AUTHORIZATION_HEADER, authorization.clone()),
            None => request.metadata_mut().insert(ACTOR_HEADER, self.actor.clone()),
        };
        if let Some(correlation_id) = &self.correlation_id {
            request.metadata_mut().insert(CORRELATION_HEADER, correlation_id.clone());
        }
        Ok(request)
    }
}

/// A connected client acting as one principal.
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    /// The same server without the per-call deadline (connected on first use).
    unbounded: Channel,
    server: String,
    actor: String,
    token: Option<String>,
    metadata: RequestMetadata,
}

impl Client {
    /// Connects now, so that a missing server is reported before anything else happens.
    pub async fn connect(
        server: &str,
        actor: &str,
        credentials: &Credentials,
        correlation_id: Option<&str>,
    ) -> Result<Client, Failure> {
        let metadata = request_metadata(actor, credentials.token.as_deref(), correlation_id)?;
        let endpoint = endpoint(server, credentials)?;
        let channel = open_channel(server, endpoint.clone()).await?;
        let unbounded = endpoint.connect_lazy();
        Ok(Client {
            channel,
            unbounded,
            server: server.to_owned(),
            actor: actor.to_owned(),
            token: credentials.token.clone(),
            metadata,
        })
    }

    /// The same connection, acting as someone else (local development mode: with a
    /// token, the server takes the caller from the token).
    pub fn acting_as(&self, actor: &str, correlation_id: Option<&str>) -> Result<Client, Failure> {
        let metadata = request_metadata(actor, self.token.as_deref(), correlation_id)?;
        Ok(Client {
            channel: self.channel.clone(),
            unbounded: self.unbounded.clone(),
            server: self.server.clone(),
            actor: actor.to_owned(),
            token: self.token.clone(),
            metadata,
        })
    }

    pub fn actor(&self) -> &str {
        &self.actor
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn commands(&self) -> Commands {
        CommandServiceClient::with_interceptor(self.channel.clone(), self.metadata.clone())
    }

    pub fn queries(&self) -> Queries {
        AlignmentServiceClient::with_interceptor(self.channel.clone(), self.metadata.clone())
    }

    pub fn audit(&self) -> Audit {
        AuditServiceClient::with_interceptor(self.channel.clone(), self.metadata.clone())
    }

    pub fn webhooks(&self) -> WebhookAdmin {
        WebhookServiceClient::with_interceptor(self.channel.clone(), self.metadata.clone())
    }

    /// The audit service without a call deadline, for calls that answer only when the
    /// whole log is done (verify, import).
    pub fn audit_unbounded(&self) -> Audit {
        AuditServiceClient::with_interceptor(self.unbounded.clone(), self.metadata.clone())
    }

    /// The reply of a call, or the server's refusal as a one-line failure.
    pub fn reply<T>(&self, result: Result<Response<T>, Status>) -> Result<T, Failure> {
        result.map(Response::into_inner).map_err(|status| Failure::from_status(&status, &self.server))
    }
}

fn request_metadata(
    actor: &str,
    token: Option<&str>,
    correlation_id: Option<&str>,
) -> Result<RequestMetadata, Failure> {
    if actor.is_empty() || !actor.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Failure::invalid(format!(
            "--as {} is not a principal: use printable ASCII without spaces, e.g. pm@example.com",
            quote(actor)
        )));
    }
    let actor = MetadataValue::try_from(actor)
        .map_err(|_| Failure::invalid(format!("--as {} cannot be sent as request metadata", quote(actor))))?;
    let correlation_id = match correlation_id {
        None => None,
        Some(id) if !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_graphic()) => {
            Some(MetadataValue::try_from(id).map_err(|_| Failure::invalid("--correlation-id cannot be sent"))?)
        }
        Some(id) => {
            return Err(Failure::invalid(format!(
                "--correlation-id {} must be 1-128 printable ASCII characters without spaces",
                quote(id)
            )));
        }
    };
    let authorization = match token.map(str::trim) {
        None => None,
        Some(token) => {
            let mut value = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
                Failure::invalid("the token is not printable ASCII; check --token, ACCORD_TOKEN or --token-file")
            })?;
            value.set_sensitive(true);
            Some(value)
        }
    };
    Ok(RequestMetadata { actor, authorization, correlation_id })
}

/// The server's endpoint with the connect timeout, TLS for `https://` (and no call deadline).
fn endpoint(server: &str, credentials: &Credentials) -> Result<Endpoint, Failure> {
    let mut endpoint = Endpoint::from_shared(server.to_owned())
        .map(|endpoint| endpoint.connect_timeout(CONNECT_TIMEOUT))
        .map_err(|_| {
            Failure::invalid(format!("--server {} is not an address; expected e.g. {DEFAULT_SERVER}", quote(server)))
        })?;
    let tls_asked = credentials.tls_ca.is_some() || credentials.client_cert.is_some();
    if server.starts_with("https://") || tls_asked {
        if !server.starts_with("https://") {
            return Err(Failure::invalid(format!(
                "--tls-ca/--client-cert need an https:// server; --server is {server}"
            )));
        }
        let read = |flag: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| Failure::invalid(format!("{flag} {}: {e}", path.display())))
        };
        let mut tls = match &credentials.tls_ca {
            Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("--tls-ca", ca)?)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        match (&credentials.client_cert, &credentials.client_key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(read("--client-cert", cert)?, read("--client-key", key)?));
            }
            (None, None) => {}
            _ => return Err(Failure::invalid("--client-cert and --client-key go together")),
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| Failure::invalid(format!("TLS settings: {e}")))?;
    }
    Ok(endpoint)
}

async fn open_channel(server: &str, endpoint: Endpoint) -> Result<Channel, Failure> {
    let endpoint = endpoint.timeout(CALL_TIMEOUT);
    endpoint.connect().await.map_err(|error| {
        Failure::new(
            ExitClass::Unavailable,
            format!(
                "cannot reach an Accord server at {server} ({}); start one with `accord serve`, \
                 or point --server / ACCORD_SERVER at a running one",
                root_cause(&error)
            ),
        )
    })
}

/// The innermost reason of an error chain ("Connection refused (os error 111)").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    super::output::one_line(&current.to_string())
}
