//! The HTTP side of the server: the built-in web board (one static page, its script and
//! style, embedded in the binary), the JSON and server-sent-events API the board reads,
//! and the operational endpoints (`/livez`, `/readyz`, `/healthz`, `/metrics`).
//!
//! Routes:
//! - `GET /`, `/board.js`, `/board.css`: the board (no build step, no external assets);
//! - `GET /livez`: `ok` while the process answers (liveness: restart it if not);
//! - `GET /readyz`: `ok` while the event store answers (saying so when a configured
//!   read-only standby does not, and reads fall back to the primary), 503 while it does not
//!   (readiness: send it no traffic; see `crate::health`);
//! - `GET /healthz`: the same as `/readyz`;
//! - `GET /metrics`: Prometheus text (keep this listener on an internal network: the
//!   metrics are not authenticated);
//! - `GET /api/initiatives/{initiative}`: one initiative's alignment, decisions with their
//!   sign-off matrix per revision, feedback and timeline (see `api::detail`);
//! - `GET /api/initiatives/{initiative}/as-of?version=N`: its alignment as of version N
//!   (default: now) with the explanation of every function's state then and the event
//!   that made the version, narrated (see `api::history`; the board's as-of slider);
//!   like gRPC's audit API it needs the auditor or admin role (403 otherwise);
//! - `GET /api/initiatives/{initiative}/decisions/{decision}/diff?from=A&to=B`: a
//!   decision's revisions and a word diff of each content field between two of them
//!   (default: the latest material revision and the one before; see `api::diff`);
//! - `GET /api/me`: the authenticated caller's principal and roles (none in local
//!   development mode, where the board asks the user who they are);
//! - `GET /api/inbox?principal=…`: the sign-offs waiting on a principal, as gRPC
//!   `GetInbox` computes them; without `principal`, the caller's own (see `api::me`);
//! - `GET /api/watch?…`: the live alignment of every matching initiative as
//!   `text/event-stream`, built on the shared live feed (see `api::watch`);
//! - `GET /auth.js`: the board's sign-in block (who is signed in, Sign in / Sign out);
//! - `GET /auth/login?return_to=`, `GET /auth/callback`, `GET /auth/session`,
//!   `POST /auth/logout`: signing in with the OpenID provider of the `[oidc]` section
//!   and the session that follows (see `auth`); 404 without that section.
//!
//! In local development mode the API is open (the server is loopback-only then);
//! otherwise `/api/*` needs `Authorization: Bearer <token>` of a caller with an Accord
//! role that may read, or the session cookie of a board sign-in (then a state-changing
//! request also needs the session's `X-CSRF-Token` and must come from the board's own
//! origin). Refusals are logged like the gRPC guard's (target `accord::security`), never
//! with the token or session id.

mod api;
mod auth;

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Serialize;
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};
use tracing::warn;

use crate::health::Readiness;
use crate::live::{Feed, Reads};
use crate::security::oidc::SignIn;
use crate::security::{Authenticator, Right};
use crate::store::Store;

/// What the HTTP handlers need: the store for point reads, the live feed for the event
/// stream, how callers are authenticated, and whether the store answers.
#[derive(Clone, Debug)]
pub struct HttpState {
    pub store: Store,
    pub feed: Feed,
    pub authenticator: Authenticator,
    pub readiness: Readiness,
    /// Board sign-in with an OpenID provider (`[oidc]`), if configured.
    pub sign_in: Option<SignIn>,
}

/// Event streams open at once on the HTTP listener; past it, 503.
const MAX_EVENT_STREAMS: usize = 256;

/// The state every handler sees: the caller's state plus the shutdown signal (event
/// streams end when it turns true) and the bound on open event streams.
#[derive(Clone)]
struct App {
    state: HttpState,
    /// The feed's reads (the inbox, as gRPC answers it).
    reads: Reads,
    stopping: watch::Receiver<bool>,
    streams: Arc<Semaphore>,
}

const BOARD_HTML: &str = include_str!("assets/board.html");
const BOARD_JS: &str = include_str!("assets/board.js");
const BOARD_CSS: &str = include_str!("assets/board.css");
const AUTH_JS: &str = include_str!("assets/auth.js");

/// Serves the board and its API on `listener` until `stopping` turns true (or its sender
/// goes away); open event streams end then, and the server waits for requests in flight.
pub async fn serve_http(
    listener: TcpListener,
    state: HttpState,
    stopping: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = router(state, stopping.clone());
    let mut signal = stopping;
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            // An error means the sender is gone: nobody can ask to keep running either.
            let _ = signal.wait_for(|stop| *stop).await;
        })
        .await
}

fn router(state: HttpState, stopping: watch::Receiver<bool>) -> Router {
    let reads = Reads::new(state.feed.clone());
    let app = App { state, reads, stopping, streams: Arc::new(Semaphore::new(MAX_EVENT_STREAMS)) };
    let api = Router::new()
        .route("/me", get(api::me))
        .route("/inbox", get(api::inbox))
        .route("/initiatives/{initiative}", get(api::initiative))
        .route("/initiatives/{initiative}/as-of", get(api::as_of))
        .route("/initiatives/{initiative}/decisions/{decision}/diff", get(api::diff))
        .route("/watch", get(api::watch))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such API endpoint") })
        .layer(middleware::from_fn_with_state(app.clone(), require_reader));
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", BOARD_HTML) }))
        .route("/board.js", get(|| async { asset("text/javascript; charset=utf-8", BOARD_JS) }))
        .route("/board.css", get(|| async { asset("text/css; charset=utf-8", BOARD_CSS) }))
        .route("/auth.js", get(|| async { asset("text/javascript; charset=utf-8", AUTH_JS) }))
        .route("/auth/login", get(auth::login))
        .route("/auth/callback", get(auth::callback))
        .route("/auth/session", get(auth::session))
        .route("/auth/logout", post(auth::logout))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/healthz", get(ready))
        .route("/metrics", get(metrics))
        .nest("/api", api)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .layer(middleware::map_response(security_headers))
        .with_state(app)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    // Revalidated every time: the assets change with the binary, and they are small.
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn ready(State(app): State<App>) -> Response {
    if app.state.readiness.is_ready() {
        match app.state.store.standby_status() {
            crate::store::StandbyStatus::Down => {
                "ok; the read-only standby does not answer: reads go to the primary".into_response()
            }
            _ => "ok".into_response(),
        }
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: the event store does not answer").into_response()
    }
}

async fn metrics(State(app): State<App>) -> Response {
    let body = crate::metrics::render(&app.state.store);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The board loads nothing from elsewhere and is never framed.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The JSON body of every API error: what went wrong and, for bad input, which field.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(ErrorBody { error: message, field: None })).into_response()
}

fn field_error(field: &str, message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(ErrorBody { error: message, field: Some(field) })).into_response()
}

/// The token of an `Authorization: Bearer …` header, or why there is none.
fn bearer(headers: &HeaderMap) -> Result<&str, &'static str> {
    let value = headers.get(header::AUTHORIZATION).ok_or("missing bearer token (Authorization: Bearer …)")?;
    let value = value.to_str().map_err(|_| "the authorization header is not readable text")?;
    let (scheme, token) = value.split_once(' ').ok_or("the authorization header is not \"Bearer <token>\"")?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err("the authorization header is not \"Bearer <token>\"");
    }
    Ok(token.trim())
}

/// Lets a request to `/api/*` through when local development mode is on, or when its
/// bearer token — or, without one, its board session cookie (with its CSRF token on a
/// state-changing request) — names a caller whose roles may read. The caller goes into
/// the request's extensions (`Caller`).
async fn require_reader(State(app): State<App>, mut request: Request, next: Next) -> Response {
    if app.state.authenticator.is_local_development() {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |ConnectInfo(address)| address.to_string());
    let by_session =
        !request.headers().contains_key(header::AUTHORIZATION) && auth::has_session_cookie(&app, request.headers());
    let authenticated = if by_session {
        match auth::resolve(&app, request.headers()).await {
            Ok(resolved) => {
                if let Some(reason) = auth::check_csrf(&app, request.method(), request.headers(), &resolved.row) {
                    warn!(target: "accord::security", event = "csrf_refused", principal = %resolved.caller.principal,
                        http = %path, %peer, %reason, "HTTP request refused: CSRF");
                    return error(StatusCode::FORBIDDEN, &reason);
                }
                Ok(resolved.caller)
            }
            Err(auth::Ended(reason)) => {
                warn!(target: "accord::security", event = "unauthenticated", http = %path, %peer, %reason,
                    "HTTP request refused: no valid session");
                return auth::ended(&app, &reason);
            }
        }
    } else {
        bearer(request.headers())
            .map_err(str::to_owned)
            .and_then(|token| app.state.authenticator.authenticate_token(token).map_err(|e| e.0))
    };
    let caller = match authenticated {
        Ok(caller) => caller,
        Err(reason) => {
            warn!(target: "accord::security", event = "unauthenticated", http = %path, %peer, %reason,
                "HTTP request refused: not authenticated");
            let mut response = error(StatusCode::UNAUTHORIZED, &reason);
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    if !caller.roles.grants(Right::Read) {
        let reason =
            format!("the board API needs {}; {} holds {}", Right::Read.describe(), caller.principal, caller.roles);
        warn!(target: "accord::security", event = "permission_denied", principal = %caller.principal,
            roles = %caller.roles, http = %path, %peer, %reason, "HTTP request refused: service role");
        return error(StatusCode::FORBIDDEN, &reason);
    }
    // The handlers find who is calling here, however the caller was authenticated.
    request.extensions_mut().insert(caller);
    next.run(request).await
}
