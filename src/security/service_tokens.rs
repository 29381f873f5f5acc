//! Static service tokens for internal tools. The configuration holds only the SHA-256 of
//! each token (a token is 256 random bits, so a plain digest is enough: there is nothing
//! to brute-force), and a presented token is compared against every entry in constant
//! time, so neither the comparison nor the entry it matched shows in the timing.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::Roles;
use crate::domain::values::Principal;

/// The prefix of tokens made by `accord token generate`: recognisable in a leaked secret scan.
pub const TOKEN_PREFIX: &str = "accord_st_";

#[derive(Clone, Debug, Default)]
pub struct ServiceTokens {
    entries: Vec<Entry>,
}

#[derive(Clone, Debug)]
struct Entry {
    digest: [u8; 32],
    principal: Principal,
    roles: Roles,
}

impl ServiceTokens {
    pub fn new() -> ServiceTokens {
        ServiceTokens::default()
    }

    /// Adds a token by its SHA-256 digest.
    pub fn add(&mut self, digest: [u8; 32], principal: Principal, roles: Roles) {
        self.entries.push(Entry { digest, principal, roles });
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The principal and roles of `token`, if it is one of the configured tokens.
    pub fn find(&self, token: &str) -> Option<(&Principal, &Roles)> {
        let presented = digest(token);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (i, entry) in self.entries.iter().enumerate() {
            let matches = entry.digest.ct_eq(&presented);
            index.conditional_assign(&(i as u32), matches);
            found |= matches;
        }
        if bool::from(found) {
            self.entries.get(index as usize).map(|entry| (&entry.principal, &entry.roles))
        } else {
            None
        }
    }
}

/// SHA-256 of a token, as stored in the configuration.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new random token and its digest in hex.
pub fn generate() -> Result<(String, String), getrandom::Error> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let hash = hex::encode(digest(&token));
    Ok((token, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::Role;

    fn principal(name: &str) -> Principal {
        Principal::parse("principal", name).expect("valid principal")
    }

    #[test]
    fn finds_each_configured_token_and_nothing_else() {
        let (first, _) = generate().expect("random");
        let (second, _) = generate().expect("random");
        let mut tokens = ServiceTokens::new();
        tokens.add(digest(&first), principal("ci@svc"), Roles::of(&[Role::Member]));
        tokens.add(digest(&second), principal("exporter@svc"), Roles::of(&[Role::Auditor]));
        assert_eq!(tokens.find(&first).map(|(p, r)| (p.as_str(), *r)), Some(("ci@svc", Roles::of(&[Role::Member]))));
        assert_eq!(tokens.find(&second).map(|(p, _)| p.as_str()), Some("exporter@svc"));
        assert!(tokens.find("accord_st_guess").is_none());
        assert!(tokens.find("").is_none());
        assert!(tokens.find(&first[..first.len() - 1]).is_none());
    }

    #[test]
    fn generated_tokens_are_distinct_prefixed_and_hash_to_their_digest() {
        let (token, hash) = generate().expect("random");
        let (other, _) = generate().expect("random");
        assert_ne!(token, other);
        assert!(token.starts_with(TOKEN_PREFIX));
        assert_eq!(token.len(), TOKEN_PREFIX.len() + 43);
        assert_eq!(hash, hex::encode(Sha256::digest(token.as_bytes())));
    }
}
