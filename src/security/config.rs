//! The security configuration file (TOML, `accord serve --auth-config FILE`): which JWTs
//! are accepted and which static service tokens exist. Paths inside it are relative to
//! the file's folder. Every mistake is reported at start with the entry that is wrong;
//! a server never starts half-configured.
//!
//! ```toml
//! [jwt]
//! issuer = "https://id.example.com/"
//! audience = "accord"
//! leeway_seconds = 30            # clock skew allowed on exp/nbf; at most 300
//! roles_claim = "roles"          # a string ("admin member") or a list of strings
//! teams_claim = "groups"         # the caller's teams (`team:NAME`), same forms
//!
//! [[jwt.keys]]
//! algorithm = "ES256"            # HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA
//! public_key_file = "keys/id-es256.pem"
//! kid = "2026-11"                # optional: only tokens naming this key id
//!
//! [[jwt.keys]]
//! jwks_file = "keys/jwks.json"   # each key's `alg` (and `kid`) from the set
//!
//! [[jwt.keys]]
//! algorithm = "HS256"
//! secret_env = "ACCORD_JWT_SECRET"   # or secret_file; at least 32 bytes
//!
//! [[service_tokens]]
//! principal = "release-bot@svc"
//! roles = ["member"]
//! sha256 = "…"                   # `accord token generate` prints token and digest
//!
//! [oidc]                         # sign-in for the board: see `oidc`
//! issuer = "https://id.example.com/"
//! client_id = "accord-board"
//! client_secret_env = "ACCORD_OIDC_CLIENT_SECRET"   # or client_secret_file
//! base_url = "https://accord.example.com"
//! ```

use std::path::{Path, PathBuf};
use std::str::FromStr;

use jsonwebtoken::{Algorithm, DecodingKey, jwk::JwkSet};
use serde::Deserialize;

use super::jwt::{JwtVerifier, MAX_LEEWAY_SECONDS, VerificationKey};
use super::oidc::{OidcSection, OidcSettings};
use super::{Authenticator, Role, Roles, ServiceTokens};
use crate::domain::values::{Principal, quote};

/// Shortest HMAC secret accepted: as long as the SHA-256 output.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
#[error("{file}: {entry}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub entry: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    pub jwt: Option<JwtSection>,
    #[serde(default)]
    pub service_tokens: Vec<ServiceTokenEntry>,
    /// Sign-in for the board (OpenID Connect).
    pub oidc: Option<OidcSection>,
}

/// Everything the file configures: how bearer tokens are checked and, with an `[oidc]`
/// section, how people sign in to the board.
#[derive(Debug)]
pub struct Security {
    pub authenticator: Authenticator,
    pub sign_in: Option<OidcSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSection {
    pub issuer: String,
    pub audience: String,
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// The claim listing the caller's groups, each a team (`team:NAME`) whose stakeholder
    /// roles the caller holds too.
    #[serde(default = "default_teams_claim")]
    pub teams_claim: String,
    pub keys: Vec<KeyEntry>,
}

fn default_leeway() -> u64 {
    30
}

fn default_roles_claim() -> String {
    "roles".to_owned()
}

fn default_teams_claim() -> String {
    super::jwt::DEFAULT_TEAMS_CLAIM.to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub algorithm: Option<String>,
    pub kid: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
    pub public_key_file: Option<PathBuf>,
    pub jwks_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceTokenEntry {
    pub principal: String,
    pub roles: Vec<String>,
    pub sha256: String,
}

impl SecurityConfig {
    /// Reads and checks the file at `path`, loading every key it names.
    pub fn load(path: &Path) -> Result<Authenticator, ConfigError> {
        Self::load_all(path).map(|security| security.authenticator)
    }

    /// Reads and checks the file at `path`, with its `[oidc]` section.
    pub fn load_all(path: &Path) -> Result<Security, ConfigError> {
        let file = path.display().to_string();
        let error = |entry: &str, message: String| ConfigError { file: file.clone(), entry: entry.to_owned(), message };
        let text = std::fs::read_to_string(path).map_err(|e| error("file", format!("cannot read it: {e}")))?;
        let config: SecurityConfig = toml::from_str(&text).map_err(|e| error("syntax", e.message().to_owned()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let authenticator = config.build(&base).map_err(|(entry, message)| error(&entry, message))?;
        let sign_in = config
            .oidc
            .as_ref()
            .map(|section| section.parse(&base))
            .transpose()
            .map_err(|e| error(&format!("oidc.{}", e.field), e.message))?;
        Ok(Security { authenticator, sign_in })
    }

    /// Builds the authenticator; paths are relative to `base`. Errors are (entry, message).
    pub fn build(&self, base: &Path) -> Result<Authenticator, (String, String)> {
        if self.jwt.is_none() && self.service_tokens.is_empty() && self.oidc.is_none() {
            return Err((
                "file".into(),
                "configures none of [jwt], [[service_tokens]] and [oidc]; without them nobody could call the service"
                    .into(),
            ));
        }
        let jwt = self.jwt.as_ref().map(|section| section.build(base)).transpose()?;
        let mut service_tokens = ServiceTokens::new();
        for (i, entry) in self.service_tokens.iter().enumerate() {
            let at = |field: &str| format!("service_tokens[{i}].{field}");
            let principal =
                Principal::parse("principal", &entry.principal).map_err(|e| (at("principal"), e.to_string()))?;
            let roles = parse_roles(&entry.roles).map_err(|message| (at("roles"), message))?;
            let digest = hex::decode(entry.sha256.trim())
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| (at("sha256"), "is not 64 hexadecimal digits (a SHA-256 digest)".to_owned()))?;
            service_tokens.add(digest, principal, roles);
        }
        Ok(Authenticator::Tokens { jwt, service_tokens })
    }
}

fn parse_roles(names: &[String]) -> Result<Roles, String> {
    if names.is_empty() {
        return Err("names no role; use admin, member, auditor or reader".into());
    }
    let mut roles = Vec::new();
    for name in names {
        roles.push(
            Role::parse(name)
                .ok_or_else(|| format!("{} is not a role (admin, member, auditor, reader)", quote(name)))?,
        );
    }
    Ok(Roles::of(&roles))
}

impl JwtSection {
    fn build(&self, base: &Path) -> Result<JwtVerifier, (String, String)> {
        if self.issuer.trim().is_empty() {
            return Err(("jwt.issuer".into(), "must not be empty: tokens from any issuer would be accepted".into()));
        }
        if self.audience.trim().is_empty() {
            return Err(("jwt.audience".into(), "must not be empty: tokens for any service would be accepted".into()));
        }
        if self.leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err((
                "jwt.leeway_seconds".into(),
                format!("is {}; at most {MAX_LEEWAY_SECONDS}", self.leeway_seconds),
            ));
        }
        if self.keys.is_empty() {
            return Err(("jwt.keys".into(), "lists no key; add at least one [[jwt.keys]]".into()));
        }
        let mut keys = Vec::new();
        for (i, entry) in self.keys.iter().enumerate() {
            keys.extend(entry.load(base).map_err(|message| (format!("jwt.keys[{i}]"), message))?);
        }
        Ok(JwtVerifier::new(&self.issuer, &self.audience, self.leeway_seconds, &self.roles_claim, keys)
            .with_teams_claim(&self.teams_claim))
    }
}

impl KeyEntry {
    fn load(&self, base: &Path) -> Result<Vec<VerificationKey>, String> {
        let sources = [
            self.secret_file.is_some(),
            self.secret_env.is_some(),
            self.public_key_file.is_some(),
            self.jwks_file.is_some(),
        ]
        .into_iter()
        .filter(|given| *given)
        .count();
        if sources != 1 {
            return Err("give exactly one of secret_file, secret_env, public_key_file, jwks_file".into());
        }
        if let Some(jwks) = &self.jwks_file {
            return self.load_jwks(&base.join(jwks));
        }
        let name = self.algorithm.as_deref().ok_or("algorithm is required (e.g. \"ES256\")")?;
        let algorithm = parse_algorithm(name)?;
        let family = algorithm.family();
        let key = if self.secret_file.is_some() || self.secret_env.is_some() {
            if family != jsonwebtoken::AlgorithmFamily::Hmac {
                return Err(format!("{name} is an asymmetric algorithm: give public_key_file, not a secret"));
            }
            let secret = if let Some(file) = &self.secret_file {
                read(&base.join(file))?
            } else {
                let variable = self.secret_env.as_deref().unwrap_or_default();
                std::env::var(variable).map_err(|_| format!("environment variable {variable} is not set"))?.into_bytes()
            };
            let secret = trim_newline(secret);
            if secret.len() < MIN_HMAC_SECRET_BYTES {
                return Err(format!(
                    "the {name} secret is {} bytes; at least {MIN_HMAC_SECRET_BYTES} are required",
                    secret.len()
                ));
            }
            DecodingKey::from_secret(&secret).map_err(|e| format!("unusable secret: {e}"))?
        } else {
            let path = self.public_key_file.as_ref().map(|p| base.join(p)).ok_or("no key source")?;
            let pem = read(&path)?;
            let loaded = match family {
                jsonwebtoken::AlgorithmFamily::Hmac => {
                    return Err(format!("{name} is an HMAC algorithm: give secret_file or secret_env"));
                }
                jsonwebtoken::AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&pem),
                jsonwebtoken::AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&pem),
                jsonwebtoken::AlgorithmFamily::Ed => DecodingKey::from_ed_pem(&pem),
            };
            loaded.map_err(|e| format!("{} is not a {name} public key in PEM: {e}", path.display()))?
        };
        Ok(vec![VerificationKey { algorithm, kid: self.kid.clone(), key }])
    }

    fn load_jwks(&self, path: &Path) -> Result<Vec<VerificationKey>, String> {
        let text = read(path)?;
        let set: JwkSet =
            serde_json::from_slice(&text).map_err(|e| format!("{} is not a JWK set: {e}", path.display()))?;
        let mut keys = Vec::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let named = jwk.common.key_algorithm.map(|a| a.to_string()).or_else(|| self.algorithm.clone());
            let name = named.ok_or_else(|| format!("key {i} of {} has no \"alg\"", path.display()))?;
            let algorithm = parse_algorithm(&name).map_err(|e| format!("key {i} of {}: {e}", path.display()))?;
            if algorithm.family() == jsonwebtoken::AlgorithmFamily::Hmac {
                return Err(format!("key {i} of {}: symmetric keys do not belong in a JWK set file", path.display()));
            }
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {i} of {}: {e}", path.display()))?;
            keys.push(VerificationKey { algorithm, kid: jwk.common.key_id.clone().or_else(|| self.kid.clone()), key });
        }
        if keys.is_empty() {
            return Err(format!("{} holds no key", path.display()));
        }
        Ok(keys)
    }
}

fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    Algorithm::from_str(name).map_err(|_| {
        format!(
            "{} is not a supported algorithm (HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA)",
            quote(name)
        )
    })
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn trim_newline(mut secret: Vec<u8>) -> Vec<u8> {
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    secret
}
