//! `GET /api/watch`: the live alignment of every initiative that matches the query, as
//! `text/event-stream`, encoded from the shared live feed item by item.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
};
use serde::Deserialize;
use serde_json::json;
use tracing::{error, warn};

use super::{domain_response, error_response, field_error, store_response};
use crate::domain::{
    DomainError,
    alignment::InitiativeStatus,
    values::{Stage, parser_message, quote},
};
use crate::http::App;
use crate::live::{WatchFields, WatchFilter, WatchItem};

/// How often an idle event stream sends a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The query of `/api/watch`. Every value arrives as text and is parsed here, so a bad
/// one is refused with the field it came in.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WatchQuery {
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

pub(crate) async fn watch(State(app): State<App>, query: Result<Query<WatchQuery>, QueryRejection>) -> Response {
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
        warn!(limit = crate::http::MAX_EVENT_STREAMS, "board event stream refused: too many open streams");
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
}
