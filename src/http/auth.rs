//! Signing in to the board with the company's identity provider (OpenID Connect, see
//! `crate::security::oidc`) and the sessions that follow.
//!
//! - `GET /auth/login?return_to=/path?query`: sends the browser to the provider (PKCE
//!   S256, state, nonce); the attempt waits in a signed, HttpOnly, 10-minute cookie. A
//!   `return_to` that is not a path on this board is refused (no open redirect).
//! - `GET /auth/callback?code=&state=`: checks the state against that cookie, exchanges
//!   the code, verifies the ID token, maps its claims to a principal and roles, stores a
//!   session and sets its cookie; an error page (and no session) otherwise.
//! - `GET /auth/session`: JSON for the board: whether sign-in is configured, who is
//!   signed in, and the CSRF token its state-changing requests send as `X-CSRF-Token`.
//! - `POST /auth/logout`: (CSRF token and same origin required) deletes the session and
//!   sends the browser to the provider's end-session endpoint when it has one.
//!
//! Sessions live in the store (`store::sessions`: only the SHA-256 of the id), so every
//! replica on the same database accepts every session. The idle expiry slides on use
//! (last-seen written at most once a minute); the absolute expiry never moves; when the
//! provider's ID token has expired and it gave a refresh token, the claims are refreshed
//! (new roles apply; a refused refresh ends the session).

use std::time::Duration;

use axum::{
    Json,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::App;
use crate::domain::values::{Principal, clip};
use crate::security::oidc::{SignIn, SignInError, origin_of, parse_return_to, subtle_eq};
use crate::security::{Caller, Credential, Roles};
use crate::store::{SessionClaims, SessionRow};

/// The session cookie: `__Host-` prefixed and `Secure` on https; on a loopback http
/// address (development, tests) browsers refuse both, so it goes without.
const SESSION_COOKIE: &str = "__Host-accord_session";
const SESSION_COOKIE_PLAIN: &str = "accord_session";
const LOGIN_COOKIE: &str = "__Host-accord_login";
const LOGIN_COOKIE_PLAIN: &str = "accord_login";
/// The header state-changing requests of a session carry its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The last-seen time is written at most this often (or an eighth of the idle lifetime,
/// when that is shorter).
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// The claims are refreshed this long before the ID token expires.
const REFRESH_AHEAD: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

fn session_cookie_name(sign_in: &SignIn) -> &'static str {
    if sign_in.settings().secure_cookies { SESSION_COOKIE } else { SESSION_COOKIE_PLAIN }
}

fn login_cookie_name(sign_in: &SignIn) -> &'static str {
    if sign_in.settings().secure_cookies { LOGIN_COOKIE } else { LOGIN_COOKIE_PLAIN }
}

/// The value of cookie `name` in the request, if it sent one.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

fn set_cookie(sign_in: &SignIn, name: &str, value: &str, max_age: Duration) -> HeaderValue {
    let secure = if sign_in.settings().secure_cookies { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}; Max-Age={}", max_age.as_secs());
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("accord_invalid=; Max-Age=0"))
}

fn clear_cookie(sign_in: &SignIn, name: &str) -> HeaderValue {
    set_cookie(sign_in, name, "", Duration::ZERO)
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

fn hash(session_id: &str) -> [u8; 32] {
    Sha256::digest(session_id.as_bytes()).into()
}

/// A small HTML page for the browser: what went wrong, and a way back.
fn page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Accord — sign-in</title>\
         <link rel=\"stylesheet\" href=\"/board.css\"></head><body><main class=\"auth-error\">\
         <h1>Sign-in failed</h1><p id=\"auth-error\">{}</p>\
         <p><a href=\"/auth/login\">Sign in again</a> · <a href=\"/\">Back to the board</a></p></main></body></html>\n",
        escape_html(message)
    );
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn not_configured() -> Response {
    super::error(StatusCode::NOT_FOUND, "sign-in is not configured (no [oidc] section in the security configuration)")
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginQuery {
    return_to: Option<String>,
}

/// `GET /auth/login`.
pub(super) async fn login(State(app): State<App>, Query(query): Query<LoginQuery>) -> Response {
    let Some(sign_in) = app.state.sign_in.clone() else { return not_configured() };
    let return_to = match parse_return_to(query.return_to.as_deref().unwrap_or_default()) {
        Ok(path) => path,
        Err(reason) => {
            warn!(target: "accord::security", event = "sign_in_refused", %reason, "sign-in refused: return_to");
            return page(StatusCode::BAD_REQUEST, &reason);
        }
    };
    match sign_in.begin(return_to, now().timestamp()).await {
        Ok((url, attempt)) => {
            let mut response = redirect(&url);
            let cookie = set_cookie(
                &sign_in,
                login_cookie_name(&sign_in),
                &sign_in.seal(&attempt),
                crate::security::oidc::LOGIN_LIFETIME,
            );
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err(error) => {
            warn!(target: "accord::security", event = "sign_in_failed", reason = %error, "sign-in could not start");
            page(StatusCode::BAD_GATEWAY, &error.to_string())
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/callback`.
pub(super) async fn callback(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let Some(sign_in) = app.state.sign_in.clone() else { return not_configured() };
    let login_cookie = login_cookie_name(&sign_in);
    let refuse = |status: StatusCode, reason: String| {
        warn!(target: "accord::security", event = "sign_in_refused", %reason, "sign-in refused");
        let mut response = page(status, &reason);
        response.headers_mut().append(header::SET_COOKIE, clear_cookie(&sign_in, login_cookie));
        response
    };
    let attempt = match cookie(&headers, login_cookie).map(|sealed| sign_in.open(sealed, now().timestamp())) {
        Some(Ok(attempt)) => attempt,
        Some(Err(reason)) => return refuse(StatusCode::BAD_REQUEST, reason),
        None => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "no sign-in is under way in this browser (its cookie is missing or expired); start again".into(),
            );
        }
    };
    let state_matches = query.state.as_deref().is_some_and(|state| subtle_eq(state, &attempt.state));
    if !state_matches {
        return refuse(StatusCode::BAD_REQUEST, "the sign-in's state does not match; start again".into());
    }
    if let Some(error) = &query.error {
        let described = query.error_description.as_deref().map(|d| format!(": {}", clip(d, 200))).unwrap_or_default();
        return refuse(
            StatusCode::UNAUTHORIZED,
            format!("the identity provider answered {}{described}", clip(error, 100)),
        );
    }
    let Some(code) = query.code.filter(|code| !code.is_empty()) else {
        return refuse(StatusCode::BAD_REQUEST, "the identity provider sent no authorization code".into());
    };
    let signed_in = match sign_in.finish(code, &attempt).await {
        Ok(signed_in) => signed_in,
        Err(error) => {
            let status = match error {
                SignInError::Provider(_) => StatusCode::BAD_GATEWAY,
                SignInError::Refused(_) | SignInError::Invalid(_) => StatusCode::UNAUTHORIZED,
            };
            return refuse(status, format!("sign-in refused: {error}"));
        }
    };
    if signed_in.roles.is_empty() {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "{} holds no Accord role (the {:?} claim names none of admin, member, auditor, reader)",
                signed_in.principal,
                sign_in.settings().roles_claim
            ),
        );
    }
    let (Some(session_id), Some(csrf_token)) = (random_token(), random_token()) else {
        return page(StatusCode::INTERNAL_SERVER_ERROR, "no randomness available for the session");
    };
    let settings = sign_in.settings();
    let at = now();
    let absolute = chrono::TimeDelta::from_std(settings.session_absolute).unwrap_or(chrono::TimeDelta::days(7));
    let row = SessionRow {
        id_hash: hash(&session_id),
        principal: signed_in.principal.to_string(),
        roles: role_names(signed_in.roles),
        teams: team_names(&signed_in.teams),
        csrf_token,
        refresh_token: signed_in.refresh_token.clone(),
        id_token: Some(signed_in.id_token.clone()),
        created_at: at,
        last_seen_at: at,
        expires_at: at + absolute,
        refresh_at: DateTime::from_timestamp(signed_in.expires_at, 0).unwrap_or(at + chrono::TimeDelta::hours(1)),
    };
    let idle = chrono::TimeDelta::from_std(settings.session_idle).unwrap_or(chrono::TimeDelta::hours(8));
    // A session this browser held before is replaced, not left behind.
    if let Some(previous) = cookie(&headers, session_cookie_name(&sign_in))
        && let Err(error) = app.state.store.delete_session(&hash(previous)).await
    {
        warn!(%error, "could not delete the session a new sign-in replaces");
    }
    if let Err(error) = app.state.store.prune_sessions(at, at - idle).await {
        warn!(%error, "could not prune expired sessions");
    }
    if let Err(error) = app.state.store.create_session(&row).await {
        warn!(target: "accord::security", event = "sign_in_failed", %error, "sign-in: the session could not be stored");
        return page(StatusCode::SERVICE_UNAVAILABLE, "the session could not be stored; try again");
    }
    info!(target: "accord::security", event = "signed_in", principal = %signed_in.principal, roles = %signed_in.roles,
        "signed in to the board");
    let mut response = redirect(&attempt.return_to);
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, clear_cookie(&sign_in, login_cookie));
    headers.append(
        header::SET_COOKIE,
        set_cookie(&sign_in, session_cookie_name(&sign_in), &session_id, settings.session_absolute),
    );
    response
}

fn team_names(teams: &std::collections::BTreeSet<Principal>) -> String {
    teams.iter().map(Principal::as_str).collect::<Vec<_>>().join(" ")
}

fn role_names(roles: Roles) -> String {
    roles.iter().map(|role| role.as_str()).collect::<Vec<_>>().join(" ")
}

/// A session the request's cookie names, checked and kept up to date.
pub(super) struct Resolved {
    pub caller: Caller,
    pub row: SessionRow,
}

/// Why a session cookie did not authenticate: the 401 to answer (clearing the cookie).
pub(super) struct Ended(pub String);

/// Whether the request carries a session cookie (sign-in configured).
pub(super) fn has_session_cookie(app: &App, headers: &HeaderMap) -> bool {
    app.state.sign_in.as_ref().is_some_and(|sign_in| cookie(headers, session_cookie_name(sign_in)).is_some())
}

/// The session of the request's cookie, if it is still valid: expired ones are deleted,
/// the last-seen time slides, due claims are refreshed.
pub(super) async fn resolve(app: &App, headers: &HeaderMap) -> Result<Resolved, Ended> {
    let Some(sign_in) = app.state.sign_in.as_ref() else { return Err(Ended("sign-in is not configured".into())) };
    let Some(session_id) = cookie(headers, session_cookie_name(sign_in)) else {
        return Err(Ended("not signed in".into()));
    };
    if session_id.len() != 43 || !session_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(Ended("the session cookie is malformed; sign in again".into()));
    }
    let id_hash = hash(session_id);
    let store = &app.state.store;
    let unavailable = |_| Ended("the session store does not answer; try again".into());
    let Some(mut row) = store.session(&id_hash).await.map_err(unavailable)? else {
        return Err(Ended("the session has ended; sign in again".into()));
    };
    let settings = sign_in.settings();
    let at = now();
    let idle = chrono::TimeDelta::from_std(settings.session_idle).unwrap_or(chrono::TimeDelta::hours(8));
    if at >= row.expires_at || at - row.last_seen_at >= idle {
        let _ = store.delete_session(&id_hash).await;
        info!(target: "accord::security", event = "session_expired", principal = %row.principal, "board session expired");
        return Err(Ended("the session has expired; sign in again".into()));
    }
    if at + REFRESH_AHEAD >= row.refresh_at && row.refresh_token.is_some() {
        let _turn = sign_in.refresh_turn().await;
        // Another request of this session may have refreshed it while this one waited.
        row =
            store.session(&id_hash).await.map_err(unavailable)?.ok_or_else(|| Ended("the session has ended".into()))?;
        if now() + REFRESH_AHEAD >= row.refresh_at
            && let Some(used) = row.refresh_token.clone()
        {
            row = refresh(app, sign_in, &id_hash, row, &used).await?;
        }
    }
    let touch_every = TOUCH_EVERY.min(settings.session_idle / 8);
    let touch_every = chrono::TimeDelta::from_std(touch_every).unwrap_or(chrono::TimeDelta::minutes(1));
    if at - row.last_seen_at >= touch_every {
        if let Err(error) = store.touch_session(&id_hash, at).await {
            warn!(%error, "could not record a session's use");
        }
        row.last_seen_at = at;
    }
    let principal = Principal::parse("principal", &row.principal)
        .map_err(|_| Ended("the session names no valid principal; sign in again".into()))?;
    let caller = Caller {
        principal,
        roles: Roles::from_names(row.roles.split(' ')),
        credential: Credential::Session { issuer: settings.issuer.as_str().to_owned() },
        teams: crate::security::teams_of(row.teams.split(' ')),
    };
    Ok(Resolved { caller, row })
}

async fn refresh(
    app: &App,
    sign_in: &SignIn,
    id_hash: &[u8; 32],
    row: SessionRow,
    used: &str,
) -> Result<SessionRow, Ended> {
    let store = &app.state.store;
    let unavailable = |_| Ended("the session store does not answer; try again".into());
    match sign_in.refresh(used).await {
        Ok(signed_in) if !signed_in.roles.is_empty() => {
            let claims = SessionClaims {
                principal: signed_in.principal.to_string(),
                roles: role_names(signed_in.roles),
                teams: team_names(&signed_in.teams),
                refresh_token: signed_in.refresh_token.clone(),
                id_token: Some(signed_in.id_token.clone()),
                refresh_at: DateTime::from_timestamp(signed_in.expires_at, 0)
                    .unwrap_or(now() + chrono::TimeDelta::hours(1)),
            };
            store.refresh_session(id_hash, used, &claims).await.map_err(unavailable)?;
            info!(target: "accord::security", event = "session_refreshed", principal = %signed_in.principal,
                roles = %signed_in.roles, "board session refreshed");
            // Another replica may have refreshed it at the same time: its row is as good.
            store.session(id_hash).await.map_err(unavailable)?.ok_or_else(|| Ended("the session has ended".into()))
        }
        Ok(signed_in) => {
            let _ = store.delete_session(id_hash).await;
            Err(Ended(format!("{} no longer holds an Accord role; the session has ended", signed_in.principal)))
        }
        Err(SignInError::Provider(reason)) => {
            // The provider is unreachable: keep the session as it is and try again later.
            warn!(target: "accord::security", event = "session_refresh_failed", principal = %row.principal, %reason,
                "board session not refreshed; keeping its claims");
            Ok(row)
        }
        Err(error) => {
            // Another replica may have used this refresh token a moment ago.
            if let Ok(Some(current)) = store.session(id_hash).await
                && current.refresh_token.as_deref() != Some(used)
            {
                return Ok(current);
            }
            let _ = store.delete_session(id_hash).await;
            warn!(target: "accord::security", event = "session_refresh_refused", principal = %row.principal,
                reason = %error, "board session ended: the provider refused to refresh it");
            Err(Ended("the identity provider ended the session; sign in again".into()))
        }
    }
}

/// The 401 for a session that did not authenticate; it clears the cookie.
pub(super) fn ended(app: &App, reason: &str) -> Response {
    let mut response = super::error(StatusCode::UNAUTHORIZED, reason);
    if let Some(sign_in) = &app.state.sign_in {
        response.headers_mut().append(header::SET_COOKIE, clear_cookie(sign_in, session_cookie_name(sign_in)));
    }
    response
}

/// Checks a state-changing request authenticated by a session: its CSRF token, and that
/// it comes from the board's own origin. `None`: it may go on.
pub(super) fn check_csrf(app: &App, method: &Method, headers: &HeaderMap, row: &SessionRow) -> Option<String> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let sign_in = app.state.sign_in.as_ref()?;
    if let Some(origin) = headers.get(header::ORIGIN) {
        let expected = origin_of(&sign_in.settings().base_url);
        if origin.to_str().ok() != Some(expected.as_str()) {
            return Some("the request comes from another origin".into());
        }
    }
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.to_str().unwrap_or_default(), "same-origin" | "none")
    {
        return Some("the request comes from another site".into());
    }
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if sent.is_empty() {
        return Some("missing CSRF token (X-CSRF-Token; the board reads it from /auth/session)".into());
    }
    if !subtle_eq(sent, &row.csrf_token) {
        return Some("the CSRF token does not match this session".into());
    }
    None
}

#[derive(Debug, Serialize)]
struct SessionInfo {
    /// Whether sign-in (OpenID Connect) is configured.
    sign_in: bool,
    signed_in: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    /// Where to sign in (add `?return_to=`).
    #[serde(skip_serializing_if = "Option::is_none")]
    login: Option<&'static str>,
}

/// `GET /auth/session`.
pub(super) async fn session(State(app): State<App>, headers: HeaderMap) -> Response {
    let no_store = |mut response: Response| {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    };
    if app.state.sign_in.is_none() {
        let info = SessionInfo {
            sign_in: false,
            signed_in: false,
            principal: None,
            roles: None,
            csrf_token: None,
            expires_at: None,
            login: None,
        };
        return no_store(Json(info).into_response());
    }
    let signed_out = SessionInfo {
        sign_in: true,
        signed_in: false,
        principal: None,
        roles: None,
        csrf_token: None,
        expires_at: None,
        login: Some("/auth/login"),
    };
    if !has_session_cookie(&app, &headers) {
        return no_store(Json(signed_out).into_response());
    }
    match resolve(&app, &headers).await {
        Ok(Resolved { caller, row }) => {
            let info = SessionInfo {
                sign_in: true,
                signed_in: true,
                principal: Some(caller.principal.to_string()),
                roles: Some(caller.roles.iter().map(|role| role.as_str()).collect()),
                csrf_token: Some(row.csrf_token),
                expires_at: Some(row.expires_at.to_rfc3339()),
                login: Some("/auth/login"),
            };
            no_store(Json(info).into_response())
        }
        Err(Ended(_)) => {
            let mut response = no_store(Json(signed_out).into_response());
            if let Some(sign_in) = &app.state.sign_in {
                response.headers_mut().append(header::SET_COOKIE, clear_cookie(sign_in, session_cookie_name(sign_in)));
            }
            response
        }
    }
}

#[derive(Debug, Serialize)]
struct LoggedOut {
    redirect: String,
}

/// `POST /auth/logout`: answers JSON `{"redirect": …}` to a request that accepts JSON
/// (the board, which then goes there), else a 303 to it. Without a valid session there
/// is nothing to end: it answers the same, to `/`.
pub(super) async fn logout(State(app): State<App>, method: Method, headers: HeaderMap) -> Response {
    let Some(sign_in) = app.state.sign_in.clone() else { return not_configured() };
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    let resolved = match resolve(&app, &headers).await {
        Ok(resolved) => resolved,
        // No session (it expired, or was ended elsewhere): nothing to end, and nothing a
        // forged request could do either; the cookie is cleared all the same.
        Err(Ended(_)) => {
            let mut response =
                if wants_json { Json(LoggedOut { redirect: "/".into() }).into_response() } else { redirect("/") };
            response.headers_mut().append(header::SET_COOKIE, clear_cookie(&sign_in, session_cookie_name(&sign_in)));
            return response;
        }
    };
    if let Some(reason) = check_csrf(&app, &method, &headers, &resolved.row) {
        warn!(target: "accord::security", event = "csrf_refused", principal = %resolved.caller.principal, %reason,
            "logout refused");
        return super::error(StatusCode::FORBIDDEN, &reason);
    }
    if let Err(error) = app.state.store.delete_session(&resolved.row.id_hash).await {
        warn!(%error, "logout: the session could not be deleted");
        return super::error(StatusCode::SERVICE_UNAVAILABLE, "the session could not be deleted; try again");
    }
    info!(target: "accord::security", event = "signed_out", principal = %resolved.caller.principal,
        "signed out of the board");
    let to = sign_in.logout_url(resolved.row.id_token.as_deref()).await.unwrap_or_else(|| "/".to_owned());
    let mut response = if wants_json { Json(LoggedOut { redirect: to }).into_response() } else { redirect(&to) };
    response.headers_mut().append(header::SET_COOKIE, clear_cookie(&sign_in, session_cookie_name(&sign_in)));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; accord_session_x=2; accord_session=abc"));
        assert_eq!(cookie(&headers, "accord_session"), Some("abc"));
        assert_eq!(cookie(&headers, "accord"), None);
    }

    #[test]
    fn the_error_page_escapes_what_it_quotes() {
        assert_eq!(escape_html("<b>\"x\" & 'y'</b>"), "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;");
    }
}
