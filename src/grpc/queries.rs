//! `AlignmentService`: the read side for dashboards and tools. Reads come from the
//! alignment projection, which every command updates in its own transaction, so a
//! caller always reads its own writes.
//!
//! Pagination is by key (unique and immutable), so a page token — the last key served
//! plus a fingerprint of the filters — stays valid and skips or repeats nothing while
//! other callers write.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use super::convert as c;
use super::status::{domain_status, store_status};
use crate::domain::{DomainError, state::sign_off_history, values::*};
use crate::live::{Feed, WatchFilter, WatchItem};
use crate::proto::{self as pb, alignment_service_server::AlignmentService};
use crate::store::{InitiativeRef, ListFilter, Store, StoredEvent};

use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;

/// Updates buffered per watch stream on top of the watcher's own buffer.
const WATCH_BUFFER: usize = 64;

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

/// Most initiatives one watcher may name.
pub const MAX_WATCHED_INITIATIVES: usize = 500;

#[derive(Clone, Debug)]
pub struct Queries {
    store: Store,
    feed: Feed,
    /// Open streams (watchers and history readers share the bound).
    streams: Arc<Semaphore>,
}

impl Queries {
    pub fn new(store: Store, feed: Feed, streams: Arc<Semaphore>) -> Self {
        Self { store, feed, streams }
    }
}

/// The filter of a `WatchAlignments` request (public for the fuzz target).
pub fn watch_filter(r: &pb::WatchAlignmentsRequest) -> Result<WatchFilter, DomainError> {
    if r.initiatives.len() > MAX_WATCHED_INITIATIVES {
        return Err(DomainError::invalid(
            "initiatives",
            format!("names {}; at most {MAX_WATCHED_INITIATIVES} are allowed", r.initiatives.len()),
        ));
    }
    let initiatives = r
        .initiatives
        .iter()
        .enumerate()
        .map(|(i, value)| InitiativeRef::parse(&format!("initiatives[{i}]"), value))
        .collect::<Result<Vec<_>, _>>()?;
    let list = list_filter(&pb::ListAlignmentsRequest {
        status: r.status,
        pending_function: r.pending_function.clone(),
        stage: r.stage,
        owner: r.owner.clone(),
        include_archived: r.include_archived,
        ..Default::default()
    })?;
    Ok(WatchFilter { initiatives, list })
}

/// A watcher's item as sent on the wire.
fn update(item: &WatchItem) -> pb::AlignmentUpdate {
    use pb::alignment_update::Update;
    let (update, position) = match item {
        WatchItem::Alignment { position, view } => (Update::Alignment(c::alignment(view)), *position),
        WatchItem::Removed { position, initiative_id, key } => (
            Update::Removed(pb::RemovedInitiative { initiative_id: initiative_id.to_string(), key: key.clone() }),
            *position,
        ),
        WatchItem::CaughtUp { position } => (Update::CaughtUp(pb::CaughtUp { position: *position }), *position),
        WatchItem::Resync { reason } => (Update::Resync(pb::Resync { reason: reason.clone() }), 0),
    };
    pb::AlignmentUpdate { update: Some(update), position }
}

/// Forwards a watcher's items to its gRPC stream; when the server stops, ends the stream
/// with UNAVAILABLE and the position to resume after.
async fn forward(
    feed: Feed,
    after_position: u64,
    mut items: mpsc::Receiver<WatchItem>,
    tx: mpsc::Sender<Result<pb::AlignmentUpdate, Status>>,
) {
    let mut last_position = after_position;
    loop {
        let item = tokio::select! {
            item = items.recv() => item,
            _ = tx.closed() => return,
        };
        match item {
            Some(item) => {
                if let Some(position) = item.position() {
                    last_position = position;
                }
                if tx.send(Ok(update(&item))).await.is_err() {
                    return;
                }
            }
            None => {
                let status = if feed.is_stopping() {
                    Status::unavailable(format!(
                        "the server is shutting down; resume with after_position {last_position} on another server"
                    ))
                } else {
                    Status::internal(format!(
                        "the live feed ended unexpectedly; resume with after_position {last_position}"
                    ))
                };
                // A client that is not reading gets no final status; its stream just ends.
                let _ = tx.try_send(Err(status));
                return;
            }
        }
    }
}

/// The filters of a `ListAlignments` request (public for the fuzz target, `fuzz/`).
pub fn list_filter(r: &pb::ListAlignmentsRequest) -> Result<ListFilter, DomainError> {
    let text = if r.text.is_empty() { None } else { Some(parse_text("text", &r.text, MAX_TITLE, false)?) };
    Ok(ListFilter {
        status: c::initiative_status("status", r.status)?.map(|s| s.as_str().to_owned()),
        pending_function: c::optional_id("pending_function", &r.pending_function, Function::parse)?
            .map(|f| f.to_string()),
        stage: c::stage("stage", r.stage, false)?.map(|s| s.as_str().to_owned()),
        owner: c::optional_id("owner", &r.owner, Principal::parse)?.map(|p| p.to_string()),
        text,
        include_archived: r.include_archived,
    })
}

fn filter_fingerprint(filter: &ListFilter) -> String {
    let digest = Sha256::digest(format!("{filter:?}").as_bytes());
    hex::encode(&digest[..8])
}

fn encode_token(filter: &ListFilter, last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{last_key}", filter_fingerprint(filter)))
}

/// The key a page token resumes after, if it was issued for `filter` (public for the fuzz target).
pub fn decode_token(filter: &ListFilter, token: &str) -> Result<Option<String>, DomainError> {
    if token.is_empty() {
        return Ok(None);
    }
    let malformed = || DomainError::invalid("page_token", "is not a token this service issued");
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
    let raw = String::from_utf8(raw).map_err(|_| malformed())?;
    let (fingerprint, key) = raw.split_once(':').ok_or_else(malformed)?;
    if fingerprint != filter_fingerprint(filter) {
        return Err(DomainError::invalid(
            "page_token",
            "was issued for different filters; start again without a token",
        ));
    }
    Ok(Some(key.to_owned()))
}

#[tonic::async_trait]
impl AlignmentService for Queries {
    async fn get_alignment(
        &self,
        request: Request<pb::GetAlignmentRequest>,
    ) -> Result<Response<pb::InitiativeAlignment>, Status> {
        let target = InitiativeRef::parse("initiative", &request.get_ref().initiative).map_err(domain_status)?;
        let view = self.store.alignment(&target).await.map_err(store_status)?;
        let view = view.ok_or_else(|| Status::not_found(format!("initiative {target} not found")))?;
        Ok(Response::new(c::alignment(&view)))
    }

    async fn list_alignments(
        &self,
        request: Request<pb::ListAlignmentsRequest>,
    ) -> Result<Response<pb::ListAlignmentsResponse>, Status> {
        let r = request.get_ref();
        let filter = list_filter(r).map_err(domain_status)?;
        let page_size = match r.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n > MAX_PAGE_SIZE => {
                return Err(domain_status(DomainError::invalid(
                    "page_size",
                    format!("is {n}; at most {MAX_PAGE_SIZE} are allowed"),
                )));
            }
            n => n,
        };
        let after = decode_token(&filter, &r.page_token).map_err(domain_status)?;
        let mut views =
            self.store.list(&filter, after.as_deref(), i64::from(page_size) + 1).await.map_err(store_status)?;
        let more = views.len() > page_size as usize;
        views.truncate(page_size as usize);
        let next_page_token = match views.last() {
            Some(last) if more => encode_token(&filter, last.key.as_str()),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListAlignmentsResponse {
            initiatives: views.iter().map(c::alignment).collect(),
            next_page_token,
        }))
    }

    async fn get_inbox(&self, request: Request<pb::GetInboxRequest>) -> Result<Response<pb::GetInboxResponse>, Status> {
        let principal = Principal::parse("principal", &request.get_ref().principal).map_err(domain_status)?;
        let views = self.store.awaiting(&principal).await.map_err(store_status)?;
        let items = views
            .iter()
            .flat_map(|view| view.inbox(&principal).into_iter().map(move |item| c::inbox_item(view, &item)))
            .collect();
        Ok(Response::new(pb::GetInboxResponse { items }))
    }

    async fn get_decision(
        &self,
        request: Request<pb::GetDecisionRequest>,
    ) -> Result<Response<pb::DecisionDetail>, Status> {
        let r = request.get_ref();
        let target = InitiativeRef::parse("initiative", &r.initiative).map_err(domain_status)?;
        let decision_id = DecisionId::parse("decision_id", &r.decision_id).map_err(domain_status)?;
        let initiative = self.store.initiative(&target).await.map_err(store_status)?;
        let initiative = initiative.ok_or_else(|| Status::not_found(format!("initiative {target} not found")))?;
        let decision = initiative.decisions.get(&decision_id).ok_or_else(|| {
            Status::not_found(format!("decision {decision_id} not found on initiative {}", initiative.key))
        })?;
        let events = self.store.sign_off_events(initiative.id, decision_id).await.map_err(store_status)?;
        let recorded =
            events.iter().map(StoredEvent::to_recorded).collect::<Result<Vec<_>, _>>().map_err(store_status)?;
        let history = sign_off_history(decision_id, &recorded);
        Ok(Response::new(c::decision_detail(&initiative, decision, &history)))
    }

    type WatchAlignmentsStream = ReceiverStream<Result<pb::AlignmentUpdate, Status>>;

    async fn watch_alignments(
        &self,
        request: Request<pb::WatchAlignmentsRequest>,
    ) -> Result<Response<Self::WatchAlignmentsStream>, Status> {
        let r = request.get_ref();
        let filter = watch_filter(r).map_err(domain_status)?;
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("the server has its limit of open streams; retry later with backoff")
        })?;
        let items = self.feed.watch(filter, r.after_position).await.map_err(store_status)?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let (feed, after_position) = (self.feed.clone(), r.after_position);
        tokio::spawn(async move {
            forward(feed, after_position, items, tx).await;
            drop(permit);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
