//! Offline JWT verification: the signature against a configured key of the token's own
//! algorithm (never "none", never an HMAC key for an asymmetric algorithm), then issuer,
//! audience, expiry and not-before with a bounded clock skew. The principal is the `sub`
//! claim; the service roles come from the roles claim (a string or a list of strings).

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, errors::ErrorKind};
use serde_json::{Map, Value};

use super::{AuthError, Caller, Credential, Roles};
use crate::domain::values::Principal;

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

#[derive(Clone, Debug)]
pub struct JwtVerifier {
    issuer: String,
    audience: String,
    leeway_seconds: u64,
    roles_claim: String,
    keys: Vec<VerificationKey>,
}

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
            keys,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Verifies `token` and returns its caller.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header = decode_header(token).map_err(|_| AuthError("the bearer token is not a well-formed JWT".into()))?;
        let candidates: Vec<&VerificationKey> = self
            .keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| k.kid.is_none() || k.kid == header.kid)
            .collect();
        if candidates.is_empty() {
            let kid = header.kid.as_deref().map(|kid| format!(" and key id {kid:?}")).unwrap_or_default();
            return Err(AuthError(format!("no configured key verifies tokens signed with {:?}{kid}", header.alg)));
        }
        let validation = self.validation(header.alg);
        let mut last = AuthError("the token's signature does not verify".into());
        for candidate in candidates {
            match decode::<Map<String, Value>>(token, &candidate.key, &validation) {
                Ok(data) => return self.caller(&data.claims),
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
        let roles = match claims.get(&self.roles_claim) {
            Some(Value::String(one)) => Roles::from_names(one.split([' ', ','])),
            Some(Value::Array(many)) => Roles::from_names(many.iter().filter_map(Value::as_str)),
            _ => Roles::none(),
        };
        Ok(Caller { principal, roles, credential: Credential::Jwt { issuer: self.issuer.clone() } })
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

/// Three dot-separated parts: worth trying as a JWT.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}
