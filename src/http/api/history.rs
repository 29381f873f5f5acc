//! `GET /api/initiatives/{initiative}/as-of?version=N`: the initiative's alignment as of
//! one of its versions, with the explanation of every decision's functions at that version
//! and the event that made the version, told by the narrator — the board's as-of slider.
//!
//! Built from the audit API's functions: the state is the store's fold of the stream's
//! prefix (`Store::state_until`, as gRPC `GetAlignmentAsOf`), projected (`project`) and
//! explained (`explain`, as gRPC `Explain`); nothing is folded here. It needs what they
//! need: the auditor or admin role (any caller in local development mode).

use axum::{
    Extension,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
    response::Response,
};
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::detail::{TimelineEntry, timeline_entry};
use super::{bounded_json, domain_response, error_response, field_error, store_response};
use crate::domain::{
    AlignmentView, DomainError,
    explain::{Explanation, explain},
    project,
    values::{InitiativeRef, parser_message, quote},
};
use crate::http::App;
use crate::security::{Caller, Right};
use crate::store::audit::Until;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AsOfQuery {
    version: Option<String>,
}

#[derive(Debug, Serialize)]
struct AsOf {
    /// The version shown, and the initiative's version now (the slider's range is 1..it).
    version: u64,
    current_version: u64,
    alignment: AlignmentView,
    explanation: Explanation,
    /// The event that made `version`, narrated.
    event: Option<TimelineEntry>,
}

/// The version asked for: a whole number from 1 to `current` (none: `current`).
fn version(given: Option<&str>, current: u64) -> Result<u64, DomainError> {
    let Some(text) = given.map(str::trim).filter(|t| !t.is_empty()) else { return Ok(current) };
    match text.parse::<u64>() {
        Ok(version) if (1..=current).contains(&version) => Ok(version),
        _ => Err(DomainError::invalid(
            "version",
            format!("{} is not a version of this initiative: use a whole number from 1 to {current}", quote(text)),
        )),
    }
}

pub(crate) async fn as_of(
    State(app): State<App>,
    caller: Option<Extension<Caller>>,
    Path(initiative): Path<String>,
    query: Result<Query<AsOfQuery>, QueryRejection>,
) -> Response {
    // The guard let a reader through; the history is the audit API's, as in gRPC.
    if let Some(Extension(caller)) = &caller
        && !caller.roles.grants(Right::Audit)
    {
        let reason = format!(
            "the alignment as of a version needs {}; {} holds {}",
            Right::Audit.describe(),
            caller.principal,
            caller.roles
        );
        warn!(target: "accord::security", event = "permission_denied", principal = %caller.principal,
            roles = %caller.roles, http = "/api/initiatives/{initiative}/as-of", %reason, "HTTP request refused: service role");
        return error_response(StatusCode::FORBIDDEN, &reason);
    }
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return field_error("query", &format!("query: {}", parser_message(&rejection.body_text()))),
    };
    let target = match InitiativeRef::parse("initiative", &initiative) {
        Ok(target) => target,
        Err(error) => return domain_response(error),
    };
    let store = &app.state.store;
    let current = match store.initiative(&target).await {
        Ok(Some(current)) => current,
        Ok(None) => return error_response(StatusCode::NOT_FOUND, &format!("initiative {target} not found")),
        Err(error) => return store_response(error),
    };
    let version = match version(query.version.as_deref(), current.version) {
        Ok(version) => version,
        Err(error) => return domain_response(error),
    };
    let state = match store.state_until(current.id.0, Until::Version(version)).await {
        Ok(Some(state)) => state,
        Ok(None) => return error_response(StatusCode::NOT_FOUND, &format!("initiative {target} has no events")),
        Err(error) => return store_response(error),
    };
    let at = i64::try_from(version).unwrap_or(i64::MAX);
    let event = match store.read_stream(current.id.0, at, 1).await {
        Ok(events) => events.first().map(|stored| timeline_entry(&state, stored)),
        Err(error) => return store_response(error),
    };
    bounded_json(&AsOf {
        version,
        current_version: current.version,
        alignment: project(&state),
        explanation: explain(&state, None),
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_a_whole_number_within_the_history() {
        assert_eq!(version(None, 7).expect("now"), 7);
        assert_eq!(version(Some(" "), 7).expect("now"), 7);
        assert_eq!(version(Some("3"), 7).expect("three"), 3);
        for bad in ["0", "8", "-1", "two", &"9".repeat(500)] {
            match version(Some(bad), 7) {
                Err(DomainError::InvalidArgument { field, message }) => {
                    assert_eq!(field, "version");
                    assert!(message.len() < 200, "a short quote: {message}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
