//! The guard every call passes before it reaches a service: authentication, the right
//! the RPC needs, the bound on concurrent calls, and the server-side deadline. It is a
//! tower layer over all routes, so no service can be added without it. Every refusal is
//! logged as a security event (target `accord::security`: principal, RPC, peer, reason —
//! never the token) and answered with one precise status. Every call, refused or served,
//! is counted by RPC and gRPC code (`crate::metrics`).
//!
//! The guard answers in gRPC statuses (it is a layer of the tonic server), but how a
//! bad input is said on the wire is the gRPC edge's one error mapping: the server hands
//! it in ([`DomainStatus`]), so the guard imports no edge.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::sync::Semaphore;
use tonic::{Status, body::Body, transport::server::TcpConnectInfo};
use tower::{Layer, Service};
use tracing::{Instrument, debug, info_span, warn};

use super::rights::{Right, method_of, right_for};
use super::{Authenticator, Caller, Credential, Role, Roles, Trace};
use crate::domain::{
    DomainError,
    values::{MAX_ERROR_BYTES, Principal, clip, parse_token, quote},
};
use crate::metrics::{self, RpcLabels};

pub const AUTHORIZATION_HEADER: &str = "authorization";
/// Local development mode: the caller's name.
pub const ACTOR_HEADER: &str = "x-accord-actor";
/// Local development mode: the caller's roles, comma-separated (default: admin).
pub const ROLES_HEADER: &str = "x-accord-roles";
/// Local development mode only: the teams the caller belongs to, comma-separated.
pub const TEAMS_HEADER: &str = "x-accord-teams";
pub const CORRELATION_HEADER: &str = "x-correlation-id";
pub const CAUSATION_HEADER: &str = "x-causation-id";

/// Longest bearer token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The bounds that keep one caller from taking the server down.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Calls being handled at once (streams count until their first response); past it,
    /// `RESOURCE_EXHAUSTED`.
    pub max_concurrent_calls: usize,
    /// Open server streams (history reads, live views) at once; past it, `RESOURCE_EXHAUSTED`.
    pub max_streams: usize,
    /// Longest a call may take to produce its response; past it, `DEADLINE_EXCEEDED`.
    pub deadline: Duration,
    /// Largest request message, in bytes; past it, tonic refuses the message.
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent_calls: 512,
            max_streams: 256,
            deadline: Duration::from_secs(30),
            max_message_bytes: 1024 * 1024,
        }
    }
}

/// How a refusal of bad input becomes a status: `grpc::status::domain_status`.
pub type DomainStatus = fn(DomainError) -> Status;

/// Shared by all connections: the authenticator, the error mapping and the call semaphore.
#[derive(Debug)]
struct Shared {
    authenticator: Authenticator,
    domain_status: DomainStatus,
    calls: Arc<Semaphore>,
    max_calls: usize,
    deadline: Duration,
}

#[derive(Clone, Debug)]
pub struct GuardLayer {
    shared: Arc<Shared>,
}

impl GuardLayer {
    pub fn new(authenticator: Authenticator, limits: &Limits, domain_status: DomainStatus) -> GuardLayer {
        GuardLayer {
            shared: Arc::new(Shared {
                authenticator,
                domain_status,
                calls: Arc::new(Semaphore::new(limits.max_concurrent_calls)),
                max_calls: limits.max_concurrent_calls,
                deadline: limits.deadline,
            }),
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard { inner, shared: self.shared.clone() }
    }
}

#[derive(Clone, Debug)]
pub struct Guard<S> {
    inner: S,
    shared: Arc<Shared>,
}

type Response = http::Response<Body>;

impl<S> Service<http::Request<Body>> for Guard<S>
where
    S: Service<http::Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The clone that was driven to readiness serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let labels = RpcLabels::of_path(request.uri().path());
        let started = Instant::now();
        let guarded = async move {
            let path = request.uri().path().to_owned();
            let right = right_for(&path);
            if right == Right::Public {
                return inner.call(request).await;
            }
            let peer = request.extensions().get::<TcpConnectInfo>().and_then(|info| info.remote_addr());
            let trace = match trace(request.headers()) {
                Ok(trace) => trace,
                Err(error) => return Ok((shared.domain_status)(error).into_http()),
            };
            let caller = match authenticate(&shared.authenticator, request.headers()) {
                Ok(caller) => caller,
                Err(reason) => {
                    warn!(target: "accord::security", event = "unauthenticated", rpc = method_of(&path),
                        peer = %display_peer(peer), %reason, "call refused: not authenticated");
                    return Ok(Status::unauthenticated(bounded(&reason)).into_http());
                }
            };
            if !caller.roles.grants(right) {
                let reason = format!(
                    "{} needs {}; {} holds {}",
                    method_of(&path),
                    right.describe(),
                    caller.principal,
                    caller.roles
                );
                warn!(target: "accord::security", event = "permission_denied", principal = %caller.principal,
                    roles = %caller.roles, rpc = method_of(&path), peer = %display_peer(peer), %reason,
                    "call refused: service role");
                return Ok(Status::permission_denied(bounded(&reason)).into_http());
            }
            let Ok(_permit) = shared.calls.clone().try_acquire_owned() else {
                warn!(rpc = method_of(&path), limit = shared.max_calls, "call refused: too many concurrent calls");
                return Ok(Status::resource_exhausted(format!(
                    "the server is handling its limit of {} concurrent calls; retry with backoff",
                    shared.max_calls
                ))
                .into_http());
            };
            // One span per call: everything the handlers log carries who and what; the
            // services record the initiative once they have parsed it (`grpc::record_initiative`).
            let span = info_span!("call", rpc = method_of(&path), principal = %caller.principal,
                correlation_id = trace.correlation_id.as_deref().unwrap_or(""), initiative = tracing::field::Empty);
            debug!(parent: &span, "call authorised");
            request.extensions_mut().insert(caller);
            request.extensions_mut().insert(trace);
            let callers = callers_deadline(request.headers()).filter(|wait| *wait < shared.deadline);
            let wait = callers.map_or(shared.deadline, answer_before);
            match tokio::time::timeout(wait, inner.call(request)).instrument(span).await {
                Ok(response) => response,
                Err(_) => Ok(Status::deadline_exceeded(match callers {
                    Some(given) => format!(
                        "{} did not finish within the caller's deadline of {} ms; a command may still take \
                         effect: retry it with the same command id",
                        method_of(&path),
                        given.as_millis()
                    ),
                    None => format!(
                        "{} did not finish within the server's deadline of {} s",
                        method_of(&path),
                        shared.deadline.as_secs_f64()
                    ),
                })
                .into_http()),
            }
        };
        Box::pin(async move {
            match guarded.await {
                Ok(response) => Ok(metrics::observe_call(labels, started, response)),
                Err(error) => {
                    metrics::call_failed(labels, started);
                    Err(error)
                }
            }
        })
    }
}

/// The deadline the caller sent (`grpc-timeout`: at most 8 digits and a unit, H M S m u
/// n), or none when it sent none or one that does not parse (tonic then ignores it too).
fn callers_deadline(headers: &http::HeaderMap) -> Option<Duration> {
    let text = headers.get("grpc-timeout")?.to_str().ok()?;
    let split = text.len().checked_sub(1).filter(|&digits| (1..=8).contains(&digits))?;
    let (digits, unit) = text.split_at(split);
    let amount: u64 = digits.bytes().all(|b| b.is_ascii_digit()).then(|| digits.parse().ok())??;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// How long the guard lets a call with the caller's deadline `given` run: a little less,
/// so that the guard answers DEADLINE_EXCEEDED (the code gRPC gives an expired deadline)
/// before tonic's own timer, started just before the guard, answers CANCELLED ("Timeout
/// expired"), which a caller cannot tell from a call it cancelled itself.
fn answer_before(given: Duration) -> Duration {
    given.saturating_sub((given / 20).clamp(Duration::from_millis(1), Duration::from_millis(50)))
}

/// A message as a status carries it: at most `MAX_ERROR_BYTES`.
fn bounded(message: &str) -> String {
    clip(message, MAX_ERROR_BYTES).into_owned()
}

fn display_peer(peer: Option<SocketAddr>) -> String {
    peer.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into())
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value.to_str().map(Some).map_err(|_| format!("the {name} metadata entry is not valid ASCII")),
    }
}

fn authenticate(authenticator: &Authenticator, headers: &http::HeaderMap) -> Result<Caller, String> {
    match authenticator {
        Authenticator::LocalDevelopment => {
            let Some(actor) = header(headers, ACTOR_HEADER)? else {
                return Err(format!("no caller: send the {ACTOR_HEADER} metadata entry (local development mode)"));
            };
            let principal = Principal::parse(ACTOR_HEADER, actor).map_err(|e| e.to_string())?;
            let roles = match header(headers, ROLES_HEADER)? {
                None => Roles::of(&[Role::Admin]),
                Some(names) => {
                    let names: Vec<&str> = names.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
                    if let Some(unknown) = names.iter().find(|n| Role::parse(n).is_none()) {
                        return Err(format!(
                            "{ROLES_HEADER}: {} is not a role (admin, member, auditor, reader)",
                            quote(unknown)
                        ));
                    }
                    Roles::from_names(names)
                }
            };
            let teams = super::teams_of(header(headers, TEAMS_HEADER)?.unwrap_or_default().split(','));
            Ok(Caller { principal, roles, credential: Credential::LocalDevelopment, teams })
        }
        Authenticator::Tokens { .. } => {
            let Some(value) = header(headers, AUTHORIZATION_HEADER)? else {
                return Err("no credentials: send the metadata entry `authorization: Bearer <token>`".into());
            };
            if value.len() > MAX_TOKEN_BYTES {
                return Err(format!("the authorization entry is longer than {MAX_TOKEN_BYTES} bytes"));
            }
            let token = match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
                    token.trim()
                }
                _ => return Err("the authorization entry is not `Bearer <token>`".into()),
            };
            authenticator.authenticate_token(token).map_err(|e| e.0)
        }
    }
}

fn trace(headers: &http::HeaderMap) -> Result<Trace, DomainError> {
    let id = |name: &str| -> Result<Option<String>, DomainError> {
        match headers.get(name) {
            None => Ok(None),
            Some(value) => value
                .to_str()
                .map_err(|_| DomainError::invalid(name, "is not valid ASCII"))
                .and_then(|value| parse_token(name, value))
                .map(Some),
        }
    };
    Ok(Trace { correlation_id: id(CORRELATION_HEADER)?, causation_id: id(CAUSATION_HEADER)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadline_of(value: &str) -> Option<Duration> {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-timeout", http::HeaderValue::from_str(value).expect("header"));
        callers_deadline(&headers)
    }

    #[test]
    fn in_local_development_the_teams_header_names_the_callers_teams() {
        let mut headers = http::HeaderMap::new();
        headers.insert(ACTOR_HEADER, http::HeaderValue::from_static("lea@example.com"));
        let caller = authenticate(&Authenticator::LocalDevelopment, &headers).expect("a caller");
        assert!(caller.teams.is_empty());
        headers.insert(TEAMS_HEADER, http::HeaderValue::from_static("design-leads, team:ux,,"));
        let caller = authenticate(&Authenticator::LocalDevelopment, &headers).expect("a caller");
        let teams: Vec<&str> = caller.teams.iter().map(Principal::as_str).collect();
        assert_eq!(teams, ["team:design-leads", "team:ux"]);
    }

    #[test]
    fn the_callers_deadline_is_read_in_every_unit_and_nonsense_is_ignored() {
        assert_eq!(deadline_of("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(deadline_of("3M"), Some(Duration::from_secs(180)));
        assert_eq!(deadline_of("10S"), Some(Duration::from_secs(10)));
        assert_eq!(deadline_of("300m"), Some(Duration::from_millis(300)));
        assert_eq!(deadline_of("300000u"), Some(Duration::from_millis(300)));
        assert_eq!(deadline_of("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for nonsense in ["", "S", "123456789S", "10s", "1.5S", "-1S", "+1S", "10 S", "١S"] {
            assert_eq!(deadline_of(nonsense), None, "{nonsense:?}");
        }
        assert_eq!(callers_deadline(&http::HeaderMap::new()), None);
    }

    #[test]
    fn the_guard_answers_a_little_before_the_callers_deadline() {
        assert_eq!(answer_before(Duration::from_secs(3)), Duration::from_millis(2950));
        assert_eq!(answer_before(Duration::from_millis(300)), Duration::from_millis(285));
        assert_eq!(answer_before(Duration::from_millis(10)), Duration::from_millis(9));
        assert_eq!(answer_before(Duration::ZERO), Duration::ZERO);
    }
}
