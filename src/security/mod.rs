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
pub mod oidc;
pub mod rights;
pub mod service_tokens;
pub mod tls;

use std::{collections::BTreeSet, fmt, net::SocketAddr};

use crate::domain::values::Principal;

pub use config::{ConfigError, Security, SecurityConfig};
pub use guard::{DomainStatus, GuardLayer, Limits};
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
    /// A board session cookie, from a sign-in with this OpenID provider.
    Session { issuer: String },
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
    /// The teams the caller belongs to now (`team:NAME`, from the token's group claim):
    /// a stakeholder role given to one of them is the caller's too.
    pub teams: BTreeSet<Principal>,
}

/// Most teams one caller is taken to belong to (a token may list thousands of groups;
/// the first ones in name order are kept).
pub const MAX_TEAMS: usize = 256;

/// The teams named by a group claim or header: each name as `team:NAME` (a name that
/// already carries the prefix is kept as it is). A name that cannot be a principal
/// (whitespace, too long) is left out: no stakeholder role can name it either.
pub fn teams_of<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<Principal> {
    let mut teams: BTreeSet<Principal> = names
        .into_iter()
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .filter_map(|name| {
            let name = name.strip_prefix(crate::domain::values::TEAM_PREFIX).unwrap_or(name);
            Principal::team("groups", name).ok()
        })
        .collect();
    while teams.len() > MAX_TEAMS {
        teams.pop_last();
    }
    teams
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

    /// Whether the server may listen on every one of `addresses`: with authentication,
    /// anywhere; in local development mode only on loopback addresses, since anyone who
    /// could reach another could act as anyone. `serve` checks its bound listeners, and
    /// `accord serve` its flags before it binds anything, through this one rule.
    pub fn may_listen_on(&self, addresses: impl IntoIterator<Item = SocketAddr>) -> Result<(), Unprotected> {
        match addresses.into_iter().find(|address| self.is_local_development() && !address.ip().is_loopback()) {
            Some(address) => Err(Unprotected(address)),
            None => Ok(()),
        }
    }

    /// Authenticates a bearer token (already stripped of its `Bearer ` prefix).
    pub fn authenticate_token(&self, token: &str) -> Result<Caller, AuthError> {
        let Authenticator::Tokens { jwt, service_tokens } = self else {
            return Err(AuthError("bearer tokens are not accepted in local development mode".into()));
        };
        if let Some((principal, roles)) = service_tokens.find(token) {
            return Ok(Caller {
                principal: principal.clone(),
                roles: *roles,
                credential: Credential::ServiceToken,
                teams: BTreeSet::new(),
            });
        }
        match jwt {
            Some(verifier) if jwt::looks_like_jwt(token) => verifier.verify(token),
            _ => Err(AuthError("the bearer token is not a known service token".into())),
        }
    }
}

/// An address local development mode may not listen on: it is not a loopback address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unprotected(pub SocketAddr);

impl fmt::Display for Unprotected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refusing to listen on {} without authentication: anyone who can reach it could act as anyone. \
             Configure callers with --auth-config FILE (JWTs or service tokens; see README \"Security\"), or \
             listen on a loopback address such as 127.0.0.1 for local development",
            self.0
        )
    }
}

impl std::error::Error for Unprotected {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_become_teams_bounded_in_number_and_names_that_cannot_be_principals_are_left_out() {
        let teams = teams_of(["design-leads", " team:ux ", "", "has space", "design-leads"]);
        assert_eq!(teams.iter().map(Principal::as_str).collect::<Vec<_>>(), ["team:design-leads", "team:ux"]);
        let many: Vec<String> = (0..MAX_TEAMS + 50).map(|n| format!("g{n:04}")).collect();
        let teams = teams_of(many.iter().map(String::as_str));
        assert_eq!(teams.len(), MAX_TEAMS);
        assert_eq!(teams.first().map(Principal::as_str), Some("team:g0000"));
    }

    #[test]
    fn local_development_listens_on_loopback_only() {
        let address = |text: &str| text.parse::<SocketAddr>().expect("an address");
        let local = Authenticator::LocalDevelopment;
        assert_eq!(local.may_listen_on([address("127.0.0.1:50051"), address("[::1]:8080")]), Ok(()));
        let refused = local.may_listen_on([address("127.0.0.1:50051"), address("0.0.0.0:8080")]);
        assert_eq!(refused, Err(Unprotected(address("0.0.0.0:8080"))));
        let message = refused.map_err(|e| e.to_string()).expect_err("refused");
        assert!(message.starts_with("refusing to listen on 0.0.0.0:8080 without authentication"), "{message}");
        assert!(message.contains("--auth-config"), "{message}");
        let tokens = Authenticator::Tokens { jwt: None, service_tokens: ServiceTokens::default() };
        assert_eq!(tokens.may_listen_on([address("0.0.0.0:50051")]), Ok(()));
    }
}
