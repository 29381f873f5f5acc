//! The board's JSON API: one initiative in detail (`GET /api/initiatives/{initiative}`)
//! and the live alignment of many as server-sent events (`GET /api/watch`).
//!
//! The detail is built from the same domain functions as gRPC `GetDecision`
//! (`evaluate_decision`, `sign_off_history`, `sign_off_counts`); the event stream is a
//! thin encoding of the shared live feed, so the board, gRPC `WatchAlignments` and every
//! other watcher see the same changes at the same positions.

use std::{collections::BTreeSet, convert::Infallible, time::Duration};

use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{error, warn};

use super::{App, error as error_response, field_error};
use crate::domain::{
    DomainError,
    alignment::{AlignmentView, FunctionEval, InitiativeStatus, evaluate_decision, sign_off_counts},
    event::{DecisionContent, OverrideRecord},
    narrate::{Reader, Tone, narrate},
    state::{Closure, Decision, DecisionStatus, Feedback, Initiative, SignOff, sign_off_history},
    values::{
        DecisionId, FeedbackId, Function, MAX_ERROR_BYTES, Principal, RevisionKind, Stage, Verdict, clip,
        parser_message, quote,
    },
};
use crate::live::{WatchFields, WatchFilter, WatchItem};
use crate::store::{InitiativeRef, StoreError, StoredEvent};

/// The most recent events the timeline shows.
const TIMELINE_LIMIT: u64 = 500;
/// How often an idle event stream sends a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

// ---- Errors -------------------------------------------------------------------------

/// A refusal as the API answers it; messages are cut to `MAX_ERROR_BYTES`, like gRPC's
/// (`grpc::status`), whatever a parser put in them.
fn domain_response(error: DomainError) -> Response {
    match error {
        DomainError::InvalidArgument { field, message } => {
            field_error(&field, &clip(&format!("{field}: {message}"), MAX_ERROR_BYTES))
        }
        DomainError::NotFound(message) => error_response(StatusCode::NOT_FOUND, &clip(&message, MAX_ERROR_BYTES)),
        other => error_response(StatusCode::BAD_REQUEST, &clip(&other.to_string(), MAX_ERROR_BYTES)),
    }
}

fn store_response(error: StoreError) -> Response {
    match error {
        StoreError::Domain(domain) => domain_response(domain),
        StoreError::Unavailable(reason) => {
            error!(%reason, "store unavailable");
            error_response(StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable; try again later")
        }
        StoreError::Corrupt(reason) => {
            error!(%reason, "corrupt history");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error: stored history could not be read")
        }
        StoreError::Database(db) => {
            error!(error = %db, "database error");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal database error")
        }
    }
}

// ---- GET /api/initiatives/{initiative} ------------------------------------------------

#[derive(Debug, Serialize)]
struct InitiativeDetail {
    alignment: AlignmentView,
    decisions: Vec<DecisionDetail>,
    /// Feedback on the initiative itself (not on one decision).
    feedback: Vec<Feedback>,
    timeline: Vec<TimelineEntry>,
    /// Whether the timeline starts after the first event (only the latest are shown).
    timeline_truncated: bool,
}

#[derive(Debug, Serialize)]
struct DecisionDetail {
    decision_id: DecisionId,
    title: String,
    status: DecisionStatus,
    alignment: crate::domain::alignment::DecisionAlignment,
    revision: u32,
    /// The revision approvals must be of to count (the latest material one).
    material_base: u32,
    content: DecisionContent,
    required_functions: Vec<Function>,
    proposed_by: Principal,
    proposed_at: DateTime<Utc>,
    /// Each required function's state now, why, and who can move it.
    functions: Vec<FunctionEval>,
    revisions: Vec<RevisionDetail>,
    feedback: Vec<Feedback>,
    closure: Option<Closure>,
    r#override: Option<OverrideRecord>,
    supersedes: Option<DecisionId>,
    superseded_by: Option<DecisionId>,
}

#[derive(Debug, Serialize)]
struct RevisionDetail {
    number: u32,
    kind: RevisionKind,
    title: String,
    by: Principal,
    at: DateTime<Utc>,
    note: String,
    required_functions: Vec<Function>,
    /// Function × verdicts recorded against this revision.
    matrix: Vec<MatrixRow>,
}

#[derive(Debug, Serialize)]
struct MatrixRow {
    function: Function,
    /// Oldest first; the ones no longer in force are marked.
    sign_offs: Vec<MatrixCell>,
}

#[derive(Debug, Serialize)]
struct MatrixCell {
    signer: Principal,
    verdict: Verdict,
    reason: String,
    comment: String,
    at: DateTime<Utc>,
    /// Neither replaced by a later verdict of the same signer nor revoked.
    in_force: bool,
    replaced: bool,
    revoked: bool,
    /// In force and counting now (signer still an approver; an approval not stale).
    counts: bool,
}

#[derive(Debug, Serialize)]
struct TimelineEntry {
    position: i64,
    version: i64,
    r#type: String,
    actor: String,
    recorded_at: DateTime<Utc>,
    summary: String,
    /// good, bad, warn or none: how the board colours it.
    tone: &'static str,
}

pub(super) async fn initiative(State(app): State<App>, Path(initiative): Path<String>) -> Response {
    let target = match InitiativeRef::parse("initiative", &initiative) {
        Ok(target) => target,
        Err(error) => return domain_response(error),
    };
    match initiative_detail(&app, &target).await {
        Ok(Some(detail)) => Json(detail).into_response(),
        Ok(None) => error_response(StatusCode::NOT_FOUND, &format!("initiative {target} not found")),
        Err(error) => store_response(error),
    }
}

async fn initiative_detail(app: &App, target: &InitiativeRef) -> Result<Option<InitiativeDetail>, StoreError> {
    let store = &app.state.store;
    let Some(initiative) = store.initiative(target).await? else {
        return Ok(None);
    };
    let Some(alignment) = store.alignment(&InitiativeRef::Id(initiative.id)).await? else {
        return Ok(None);
    };
    let mut decisions = Vec::with_capacity(initiative.decisions.len());
    for decision in initiative.decisions.values() {
        let events = store.sign_off_events(initiative.id, decision.id).await?;
        let recorded = events.iter().map(StoredEvent::to_recorded).collect::<Result<Vec<_>, _>>()?;
        let history = sign_off_history(decision.id, &recorded);
        decisions.push(decision_detail(&initiative, decision, &history));
    }
    // Newest first: what changed last matters most on a board.
    decisions.reverse();
    let from = initiative.version.saturating_sub(TIMELINE_LIMIT - 1).max(1);
    let events = store.read_stream(initiative.id.0, i64::try_from(from).unwrap_or(1), TIMELINE_LIMIT as i64).await?;
    let mut timeline: Vec<TimelineEntry> = events.iter().map(|e| timeline_entry(&initiative, e)).collect();
    timeline.reverse();
    let feedback = initiative.feedback.values().filter(|f| f.decision_id.is_none()).cloned().collect();
    Ok(Some(InitiativeDetail { alignment, decisions, feedback, timeline, timeline_truncated: from > 1 }))
}

fn decision_detail(initiative: &Initiative, decision: &Decision, history: &[SignOff]) -> DecisionDetail {
    let eval = evaluate_decision(initiative, decision);
    let revisions = decision
        .revisions
        .iter()
        .map(|revision| {
            let at_revision: Vec<&SignOff> = history.iter().filter(|s| s.revision == revision.number).collect();
            // Every function the revision needed, and any other that signed it anyway.
            let functions: BTreeSet<&Function> =
                revision.required_functions.iter().chain(at_revision.iter().map(|s| &s.function)).collect();
            let matrix = functions
                .into_iter()
                .map(|function| MatrixRow {
                    function: function.clone(),
                    sign_offs: at_revision
                        .iter()
                        .filter(|s| &s.function == function)
                        .map(|s| {
                            let in_force = !s.replaced && !s.revoked;
                            MatrixCell {
                                signer: s.signer.clone(),
                                verdict: s.verdict,
                                reason: s.reason.clone(),
                                comment: s.comment.clone(),
                                at: s.at,
                                in_force,
                                replaced: s.replaced,
                                revoked: s.revoked,
                                counts: in_force && decision.is_open() && sign_off_counts(initiative, decision, s),
                            }
                        })
                        .collect(),
                })
                .collect();
            RevisionDetail {
                number: revision.number,
                kind: revision.kind,
                title: revision.content.title.clone(),
                by: revision.by.clone(),
                at: revision.at,
                note: revision.note.clone(),
                required_functions: revision.required_functions.iter().cloned().collect(),
                matrix,
            }
        })
        .rev()
        .collect();
    DecisionDetail {
        decision_id: decision.id,
        title: decision.title().to_owned(),
        status: decision.status,
        alignment: eval.alignment,
        revision: decision.revision(),
        material_base: decision.material_base,
        content: decision.current().content.clone(),
        required_functions: decision.required_functions().iter().cloned().collect(),
        proposed_by: decision.proposed_by.clone(),
        proposed_at: decision.proposed_at,
        functions: eval.functions,
        revisions,
        feedback: initiative.feedback.values().filter(|f| f.decision_id == Some(decision.id)).cloned().collect(),
        closure: decision.closure.clone(),
        r#override: decision.r#override.clone(),
        supersedes: decision.supersedes,
        superseded_by: decision.superseded_by,
    }
}

fn timeline_entry(initiative: &Initiative, stored: &StoredEvent) -> TimelineEntry {
    let (summary, tone) = match stored.to_recorded() {
        Ok(recorded) => {
            let told = narrate(&recorded.event, &BoardReader(initiative));
            (told.text, told.tone.as_str())
        }
        Err(_) => (format!("{} (cannot be decoded)", stored.event_type), Tone::Bad.as_str()),
    };
    TimelineEntry {
        position: stored.position,
        version: stored.stream_version,
        r#type: stored.event_type.clone(),
        actor: stored.actor.clone(),
        recorded_at: stored.recorded_at,
        summary,
        tone,
    }
}

/// The board reads decisions by their title and free text to its first line, and
/// does not tell feedback items apart.
struct BoardReader<'a>(&'a Initiative);

impl Reader for BoardReader<'_> {
    fn decision(&self, id: &DecisionId) -> String {
        match self.0.decisions.get(id) {
            Some(decision) => self.title(decision.title()),
            None => id.to_string(),
        }
    }

    /// The title the decision has now, as everywhere else on the board.
    fn proposal(&self, id: &DecisionId, _title: &str) -> String {
        self.decision(id)
    }

    fn feedback(&self, _id: &FeedbackId) -> Option<String> {
        None
    }

    fn title(&self, title: &str) -> String {
        format!("“{}”", brief(title))
    }

    fn brief(&self, text: &str) -> String {
        brief(text)
    }
}

/// The first line of `text`, at most 140 characters.
fn brief(text: &str) -> String {
    const MAX: usize = 140;
    let line = text.lines().next().unwrap_or_default().trim();
    if line.chars().count() <= MAX && line.len() == text.trim().len() {
        line.to_owned()
    } else {
        format!("{}…", line.chars().take(MAX - 1).collect::<String>())
    }
}

// ---- GET /api/watch -------------------------------------------------------------------

/// The query of `/api/watch`. Every value arrives as text and is parsed here, so a bad
/// one is refused with the field it came in.
#[derive(Debug, Default, Deserialize)]
pub(super) struct WatchQuery {
    status: Option<String>,
    pending_function: Option<String>,
    stage: Option<String>,
    owner: Option<String>,
    include_archived: Option<String>,
    after_position: Option<String>,
    initiative: Option<String>,
}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The watch filter and the position to resume after, from the query: the names and
/// the text fields here, the rest as every watcher's filter is parsed (`live`).
fn watch_filter(query: &WatchQuery) -> Result<(WatchFilter, u64), DomainError> {
    let status = match given(&query.status) {
        None => None,
        Some(name) => Some(InitiativeStatus::from_name(name).ok_or_else(|| {
            DomainError::invalid(
                "status",
                format!("{} is not a status: use no_decisions, pending, blocked or aligned", quote(name)),
            )
        })?),
    };
    let stage = match given(&query.stage) {
        None => None,
        Some(name) => Some(Stage::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
            DomainError::invalid("stage", format!("{} is not a stage: use one of {}", quote(name), names.join(", ")))
        })?),
    };
    let include_archived = match given(&query.include_archived) {
        None | Some("false" | "0") => false,
        Some("true" | "1") => true,
        Some(other) => {
            return Err(DomainError::invalid("include_archived", format!("{} is not true or false", quote(other))));
        }
    };
    let after_position = match given(&query.after_position) {
        None => 0,
        Some(text) => text.parse::<u64>().map_err(|_| {
            DomainError::invalid("after_position", format!("{} is not a position (a whole number ≥ 0)", quote(text)))
        })?,
    };
    let filter = WatchFilter::parse(&WatchFields {
        initiatives: given(&query.initiative).map(|i| ("initiative".to_owned(), i)).into_iter().collect(),
        status,
        stage,
        pending_function: given(&query.pending_function).unwrap_or_default(),
        owner: given(&query.owner).unwrap_or_default(),
        include_archived,
    })?;
    Ok((filter, after_position))
}

pub(super) async fn watch(State(app): State<App>, query: Result<Query<WatchQuery>, QueryRejection>) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => {
            return field_error("query", &format!("query: {}", parser_message(&rejection.body_text())));
        }
    };
    let (filter, after_position) = match watch_filter(&query) {
        Ok(parsed) => parsed,
        Err(error) => return domain_response(error),
    };
    let Ok(permit) = app.streams.clone().try_acquire_owned() else {
        warn!(limit = super::MAX_EVENT_STREAMS, "board event stream refused: too many open streams");
        return error_response(StatusCode::SERVICE_UNAVAILABLE, "too many open event streams; retry with backoff");
    };
    let watch = match app.state.feed.watch(filter, after_position).await {
        Ok(watch) => watch,
        Err(error) => return store_response(error),
    };
    // Events are made as the connection takes them (HTTP/1.1 back-pressure), so nothing
    // is queued per stream; shutdown (or the feed stopping) ends the stream and the
    // client resumes later with its last event id.
    let open = (watch, app.stopping.clone(), permit);
    let events = futures_util::stream::unfold(open, |(mut watch, mut stopping, permit)| async move {
        loop {
            let item = tokio::select! {
                () = stopped(&mut stopping) => return None,
                item = watch.recv() => item?,
            };
            if let Some(event) = sse_event(&item) {
                return Some((Ok::<_, Infallible>(event), (watch, stopping, permit)));
            }
        }
    });
    let mut response =
        Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Resolves when shutdown begins (or nobody can signal it any more).
async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// One feed item as a server-sent event: `event:` its kind, `id:` its position.
fn sse_event(item: &WatchItem) -> Option<SseEvent> {
    let encoded = match item {
        WatchItem::Alignment { position, view } => {
            SseEvent::default().event("alignment").id(position.to_string()).json_data(&**view)
        }
        WatchItem::Removed { position, initiative_id, key } => SseEvent::default()
            .event("removed")
            .id(position.to_string())
            .json_data(json!({ "initiative_id": initiative_id, "key": key, "position": position })),
        WatchItem::CaughtUp { position } => {
            SseEvent::default().event("caught_up").id(position.to_string()).json_data(json!({ "position": position }))
        }
        WatchItem::Resync { reason } => SseEvent::default().event("resync").json_data(json!({ "reason": reason })),
    };
    match encoded {
        Ok(event) => Some(event),
        Err(error) => {
            error!(%error, "board event stream: an item could not be encoded");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ListFilter;

    fn query(pairs: &[(&str, &str)]) -> WatchQuery {
        let text: String = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        serde_urlencoded_like(&text)
    }

    fn serde_urlencoded_like(text: &str) -> WatchQuery {
        let uri: axum::http::Uri = format!("/api/watch?{text}").parse().expect("uri");
        Query::<WatchQuery>::try_from_uri(&uri).expect("query").0
    }

    fn field_of(error: DomainError) -> String {
        match error {
            DomainError::InvalidArgument { field, .. } => field,
            other => panic!("not an invalid argument: {other:?}"),
        }
    }

    #[test]
    fn watch_filters_parse_and_name_the_bad_field() {
        let (filter, after) = watch_filter(&query(&[
            ("status", "blocked"),
            ("pending_function", "design"),
            ("stage", "delivery"),
            ("owner", "pm@example.com"),
            ("include_archived", "true"),
            ("after_position", "42"),
        ]))
        .expect("valid filters");
        assert_eq!(after, 42);
        assert_eq!(filter.list.status.as_deref(), Some("blocked"));
        assert_eq!(filter.list.pending_function.as_deref(), Some("design"));
        assert_eq!(filter.list.stage.as_deref(), Some("delivery"));
        assert_eq!(filter.list.owner.as_deref(), Some("pm@example.com"));
        assert!(filter.list.include_archived);
        let (empty, after) = watch_filter(&query(&[("status", ""), ("stage", "")])).expect("empty means any");
        assert_eq!((empty.list, after), (ListFilter::default(), 0));
        for (field, value) in [
            ("status", "green"),
            ("stage", "done"),
            ("pending_function", "Design!"),
            ("owner", "two%20words"),
            ("include_archived", "maybe"),
            ("after_position", "-1"),
        ] {
            let error = watch_filter(&query(&[(field, value)])).expect_err(field);
            assert_eq!(field_of(error), field);
        }
    }

    #[test]
    fn brief_cuts_long_and_multi_line_text() {
        assert_eq!(brief("short"), "short");
        assert_eq!(brief("first\nsecond"), "first…");
        assert_eq!(brief(&"x".repeat(200)).chars().count(), 140);
    }
}
