//! Offline JWT verification: the signature against a configured key of the token's own
//! algorithm (never "none", never an HMAC key for an asymmetric algorithm), then issuer,
//! audience, expiry and not-before with a bounded clock skew. The principal is the `sub`
//! claim; the service roles come from the roles claim (a string or a list of strings).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, errors::ErrorKind};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{AuthError, Caller, Credential, Roles};
use crate::domain::values::{Principal, quote};

/// Longest clock skew the configuration may allow, in seconds.
pub const MAX_LEEWAY_SECONDS: u64 = 300;

/// One key a token may be signed with.
#[derive(Clone, Debug)]
pub struct VerificationKey {
    pub algorithm: Algorithm,
    /// When set, only tokens whose header names this key id are checked against it.
    pub kid: Option<String>,
    pub key: DecodingKey,
}

/// Verified tokens remembered at most (a client reuses its token for many calls).
const CACHED_TOKENS: usize = 10_000;

/// The claim a token lists its subject's groups in, unless configured otherwise.
pub const DEFAULT_TEAMS_CLAIM: &str = "groups";

#[derive(Clone, Debug)]
pub struct JwtVerifier {
    issuer: String,
    audience: String,
    leeway_seconds: u64,
    roles_claim: String,
    /// The claim listing the caller's groups, taken as their teams.
    teams_claim: String,
    keys: Vec<VerificationKey>,
    /// SHA-256 of a verified token → its caller and expiry (Unix seconds). A signature
    /// check costs up to a quarter of a millisecond (ES256); a cache hit, a hash.
    verified: VerifiedTokens,
}

type VerifiedTokens = Arc<Mutex<HashMap<[u8; 32], (Caller, u64)>>>;

impl JwtVerifier {
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        leeway_seconds: u64,
        roles_claim: impl Into<String>,
        keys: Vec<VerificationKey>,
    ) -> JwtVerifier {
        JwtVerifier {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_seconds: leeway_seconds.min(MAX_LEEWAY_SECONDS),
            roles_claim: roles_claim.into(),
            teams_claim: DEFAULT_TEAMS_CLAIM.to_owned(),
            keys,
            verified: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Reads the caller's teams from `claim` instead of `groups`.
    pub fn with_teams_claim(mut self, claim: impl Into<String>) -> JwtVerifier {
        self.teams_claim = claim.into();
        self
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Verifies `token` and returns its caller. A token verified before is taken from
    /// the cache until it expires (exactly at `exp`: the cache grants no leeway).
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(u64::MAX);
        if let Ok(cache) = self.verified.lock()
            && let Some((caller, expires)) = cache.get(&digest)
            && now < *expires
        {
            return Ok(caller.clone());
        }
        let (caller, expires) = self.verify_signature_and_claims(token)?;
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= CACHED_TOKENS {
                cache.retain(|_, (_, expires)| now < *expires);
                if cache.len() >= CACHED_TOKENS {
                    cache.clear();
                }
            }
            cache.insert(digest, (caller.clone(), expires));
        }
        Ok(caller)
    }

    fn verify_signature_and_claims(&self, token: &str) -> Result<(Caller, u64), AuthError> {
        let header = decode_header(token).map_err(|_| AuthError("the bearer token is not a well-formed JWT".into()))?;
        let candidates: Vec<&VerificationKey> = self
            .keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| k.kid.is_none() || k.kid == header.kid)
            .collect();
        if candidates.is_empty() {
            let kid = header.kid.as_deref().map(|kid| format!(" and key id {}", quote(kid))).unwrap_or_default();
            return Err(AuthError(format!("no configured key verifies tokens signed with {:?}{kid}", header.alg)));
        }
        let validation = self.validation(header.alg);
        let mut last = AuthError("the token's signature does not verify".into());
        for candidate in candidates {
            match decode::<Map<String, Value>>(token, &candidate.key, &validation) {
                Ok(data) => {
                    let expires = data.claims.get("exp").and_then(Value::as_u64).unwrap_or_default();
                    return Ok((self.caller(&data.claims)?, expires));
                }
                Err(error) => match error.kind() {
                    // Another key of the same algorithm may still verify it.
                    ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) => {
                        last = AuthError("the token's signature does not verify".into())
                    }
                    _ => return Err(describe(error.kind(), self)),
                },
            }
        }
        Err(last)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.leeway_seconds;
        validation.validate_nbf = true;
        validation
    }

    fn caller(&self, claims: &Map<String, Value>) -> Result<Caller, AuthError> {
        let subject = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
        let principal = Principal::parse("sub", subject)
            .map_err(|error| AuthError(format!("the token's subject is not a valid principal: {error}")))?;
        let roles = roles_of_claim(claims.get(&self.roles_claim));
        let teams = teams_of_claim(claims.get(&self.teams_claim));
        Ok(Caller { principal, roles, credential: Credential::Jwt { issuer: self.issuer.clone() }, teams })
    }
}

fn describe(kind: &ErrorKind, verifier: &JwtVerifier) -> AuthError {
    AuthError(match kind {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf is in the future)".into(),
        ErrorKind::InvalidIssuer => format!("the token's issuer is not {:?}", verifier.issuer),
        ErrorKind::InvalidAudience => format!("the token's audience does not include {:?}", verifier.audience),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim:?} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the token's {claim:?} claim is malformed"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".into(),
        _ => "the bearer token is not a valid JWT".into(),
    })
}

/// The Accord roles a roles claim names: a string ("admin member", or comma-separated)
/// or a list of strings; names that are not Accord roles are ignored. The one mapping of
/// token claims to roles, for `[jwt]` and `[oidc]` alike.
pub fn roles_of_claim(claim: Option<&Value>) -> Roles {
    match claim {
        Some(Value::String(one)) => Roles::from_names(one.split([' ', ','])),
        Some(Value::Array(many)) => Roles::from_names(many.iter().filter_map(Value::as_str)),
        _ => Roles::none(),
    }
}

/// The teams a claim names (a space- or comma-separated string, or a list of strings).
pub fn teams_of_claim(claim: Option<&Value>) -> std::collections::BTreeSet<Principal> {
    match claim {
        Some(Value::String(one)) => super::teams_of(one.split([' ', ','])),
        Some(Value::Array(many)) => super::teams_of(many.iter().filter_map(Value::as_str)),
        _ => Default::default(),
    }
}

/// Three dot-separated parts: worth trying as a JWT.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::Role;
    use jsonwebtoken::{EncodingKey, Header, encode};

    const SECRET: &[u8] = b"unit-test-secret-unit-test-secret-0123";

    fn verifier() -> JwtVerifier {
        let key =
            VerificationKey { algorithm: Algorithm::HS256, kid: None, key: DecodingKey::from_secret(SECRET).unwrap() };
        JwtVerifier::new("iss", "aud", 0, "roles", vec![key])
    }

    fn token(claims: serde_json::Value) -> String {
        encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET).unwrap()).unwrap()
    }

    #[test]
    fn a_cached_token_still_names_its_caller_and_a_tampered_one_is_not_served_from_the_cache() {
        let verifier = verifier();
        let good = token(serde_json::json!({"iss": "iss", "aud": "aud", "sub": "ann@x", "exp": 4_000_000_000u64,
            "roles": "member reader"}));
        for _ in 0..2 {
            let caller = verifier.verify(&good).expect("valid");
            assert_eq!(caller.principal.as_str(), "ann@x");
            assert_eq!(caller.roles, Roles::of(&[Role::Member, Role::Reader]));
        }
        let mut tampered = good.clone();
        tampered.pop();
        tampered.push(if good.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(verifier.verify(&tampered).unwrap_err().0, "the token's signature does not verify");
    }

    #[test]
    fn the_groups_claim_names_the_callers_teams_as_a_list_or_a_string_and_another_claim_may_be_configured() {
        let claims = |extra: serde_json::Value| {
            let mut claims = serde_json::json!({"iss": "iss", "aud": "aud", "sub": "lea@x", "exp": 4_000_000_000u64});
            claims.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
            token(claims)
        };
        let names = |caller: Caller| caller.teams.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        let listed = verifier().verify(&claims(serde_json::json!({"groups": ["design-leads", "ux"]}))).expect("ok");
        assert_eq!(names(listed), ["team:design-leads", "team:ux"]);
        let spaced = verifier().verify(&claims(serde_json::json!({"groups": "design-leads ux"}))).expect("ok");
        assert_eq!(names(spaced), ["team:design-leads", "team:ux"]);
        let elsewhere = claims(serde_json::json!({"teams": ["ops"], "groups": ["ignored"]}));
        let caller = verifier().with_teams_claim("teams").verify(&elsewhere).expect("ok");
        assert_eq!(names(caller), ["team:ops"]);
        let none = verifier().verify(&claims(serde_json::json!({}))).expect("ok");
        assert!(none.teams.is_empty());
    }

    #[test]
    fn an_expired_token_is_refused_even_after_a_valid_one_of_the_same_subject_was_cached() {
        let verifier = verifier();
        let claims = |exp: u64| serde_json::json!({"iss": "iss", "aud": "aud", "sub": "ann@x", "exp": exp});
        verifier.verify(&token(claims(4_000_000_000))).expect("valid");
        assert_eq!(verifier.verify(&token(claims(1_000))).unwrap_err().0, "the token has expired");
    }
}
