//! Who may call what. Every call passes the guard (`guard`), which authenticates the
//! caller from a bearer token — a JWT verified offline (`jwt`) or a static service token
//! (`service_tokens`) — or, in local development mode only, from the `x-accord-actor`
//! metadata entry; then checks that one of the caller's service roles grants the right
//! the RPC needs (`rights`). Decision rights on an initiative (who signs for which
//! function) stay in the domain; the guard only decides which kind of client may reach
//! which RPC. Configuration comes from a TOML file (`config`); TLS from PEM files (`tls`).

pub mod config;
pub mod cors;
pub mod guard;
pub mod jwt;
pub mod rights;
pub mod service_tokens;
pub mod tls;

use std::fmt;

use crate::domain::values::Principal;

pub use config::{ConfigError, SecurityConfig};
pub use guard::{GuardLayer, Limits};
pub use jwt::{JwtVerifier, VerificationKey};
pub use rights::{Right, Role, Roles};
pub use service_tokens::ServiceTokens;

/// How the principal of a call was established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A JWT signed by a configured key.
    Jwt { issuer: String },
    /// A static service token from the configuration file.
    ServiceToken,
    /// Local development mode: the name the caller sent, unverified.
    LocalDevelopment,
}

/// The authenticated caller of a request, attached to it by the guard. Handlers take
/// the actor from here and never from a request field.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    pub roles: Roles,
    pub credential: Credential,
}

impl Caller {
    /// Administrators may manage any initiative (the domain's `Authority`).
    pub fn is_administrator(&self) -> bool {
        self.roles.contains(Role::Admin)
    }
}

/// Ids that tie the events of a request to the conversation it belongs to.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
}

/// Why a call could not be authenticated. The message goes back to the caller as
/// `UNAUTHENTICATED`; it never contains the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthError(pub String);

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the server establishes callers.
#[derive(Clone, Debug)]
pub enum Authenticator {
    /// No authentication configured: the caller is whoever `x-accord-actor` names. Only
    /// allowed while the server listens on a loopback address.
    LocalDevelopment,
    /// Bearer tokens: JWTs and/or static service tokens.
    Tokens { jwt: Option<JwtVerifier>, service_tokens: ServiceTokens },
}

impl Authenticator {
    pub fn is_local_development(&self) -> bool {
        matches!(self, Authenticator::LocalDevelopment)
    }

    /// Authenticates a bearer token (already stripped of its `Bearer ` prefix).
    pub fn authenticate_token(&self, token: &str) -> Result<Caller, AuthError> {
        let Authenticator::Tokens { jwt, service_tokens } = self else {
            return Err(AuthError("bearer tokens are not accepted in local development mode".into()));
        };
        if let Some((principal, roles)) = service_tokens.find(token) {
            return Ok(Caller { principal: principal.clone(), roles: *roles, credential: Credential::ServiceToken });
        }
        match jwt {
            Some(verifier) if jwt::looks_like_jwt(token) => verifier.verify(token),
            _ => Err(AuthError("the bearer token is not a known service token".into())),
        }
    }
}
