//! `GET /api/me`: who the caller is, as the bearer token the API checked says; and `GET
//! /api/inbox`: the sign-offs waiting on a person — the caller's own without
//! `?principal=`, as gRPC `GetInbox` computes it (`Reads::inbox`, the same function).
//!
//! In local development mode there is no caller (the API is open): `/api/me` says so,
//! and `/api/inbox` needs `?principal=` (the board asks the user who they are).

use axum::{
    Extension, Json,
    extract::{Query, State, rejection::QueryRejection},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{bounded_json, domain_response, field_error, read_response};
use crate::domain::{
    DomainError,
    alignment::{FunctionState, InitiativeStatus},
    values::{Principal, Stage, parser_message},
};
use crate::http::App;
use crate::live::Wanted;
use crate::security::Caller;

/// The most inbox items one answer carries (the rest are counted, not sent).
pub(crate) const MAX_INBOX_ITEMS: usize = 1000;

#[derive(Debug, Serialize)]
struct Me {
    /// The authenticated caller; `None` in local development mode.
    principal: Option<Principal>,
    /// The caller's Accord roles, as the server names them.
    roles: Option<String>,
    /// The teams the caller's credentials name (`team:NAME`).
    teams: Vec<Principal>,
    local_development: bool,
}

pub(crate) async fn me(State(app): State<App>, caller: Option<Extension<Caller>>) -> Response {
    let caller = caller.map(|Extension(caller)| caller);
    Json(Me {
        principal: caller.as_ref().map(|c| c.principal.clone()),
        roles: caller.as_ref().map(|c| c.roles.to_string()),
        teams: caller.as_ref().map(|c| c.teams.iter().cloned().collect()).unwrap_or_default(),
        local_development: app.state.authenticator.is_local_development(),
    })
    .into_response()
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct InboxQuery {
    principal: Option<String>,
}

#[derive(Debug, Serialize)]
struct Inbox {
    principal: Principal,
    items: Vec<InboxEntry>,
    /// Every item waiting, of which `items` holds at most `MAX_INBOX_ITEMS`.
    total: usize,
    truncated: bool,
}

/// One sign-off waiting, with what the board shows of its initiative.
#[derive(Debug, Serialize)]
struct InboxEntry {
    initiative_id: Uuid,
    initiative_key: String,
    initiative_title: String,
    initiative_status: InitiativeStatus,
    stage: Stage,
    owner: Principal,
    last_activity: DateTime<Utc>,
    decision_id: String,
    decision_title: String,
    revision: u32,
    function: String,
    state: FunctionState,
    reason: String,
    /// The team it waits on the person through; absent when on them.
    #[serde(skip_serializing_if = "Option::is_none")]
    via_team: Option<Principal>,
}

pub(crate) async fn inbox(
    State(app): State<App>,
    caller: Option<Extension<Caller>>,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return field_error("query", &format!("query: {}", parser_message(&rejection.body_text()))),
    };
    let given = query.principal.as_deref().map(str::trim).filter(|p| !p.is_empty());
    let caller = caller.map(|Extension(caller)| caller);
    let principal = match (given, &caller) {
        (Some(text), _) => match Principal::parse("principal", text) {
            Ok(principal) => principal,
            Err(error) => return domain_response(error),
        },
        (None, Some(caller)) => caller.principal.clone(),
        (None, None) => {
            return domain_response(DomainError::invalid(
                "principal",
                "is required: no caller is signed in (local development mode); pass ?principal=…",
            ));
        }
    };
    // Your own inbox includes what waits on your teams; someone else's, only on them.
    let no_teams = std::collections::BTreeSet::new();
    let teams = match &caller {
        Some(caller) if caller.principal == principal => &caller.teams,
        _ => &no_teams,
    };
    let member = crate::domain::Member { person: &principal, teams };
    let inboxes = match app.reads.inbox(&app.state.store, member, Wanted::own_writes()).await {
        Ok(inboxes) => inboxes,
        Err(error) => return read_response(error),
    };
    let total = inboxes.iter().map(|(_, items)| items.len()).sum();
    let items = inboxes
        .iter()
        .flat_map(|(view, items)| {
            items.iter().map(move |item| InboxEntry {
                initiative_id: view.initiative_id.0,
                initiative_key: view.key.to_string(),
                initiative_title: view.title.clone(),
                initiative_status: view.status,
                stage: view.stage,
                owner: view.owner.clone(),
                last_activity: view.last_activity,
                decision_id: item.decision_id.to_string(),
                decision_title: item.decision_title.clone(),
                revision: item.revision,
                function: item.function.to_string(),
                state: item.state,
                reason: item.reason.clone(),
                via_team: item.via_team.clone(),
            })
        })
        .take(MAX_INBOX_ITEMS)
        .collect();
    bounded_json(&Inbox { principal, items, total, truncated: total > MAX_INBOX_ITEMS })
}
