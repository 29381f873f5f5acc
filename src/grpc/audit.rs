//! `AuditService`: the history as auditors read it. Reads stream events in order with
//! all their metadata; as-of and explain replay one initiative's own events (never the
//! global log) through the same fold and rules as the live projection; verification,
//! checkpoints and import are the store's (`store::audit`), exposed here. A following
//! read outlives a database outage: it waits and continues exactly where it was.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;
use uuid::Uuid;

use super::convert as c;
use super::status::{domain_status, store_status};
use crate::domain::values::InitiativeRef;
use crate::domain::{
    DomainError, Initiative,
    explain::explain,
    project,
    values::{DecisionId, quote},
};
use crate::live::Feed;
use crate::metrics;
use crate::proto::{self as pb, audit_service_server::AuditService};
use crate::store::{
    CheckpointSigner, GlobalCursor, Store, StoreError, StoredEvent,
    audit::{CheckpointRecord, CheckpointTree, Until},
};

/// How many events one read fetches from the store.
const PAGE: i64 = 500;
/// How often a following read looks for new events once caught up if the live feed
/// has not woken it (the feed wakes it on every append it applies, from any replica).
const FOLLOW_POLL: Duration = Duration::from_secs(1);
/// The first and the longest wait of a following read before it asks an unavailable
/// database again.
const OUTAGE_RETRY_FIRST: Duration = Duration::from_millis(100);
const OUTAGE_RETRY_MAX: Duration = Duration::from_secs(2);
/// Events buffered per reader before the reader waits for its client.
const BUFFER: usize = 256;

/// Most entries in a `ReadEvents` type filter (there are fewer event types than this).
pub const MAX_EVENT_TYPE_FILTERS: usize = 64;

#[derive(Clone, Debug)]
pub struct Audit {
    store: Store,
    /// Wakes following readers when events are appended.
    feed: Feed,
    /// Open history streams; a reader holds a permit until its stream ends.
    streams: Arc<Semaphore>,
    /// Turns true when the server shuts down: following readers end then, so that a
    /// graceful shutdown is not held open by streams that never end by themselves.
    stopping: watch::Receiver<bool>,
    /// Signs checkpoints; a verification checks the stored notes with its public half.
    signer: Option<Arc<CheckpointSigner>>,
}

impl Audit {
    pub fn new(store: Store, feed: Feed, streams: Arc<Semaphore>, stopping: watch::Receiver<bool>) -> Self {
        Self { store, feed, streams, stopping, signer: None }
    }

    /// Checkpoints are signed with this key (none: unsigned).
    pub fn signing_checkpoints(mut self, signer: Option<CheckpointSigner>) -> Self {
        self.signer = signer.map(Arc::new);
        self
    }

    /// The initiative a request names, with its current state, read from `store` (the
    /// request's `reader`).
    async fn initiative(&self, store: &Store, value: &str) -> Result<Initiative, Status> {
        let target = InitiativeRef::parse("initiative", value).map_err(domain_status)?;
        super::record_initiative(&target);
        store
            .initiative(&target)
            .await
            .map_err(store_status)?
            .ok_or_else(|| Status::not_found(format!("initiative {target} not found")))
    }

    /// The initiative's state as of a past time or version (`None`: now).
    async fn state_at(&self, store: &Store, value: &str, at: Option<Until>) -> Result<Initiative, Status> {
        let current = self.initiative(store, value).await?;
        let Some(until) = at else { return Ok(current) };
        if let Until::Version(version) = until
            && (version == 0 || version > current.version)
        {
            return Err(domain_status(DomainError::invalid(
                "version",
                format!("must be between 1 and {} (the initiative's current version)", current.version),
            )));
        }
        let state = store.state_until(current.id.0, until).await.map_err(store_status)?;
        state.ok_or_else(|| match until {
            Until::Time(time) => Status::not_found(format!(
                "initiative {} did not exist yet at {}: it was created at {}",
                current.key,
                time.to_rfc3339(),
                current.created_at.to_rfc3339()
            )),
            Until::Version(_) => Status::not_found(format!("initiative {} has no events", current.key)),
        })
    }
}

fn until_time(field: &str, time: &prost_types::Timestamp) -> Result<Until, Status> {
    let nanos = u32::try_from(time.nanos).ok().filter(|n| *n < 1_000_000_000);
    nanos
        .and_then(|n| chrono::DateTime::from_timestamp(time.seconds, n))
        .map(Until::Time)
        .ok_or_else(|| domain_status(DomainError::invalid(field, "is not a valid timestamp")))
}

fn as_of(at: Option<&pb::get_alignment_as_of_request::At>) -> Result<Option<Until>, Status> {
    use pb::get_alignment_as_of_request::At;
    match at {
        None => Err(domain_status(DomainError::invalid("at", "is required: a time or a version"))),
        Some(At::Time(time)) => until_time("time", time).map(Some),
        Some(At::Version(version)) => Ok(Some(Until::Version(*version))),
    }
}

fn explain_at(at: Option<&pb::explain_request::At>) -> Result<Option<Until>, Status> {
    use pb::explain_request::At;
    match at {
        None => Ok(None),
        Some(At::Time(time)) => until_time("time", time).map(Some),
        Some(At::Version(version)) => Ok(Some(Until::Version(*version))),
    }
}

pub fn stored_event(event: &StoredEvent) -> pb::StoredEvent {
    pb::StoredEvent {
        position: u64::try_from(event.position).unwrap_or_default(),
        stream_id: event.stream_id.to_string(),
        stream_version: u64::try_from(event.stream_version).unwrap_or_default(),
        event_id: event.event_id.to_string(),
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        payload_json: event.payload.to_string(),
        actor: event.actor.clone(),
        command_id: event.command_id.clone(),
        correlation_id: event.correlation_id.clone(),
        causation_id: event.causation_id.clone(),
        recorded_at: Some(c::timestamp(event.recorded_at)),
        prev_hash: hex::encode(&event.prev_hash),
        hash: hex::encode(&event.hash),
    }
}

/// Where a read is: one stream by version, or the global log by cursor.
enum Position {
    Stream { id: Uuid, next_version: i64 },
    Global { cursor: Option<GlobalCursor>, after_position: u64 },
}

impl Position {
    async fn next_page(&mut self, store: &Store) -> Result<Vec<StoredEvent>, StoreError> {
        match self {
            Position::Stream { id, next_version } => {
                let events = store.read_stream(*id, *next_version, PAGE).await?;
                if let Some(last) = events.last() {
                    *next_version = last.stream_version + 1;
                }
                Ok(events)
            }
            Position::Global { cursor, after_position } => {
                let page = match cursor {
                    Some(cursor) => store.read_all(*cursor, PAGE).await?,
                    None => store.read_all_after_position(*after_position, PAGE).await?,
                };
                if let Some((last, _)) = page.last() {
                    *cursor = Some(*last);
                }
                Ok(page.into_iter().map(|(_, event)| event).collect())
            }
        }
    }

    /// How a client continues this read on another call (`resume_after`: the global
    /// position of the last event read, or the one the request started after).
    fn resume_hint(&self, resume_after: u64) -> String {
        match self {
            Position::Global { .. } => format!("resume with after_position {resume_after}"),
            Position::Stream { next_version, .. } => format!("resume with from_version {next_version}"),
        }
    }
}

/// Resolves once the server begins to shut down (or is gone).
async fn shutdown_begins(stopping: &mut watch::Receiver<bool>) {
    loop {
        let stop = *stopping.borrow_and_update();
        if stop || stopping.changed().await.is_err() {
            return;
        }
    }
}

/// Sends events from `position` until the head, reports caught-up, and with `follow`
/// reads again whenever the live feed has applied more. Ends quietly when the client
/// goes away. While the database is unavailable a following read waits and asks again
/// from the same place (nothing skipped, nothing twice); any other read, or any other
/// error, ends the stream with the position to resume from.
async fn pump(
    store: Store,
    feed: Feed,
    mut position: Position,
    types: Vec<String>,
    follow: bool,
    mut stopping: watch::Receiver<bool>,
    tx: mpsc::Sender<Result<pb::ReadEventsResponse, Status>>,
) {
    use pb::read_events_response::Item;
    let mut last_position = 0u64;
    let mut resume_after = match &position {
        Position::Global { after_position, .. } => *after_position,
        Position::Stream { .. } => 0,
    };
    let mut caught_up_sent = false;
    let mut retry_in = OUTAGE_RETRY_FIRST;
    loop {
        // Taken before the read: whatever the feed applies after it was committed after
        // this read could see it, and wakes the wait below.
        let mark = feed.events_applied();
        let page = match position.next_page(&store).await {
            Ok(page) => {
                if retry_in > OUTAGE_RETRY_FIRST {
                    debug!("a following read continues: the database answers again");
                    retry_in = OUTAGE_RETRY_FIRST;
                }
                page
            }
            Err(StoreError::Unavailable(reason)) if follow => {
                debug!(%reason, "a following read waits for the database");
                tokio::select! {
                    biased;
                    _ = shutdown_begins(&mut stopping) => {
                        let _ = tx.send(Err(shutting_down(&position, resume_after))).await;
                        return;
                    }
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(retry_in) => {}
                }
                retry_in = (retry_in * 2).min(OUTAGE_RETRY_MAX);
                continue;
            }
            Err(error) => {
                let status = store_status(error);
                let message = format!("{}; {}", status.message(), position.resume_hint(resume_after));
                let _ = tx.send(Err(Status::new(status.code(), message))).await;
                return;
            }
        };
        let full = page.len() as i64 == PAGE;
        for event in page {
            last_position = u64::try_from(event.position).unwrap_or(last_position);
            resume_after = last_position;
            if !types.is_empty() && !types.contains(&event.event_type) {
                continue;
            }
            let item = Item::Event(stored_event(&event));
            if tx.send(Ok(pb::ReadEventsResponse { item: Some(item) })).await.is_err() {
                return;
            }
        }
        if full {
            continue;
        }
        if !caught_up_sent {
            let item = Item::CaughtUp(pb::CaughtUp { position: last_position });
            if tx.send(Ok(pb::ReadEventsResponse { item: Some(item) })).await.is_err() {
                return;
            }
            caught_up_sent = true;
        }
        if !follow {
            return;
        }
        tokio::select! {
            // Shutdown first: the feed's wake-up also resolves once it stops.
            biased;
            _ = shutdown_begins(&mut stopping) => {
                let _ = tx.send(Err(shutting_down(&position, resume_after))).await;
                return;
            }
            _ = tx.closed() => return,
            _ = feed.applied_since(mark) => {}
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
        }
    }
}

/// How a read ends when the server shuts down: UNAVAILABLE, and where to resume.
fn shutting_down(position: &Position, resume_after: u64) -> Status {
    Status::unavailable(format!(
        "the server is shutting down; {} on another server",
        position.resume_hint(resume_after)
    ))
}

#[tonic::async_trait]
impl AuditService for Audit {
    type ReadEventsStream = ReceiverStream<Result<pb::ReadEventsResponse, Status>>;

    async fn read_events(
        &self,
        request: Request<pb::ReadEventsRequest>,
    ) -> Result<Response<Self::ReadEventsStream>, Status> {
        // History and export read the log from the standby (when configured and caught
        // up with the position named): see `Store::reader`.
        let store = self.store.reader(super::queries::wanted(&request)?.min_position).await;
        let r = request.into_inner();
        if r.event_types.len() > MAX_EVENT_TYPE_FILTERS {
            return Err(domain_status(DomainError::invalid(
                "event_types",
                format!("lists {} entries; at most {MAX_EVENT_TYPE_FILTERS} are allowed", r.event_types.len()),
            )));
        }
        for (i, name) in r.event_types.iter().enumerate() {
            if !crate::domain::event::EVENT_TYPES.contains(&name.as_str()) {
                return Err(domain_status(DomainError::invalid(
                    &format!("event_types[{i}]"),
                    format!("{} is not an event type (e.g. SignOffRecorded, DecisionRevised)", quote(name)),
                )));
            }
        }
        let position = if r.initiative.is_empty() {
            Position::Global { cursor: None, after_position: r.after_position }
        } else {
            let initiative = self.initiative(&store, &r.initiative).await?;
            let next_version = i64::try_from(r.from_version.max(1)).unwrap_or(i64::MAX);
            Position::Stream { id: initiative.id.0, next_version }
        };
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("the server has its limit of open streams; retry later with backoff")
        })?;
        let (tx, rx) = mpsc::channel(BUFFER);
        let feed = self.feed.clone();
        let stopping = self.stopping.clone();
        tokio::spawn(async move {
            pump(store, feed, position, r.event_types, r.follow, stopping, tx).await;
            drop(permit);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_alignment_as_of(
        &self,
        request: Request<pb::GetAlignmentAsOfRequest>,
    ) -> Result<Response<pb::InitiativeAlignment>, Status> {
        let store = self.store.reader(super::queries::wanted(&request)?.min_position).await;
        let r = request.get_ref();
        let state = self.state_at(&store, &r.initiative, as_of(r.at.as_ref())?).await?;
        Ok(Response::new(c::alignment(&project(&state))))
    }

    async fn explain(&self, request: Request<pb::ExplainRequest>) -> Result<Response<pb::ExplainResponse>, Status> {
        let r = request.get_ref();
        let decision = c::optional_id("decision_id", &r.decision_id, DecisionId::parse).map_err(domain_status)?;
        let store = self.store.reader(super::queries::wanted(&request)?.min_position).await;
        let state = self.state_at(&store, &r.initiative, explain_at(r.at.as_ref())?).await?;
        if let Some(id) = decision
            && !state.decisions.contains_key(&id)
        {
            return Err(Status::not_found(format!("decision {id} not found on initiative {}", state.key)));
        }
        Ok(Response::new(c::explanation(&explain(&state, decision))))
    }

    async fn verify(&self, request: Request<pb::VerifyRequest>) -> Result<Response<pb::VerifyResponse>, Status> {
        let initiative = &request.get_ref().initiative;
        let only =
            if initiative.is_empty() { None } else { Some(self.initiative(&self.store, initiative).await?.id.0) };
        let key = self.signer.as_deref().map(CheckpointSigner::verifier);
        let report = self.store.verify(only, key).await.map_err(store_status)?;
        Ok(Response::new(pb::VerifyResponse {
            ok: report.ok(),
            events_checked: report.events_checked,
            streams_checked: report.streams_checked,
            checkpoints_checked: report.checkpoints_checked,
            first_break: report.first_break.map(|b| pb::Break {
                stream_id: b.stream_id.to_string(),
                stream_version: b.stream_version,
                position: b.position,
                reason: b.reason,
            }),
        }))
    }

    async fn create_checkpoint(
        &self,
        _request: Request<pb::CreateCheckpointRequest>,
    ) -> Result<Response<pb::Checkpoint>, Status> {
        let checkpointed = self.store.checkpoint(self.signer.as_deref()).await.map_err(store_status)?;
        let mut checkpoint = checkpoint_pb(&checkpointed.record);
        checkpoint.already_covered = !checkpointed.recorded;
        Ok(Response::new(checkpoint))
    }

    async fn list_checkpoints(
        &self,
        _request: Request<pb::ListCheckpointsRequest>,
    ) -> Result<Response<pb::ListCheckpointsResponse>, Status> {
        let checkpoints = self.store.list_checkpoints().await.map_err(store_status)?;
        Ok(Response::new(pb::ListCheckpointsResponse { checkpoints: checkpoints.iter().map(checkpoint_pb).collect() }))
    }

    async fn import_events(
        &self,
        request: Request<Streaming<pb::ImportEventsRequest>>,
    ) -> Result<Response<pb::ImportEventsResponse>, Status> {
        // tonic reports a cancelled upload as a normal end of stream, so completeness is
        // explicit: only a stream closed by an `end` message is imported.
        let mut upload = request.into_inner();
        let (tx, rx) = mpsc::channel::<Result<(usize, String), StoreError>>(BUFFER);
        tokio::spawn(async move {
            let mut line_no = 0;
            let incomplete = || {
                StoreError::from(DomainError::precondition(
                    "the import ended before its end marker (cancelled or broken upload); nothing was written",
                ))
            };
            loop {
                let item = match upload.message().await {
                    Ok(Some(message)) if message.end => return,
                    Ok(Some(message)) => {
                        line_no += 1;
                        Ok((line_no, message.line))
                    }
                    Ok(None) => Err(incomplete()),
                    Err(status) => Err(StoreError::Unavailable(format!("import stream broken: {}", status.message()))),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        let lines = ReceiverStream::new(rx);
        let started = Instant::now();
        let imported = self.store.import_stream(Box::pin(lines)).await;
        metrics::append_latency(started.elapsed());
        let report = imported.map_err(store_status)?;
        metrics::events_appended(report.events);
        Ok(Response::new(pb::ImportEventsResponse { events: report.events, initiatives: report.initiatives }))
    }
}

fn checkpoint_pb(checkpoint: &CheckpointRecord) -> pb::Checkpoint {
    let tree = match checkpoint.tree {
        CheckpointTree::StreamHeads => pb::CheckpointTree::StreamHeads,
        CheckpointTree::Log => pb::CheckpointTree::Log,
    };
    pb::Checkpoint {
        tree: tree.into(),
        frontier: checkpoint.frontier.iter().map(hex::encode).collect(),
        note: checkpoint.note.clone().unwrap_or_default(),
        id: checkpoint.id,
        created_at: Some(c::timestamp(checkpoint.created_at)),
        streams: checkpoint.streams,
        events: checkpoint.events,
        root: checkpoint.root_hex(),
        already_covered: false,
        heads: checkpoint
            .heads
            .iter()
            .map(|h| pb::StreamHead {
                stream_id: h.stream_id.to_string(),
                version: h.version,
                hash: hex::encode(h.hash),
            })
            .collect(),
    }
}
