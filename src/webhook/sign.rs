//! The signature headers of Standard Webhooks 1.0: a receiver checks that a message comes
//! from us and was not altered or replayed by recomputing an HMAC-SHA256 over the message
//! id, the timestamp and the body with the endpoint's shared secret.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac, digest::KeyInit};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use thiserror::Error;

use crate::domain::values::quote;

/// The header carrying the message id, the same on every attempt of one message.
pub const HEADER_ID: &str = "webhook-id";
/// The header carrying the attempt's time, in whole seconds since the Unix epoch.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The header carrying the space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// What every secret's text starts with.
pub const SECRET_PREFIX: &str = "whsec_";
/// Shortest key a secret may hold, in bytes (Standard Webhooks' lower bound).
pub const MIN_SECRET_BYTES: usize = 24;
/// Longest key a secret may hold, in bytes (Standard Webhooks' upper bound).
pub const MAX_SECRET_BYTES: usize = 64;
/// Length of the keys `Secret::generate` makes, in bytes.
pub const GENERATED_SECRET_BYTES: usize = 32;

/// The block size of SHA-256: HMAC pads every shorter key with zeros to this length.
const HMAC_BLOCK_BYTES: usize = 64;

/// Why a secret's text is refused. The messages never quote the key itself, only at most
/// the few characters where the `whsec_` prefix belongs.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SecretError {
    #[error("{field}: a webhook secret starts with \"whsec_\", not {found}")]
    MissingPrefix { field: String, found: String },
    #[error("{field}: the part after \"whsec_\" is not standard base64")]
    NotBase64 { field: String },
    #[error("{field}: a webhook secret holds 24 to 64 bytes, not {bytes}")]
    WrongLength { field: String, bytes: usize },
}

/// A signing secret: "whsec_" + base64 of 24..=64 random bytes (Standard Webhooks' format).
/// Neither `Debug` nor `Display` shows the key; only `expose` does.
#[derive(Clone)]
pub struct Secret {
    key: Vec<u8>,
    /// HMAC state after absorbing the key, cloned for every signature so the key is
    /// hashed once rather than once a message.
    keyed: Hmac<Sha256>,
}

impl Secret {
    /// Reads the `whsec_` text of a secret; `field` names the input in errors.
    pub fn parse(field: &str, text: &str) -> Result<Secret, SecretError> {
        let Some(encoded) = text.strip_prefix(SECRET_PREFIX) else {
            let shown: String = text.chars().take(SECRET_PREFIX.len()).collect();
            return Err(SecretError::MissingPrefix { field: field.to_owned(), found: quote(&shown).to_string() });
        };
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::NotBase64 { field: field.to_owned() })?;
        Self::from_key(key).map_err(|bytes| SecretError::WrongLength { field: field.to_owned(), bytes })
    }

    /// A new secret of 32 bytes from the operating system's random source.
    ///
    /// Panics only if the operating system cannot supply randomness, which leaves no
    /// safe way to go on.
    pub fn generate() -> Secret {
        let mut key = vec![0_u8; GENERATED_SECRET_BYTES];
        OsRng.fill_bytes(&mut key);
        let keyed = keyed_hmac(&key);
        Secret { key, keyed }
    }

    /// The `whsec_` text, for the one answer that shows the secret to its owner.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// The key's length in bytes is the error: it is outside 24..=64.
    fn from_key(key: Vec<u8>) -> Result<Secret, usize> {
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(key.len());
        }
        let keyed = keyed_hmac(&key);
        Ok(Secret { key, keyed })
    }
}

/// The HMAC-SHA256 state keyed with `key`, at most 64 bytes long. Padding the key with
/// zeros to the block size is exactly what HMAC does with a short key (RFC 2104), and it
/// lets the fixed-size constructor, which cannot fail, take it.
fn keyed_hmac(key: &[u8]) -> Hmac<Sha256> {
    let mut block = [0_u8; HMAC_BLOCK_BYTES];
    let used = key.len().min(HMAC_BLOCK_BYTES);
    block[..used].copy_from_slice(&key[..used]);
    <Hmac<Sha256> as KeyInit>::new(&block.into())
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({SECRET_PREFIX}… {} bytes, hidden)", self.key.len())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SECRET_PREFIX}…")
    }
}

/// "v1,<base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`>" for each secret, space-separated (several
/// during a rotation, newest first).
pub fn signature(secrets: &[&Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let signatures: Vec<String> = secrets
        .iter()
        .map(|secret| {
            let mut mac = secret.keyed.clone();
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        })
        .collect();
    signatures.join(" ")
}

/// The three headers for one attempt.
pub fn headers(secrets: &[&Secret], id: &str, timestamp: i64, body: &[u8]) -> [(&'static str, String); 3] {
    [
        (HEADER_ID, id.to_owned()),
        (HEADER_TIMESTAMP, timestamp.to_string()),
        (HEADER_SIGNATURE, signature(secrets, id, timestamp, body)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    use http::{HeaderMap, HeaderName, HeaderValue};
    use standardwebhooks::Webhook;

    // The example of the Standard Webhooks specification and of its libraries' test suites.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn header_map(headers: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(HeaderName::from_static(name), HeaderValue::from_str(value).expect("header value"));
        }
        map
    }

    fn verify(
        secret: &Secret,
        body: &[u8],
        headers: &[(&'static str, String)],
    ) -> Result<(), standardwebhooks::WebhookError> {
        Webhook::new(&secret.expose()).expect("verifier accepts our secret").verify(body, &header_map(headers))
    }

    #[test]
    fn the_specification_example_signs_to_its_published_signature() {
        let secret = Secret::parse("secret", SPEC_SECRET).expect("the spec's secret");
        assert_eq!(signature(&[&secret], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY), SPEC_SIGNATURE);
    }

    #[test]
    fn the_published_verifier_accepts_one_signature() {
        let secret = Secret::generate();
        let body = br#"{"type":"decision.signed_off"}"#;
        let headers = headers(&[&secret], "msg_1", now(), body);
        assert_eq!(headers[0], (HEADER_ID, "msg_1".to_owned()));
        verify(&secret, body, &headers).expect("verifies");
    }

    #[test]
    fn during_a_rotation_each_secret_verifies_alone() {
        let newest = Secret::generate();
        let previous = Secret::generate();
        let body = b"{}";
        let headers = headers(&[&newest, &previous], "msg_2", now(), body);
        let signatures: Vec<&str> = headers[2].1.split(' ').collect();
        assert_eq!(signatures.len(), 2);
        assert_eq!(signatures[0], signature(&[&newest], "msg_2", now_of(&headers), body));
        verify(&newest, body, &headers).expect("the newest verifies");
        verify(&previous, body, &headers).expect("the previous verifies");
        assert!(verify(&Secret::generate(), body, &headers).is_err(), "a third secret does not");
    }

    fn now_of(headers: &[(&'static str, String); 3]) -> i64 {
        headers[1].1.parse().expect("timestamp")
    }

    #[test]
    fn a_tampered_body_fails() {
        let secret = Secret::generate();
        let headers = headers(&[&secret], "msg_3", now(), br#"{"amount":1}"#);
        assert!(matches!(
            verify(&secret, br#"{"amount":9}"#, &headers),
            Err(standardwebhooks::WebhookError::InvalidSignature)
        ));
    }

    #[test]
    fn an_old_timestamp_fails() {
        let secret = Secret::generate();
        let body = b"{}";
        let headers = headers(&[&secret], "msg_4", now() - 3600, body);
        assert!(matches!(verify(&secret, body, &headers), Err(standardwebhooks::WebhookError::TimestampTooOldError)));
    }

    #[test]
    fn a_tampered_id_fails() {
        let secret = Secret::generate();
        let body = b"{}";
        let mut headers = headers(&[&secret], "msg_5", now(), body);
        headers[0].1 = "msg_6".to_owned();
        assert!(verify(&secret, body, &headers).is_err());
    }

    #[test]
    fn generated_secrets_round_trip_and_differ() {
        let secret = Secret::generate();
        let text = secret.expose();
        assert!(text.starts_with(SECRET_PREFIX));
        let again = Secret::parse("secret", &text).expect("own text parses");
        assert_eq!(again.expose(), text);
        assert_ne!(Secret::generate().expose(), text);
        assert_eq!(signature(&[&secret], "m", 1, b"x"), signature(&[&again], "m", 1, b"x"));
    }

    #[test]
    fn debug_and_display_hide_the_key() {
        let secret = Secret::parse("secret", SPEC_SECRET).expect("parses");
        let key = &SPEC_SECRET[SECRET_PREFIX.len()..];
        for shown in [format!("{secret:?}"), secret.to_string()] {
            assert!(!shown.contains(key), "{shown}");
            assert!(!shown.contains(&key[..8]), "{shown}");
        }
    }

    #[test]
    fn the_lengths_24_and_64_are_accepted_and_their_neighbours_refused() {
        for bytes in [24, 64] {
            let text = format!("{SECRET_PREFIX}{}", STANDARD.encode(vec![7_u8; bytes]));
            assert!(Secret::parse("secret", &text).is_ok(), "{bytes}");
        }
        for bytes in [0, 23, 65, 1000] {
            let text = format!("{SECRET_PREFIX}{}", STANDARD.encode(vec![7_u8; bytes]));
            assert_eq!(
                Secret::parse("secret", &text).err(),
                Some(SecretError::WrongLength { field: "secret".to_owned(), bytes })
            );
        }
    }

    #[test]
    fn bad_texts_get_errors_naming_the_field_and_quoting_no_key() {
        let long_key = "Zm9v".repeat(5000);
        let missing = Secret::parse("signing_secret", &long_key).expect_err("no prefix");
        let message = missing.to_string();
        assert!(message.starts_with("signing_secret: "), "{message}");
        assert!(message.contains("\"Zm9vZm\""), "{message}");
        assert!(message.len() < 100, "{message}");

        let not_base64 = Secret::parse("signing_secret", "whsec_not base64!").expect_err("bad base64");
        assert_eq!(not_base64, SecretError::NotBase64 { field: "signing_secret".to_owned() });
        assert!(!not_base64.to_string().contains("not base64!"));

        assert!(matches!(Secret::parse("s", ""), Err(SecretError::MissingPrefix { .. })));
        assert!(matches!(Secret::parse("s", "whsec_"), Err(SecretError::WrongLength { bytes: 0, .. })));
    }
}
