//! Which web pages may call the API from a browser (CORS), for gRPC-Web clients served
//! from another origin. The default is none: same-origin gRPC-Web works, cross-origin
//! calls are refused by the browser. Preflights are answered before the guard (they carry
//! no credentials); the calls that follow are authenticated like any gRPC call.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};

use crate::domain::values::quote;

use super::guard::{
    ACTOR_HEADER, AUTHORIZATION_HEADER, CAUSATION_HEADER, CORRELATION_HEADER, ROLES_HEADER, TEAMS_HEADER,
};

/// Request headers a browser may send: the gRPC-Web protocol's and the metadata the guard reads.
pub const ALLOWED_HEADERS: [&str; 10] = [
    AUTHORIZATION_HEADER,
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    ACTOR_HEADER,
    ROLES_HEADER,
    TEAMS_HEADER,
    CORRELATION_HEADER,
    CAUSATION_HEADER,
];

/// Response headers a page may read: the call's status.
pub const EXPOSED_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Allows any origin; never with credentials.
pub const ANY_ORIGIN: &str = "*";

/// The CORS policy for `origins`: each `scheme://host[:port]`, or `*` for any origin.
/// Named origins may send credentials (cookies, client certificates); with `*` browsers
/// send none. No origins: no cross-origin access at all.
pub fn cors_layer(origins: &[String]) -> Result<CorsLayer, String> {
    let layer = CorsLayer::new()
        .allow_methods([Method::POST])
        .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
        .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(PREFLIGHT_MAX_AGE);
    if origins.is_empty() {
        return Ok(layer);
    }
    if origins.iter().any(|origin| origin.trim() == ANY_ORIGIN) {
        return Ok(layer.allow_origin(AllowOrigin::any()));
    }
    let allowed = origins.iter().map(|origin| parse_origin(origin)).collect::<Result<Vec<_>, _>>()?;
    // Credentials only to the named origins (a refused origin gets no header that grants
    // anything; the methods and headers allowed are the same for everyone and grant nothing
    // without `access-control-allow-origin`).
    let credentialed = allowed.clone();
    let credentials = AllowCredentials::predicate(move |origin, _| credentialed.contains(origin));
    Ok(layer.allow_origin(AllowOrigin::list(allowed)).allow_credentials(credentials))
}

/// Checks `--cors-origin` values at start, before anything is opened.
pub fn check_origins(origins: &[String]) -> Result<(), String> {
    cors_layer(origins).map(|_| ())
}

/// An origin as browsers send it: lower case, `http(s)://host[:port]`, no path.
fn parse_origin(origin: &str) -> Result<HeaderValue, String> {
    let normalized = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let problem =
        |why: &str| format!("--cors-origin {}: {why} (e.g. https://board.example.com:8443, or *)", quote(origin));
    let host = normalized
        .strip_prefix("https://")
        .or_else(|| normalized.strip_prefix("http://"))
        .ok_or_else(|| problem("must start with https:// or http://"))?;
    if host.is_empty() {
        return Err(problem("names no host"));
    }
    if host.contains(['/', '?', '#', '@', '*']) || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(problem("must be only scheme, host and port"));
    }
    HeaderValue::from_str(&normalized).map_err(|_| problem("is not a valid header value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_and_anything_but_scheme_host_and_port_is_refused() {
        assert_eq!(
            parse_origin(" HTTPS://Board.Example.com:8443/ ").ok(),
            Some(HeaderValue::from_static("https://board.example.com:8443"))
        );
        for bad in [
            "board.example.com",
            "https://",
            "https://a.example/path",
            "ftp://a.example",
            "https://*.example",
            "https://u@a.example",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
        assert!(cors_layer(&["https://a.example".into(), "nope".into()]).is_err());
        assert!(cors_layer(&["*".into()]).is_ok());
        assert!(cors_layer(&[]).is_ok());
    }
}
