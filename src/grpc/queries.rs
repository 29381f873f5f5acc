//! `AlignmentService`: the read side for dashboards and tools. Alignments, lists and
//! inboxes come from the live feed's views (`live::Reads`: no database round trip while
//! the feed is up to date, the alignment projection otherwise), with this server's own
//! writes always reflected and another server's once the caller names its position
//! (`x-accord-min-position`). Decisions and feedback in full come from the initiative's folded
//! state in the database — from the read-only standby when one is configured, once it
//! has replayed the position the caller names (`Store::reader`).
//!
//! Pagination is by key (unique and immutable), so a page token — the last key served
//! plus a fingerprint of the filters — stays valid and skips or repeats nothing while
//! other callers write.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use super::convert as c;
use super::status::{domain_status, store_status};
use crate::domain::values::InitiativeRef;
use crate::domain::{
    DomainError, Member,
    state::{Feedback, sign_off_history},
    values::*,
};
use crate::live::{Feed, ReadError, Reads, Wanted, Watch, WatchFilter, WatchItem};
use crate::proto::{self as pb, alignment_service_server::AlignmentService};
use crate::security::Caller;
use crate::store::{ListFilter, Store, StoredEvent};

use std::collections::BTreeSet;
use std::{pin::Pin, sync::Arc, time::Duration};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::Stream;

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

/// Most initiatives one watcher may name.
pub const MAX_WATCHED_INITIATIVES: usize = 500;

#[derive(Clone, Debug)]
pub struct Queries {
    store: Store,
    feed: Feed,
    reads: Reads,
    /// Open streams (watchers and history readers share the bound).
    streams: Arc<Semaphore>,
}

impl Queries {
    pub fn new(store: Store, feed: Feed, streams: Arc<Semaphore>) -> Self {
        Self { store, reads: Reads::new(feed.clone()), feed, streams }
    }
}

/// The request metadata entry that asks for read-your-writes across servers: a global
/// position (a `CommandResponse.global_position`, from any server) the answer must be at
/// least as new as. Metadata rather than a request field, so that the request messages
/// (and every client's code building them) stay as they are.
pub const MIN_POSITION_HEADER: &str = "x-accord-min-position";

/// What a read must reflect: the `x-accord-min-position` it carries, waited for at most
/// half the time the caller gave the call (its `grpc-timeout`), so that the database
/// can still answer in time if the feed does not get there.
pub(super) fn wanted<T>(request: &Request<T>) -> Result<Wanted, Status> {
    let metadata = request.metadata();
    let min_position = match metadata.get(MIN_POSITION_HEADER) {
        None => 0,
        Some(value) => match value.to_str().ok().and_then(|text| text.parse::<u64>().ok()) {
            Some(position) => position,
            None => {
                let shown =
                    value.to_str().map_or_else(|_| "a value that is not ASCII".to_owned(), |t| quote(t).to_string());
                return Err(domain_status(DomainError::invalid(
                    MIN_POSITION_HEADER,
                    format!("{shown} is not a global position (a whole number, as a command's global_position)"),
                )));
            }
        },
    };
    let given = metadata.get("grpc-timeout").and_then(|value| value.to_str().ok()).and_then(grpc_timeout);
    let patience = given.map_or(Wanted::MAX_PATIENCE, |given| (given / 2).min(Wanted::MAX_PATIENCE));
    Ok(Wanted { min_position, patience })
}

/// A `grpc-timeout` header: at most 8 digits and a unit (hours to nanoseconds).
fn grpc_timeout(value: &str) -> Option<Duration> {
    let unit = value.chars().last()?;
    let amount: u64 = value.get(..value.len() - unit.len_utf8())?.parse().ok()?;
    match unit {
        'H' => Some(Duration::from_secs(amount.saturating_mul(3600))),
        'M' => Some(Duration::from_secs(amount.saturating_mul(60))),
        'S' => Some(Duration::from_secs(amount)),
        'm' => Some(Duration::from_millis(amount)),
        'u' => Some(Duration::from_micros(amount)),
        'n' => Some(Duration::from_nanos(amount)),
        _ => None,
    }
}

fn read_status(error: ReadError) -> Status {
    match error {
        ReadError::Store(error) => store_status(error),
        ReadError::PastHead { min_position, head } => Status::out_of_range(format!(
            "{MIN_POSITION_HEADER}: {min_position} is past the log's head ({head}); \
             pass the global_position of an acknowledged command"
        )),
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
    WatchFilter::parse(&crate::live::WatchFields {
        initiatives: r.initiatives.iter().enumerate().map(|(i, v)| (format!("initiatives[{i}]"), v.as_str())).collect(),
        status: c::initiative_status("status", r.status)?,
        stage: c::stage("stage", r.stage, false)?,
        pending_function: &r.pending_function,
        owner: &r.owner,
        include_archived: r.include_archived,
    })
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

/// A watcher as its gRPC stream: each item as it is read, pulled only as fast as the
/// client takes them (HTTP/2 flow control), so nothing is queued per stream. When the
/// feed stops (shutdown), the stream ends with UNAVAILABLE and the position to resume
/// after. The stream holds its permit of the open-streams bound for as long as it lives.
fn watch_stream(
    watch: Watch,
    feed: Feed,
    after_position: u64,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<pb::AlignmentUpdate, Status>> + Send + 'static {
    struct Open {
        watch: Watch,
        feed: Feed,
        last_position: u64,
        _permit: OwnedSemaphorePermit,
    }
    let open = Open { watch, feed, last_position: after_position, _permit: permit };
    futures_util::stream::unfold(Some(open), |open| async move {
        let mut open = open?;
        match open.watch.recv().await {
            Some(item) => {
                if let Some(position) = item.position() {
                    open.last_position = position;
                }
                Some((Ok(update(&item)), Some(open)))
            }
            None => {
                let last_position = open.last_position;
                let status = if open.feed.is_stopping() {
                    Status::unavailable(format!(
                        "the server is shutting down; resume with after_position {last_position} on another server"
                    ))
                } else {
                    Status::internal(format!(
                        "the live feed ended unexpectedly; resume with after_position {last_position}"
                    ))
                };
                Some((Err(status), None))
            }
        }
    })
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

/// A short fingerprint of a query's filters: a page token is only valid with them.
fn fingerprint(filters: &impl std::fmt::Debug) -> String {
    let digest = Sha256::digest(format!("{filters:?}").as_bytes());
    hex::encode(&digest[..8])
}

fn encode_token(filters: &impl std::fmt::Debug, last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{last}", fingerprint(filters)))
}

/// The key a page token resumes after, if it was issued for `filter` (public for the fuzz target).
pub fn decode_token(filter: &ListFilter, token: &str) -> Result<Option<String>, DomainError> {
    decode_token_for(filter, token)
}

fn decode_token_for(filters: &impl std::fmt::Debug, token: &str) -> Result<Option<String>, DomainError> {
    if token.is_empty() {
        return Ok(None);
    }
    let malformed = || DomainError::invalid("page_token", "is not a token this service issued");
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
    let raw = String::from_utf8(raw).map_err(|_| malformed())?;
    let (issued_for, last) = raw.split_once(':').ok_or_else(malformed)?;
    if issued_for != fingerprint(filters) {
        return Err(DomainError::invalid(
            "page_token",
            "was issued for different filters; start again without a token",
        ));
    }
    Ok(Some(last.to_owned()))
}

/// A page size as asked for: 0 is the default, more than the maximum is refused.
fn page_size(asked: u32) -> Result<u32, DomainError> {
    match asked {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n > MAX_PAGE_SIZE => {
            Err(DomainError::invalid("page_size", format!("is {n}; at most {MAX_PAGE_SIZE} are allowed")))
        }
        n => Ok(n),
    }
}

/// The filters of a `ListFeedback` request (the initiative is resolved separately).
#[derive(Debug)]
struct FeedbackFilter {
    decision: Option<DecisionId>,
    kinds: Vec<FeedbackKind>,
    open_only: bool,
}

impl FeedbackFilter {
    fn parse(r: &pb::ListFeedbackRequest) -> Result<FeedbackFilter, DomainError> {
        let decision =
            if r.decision_id.is_empty() { None } else { Some(DecisionId::parse("decision_id", &r.decision_id)?) };
        let kinds = r.kinds.iter().map(|&kind| c::feedback_kind("kinds", kind)).collect::<Result<Vec<_>, _>>()?;
        Ok(FeedbackFilter { decision, kinds, open_only: r.open_only })
    }

    fn matches(&self, feedback: &Feedback) -> bool {
        self.decision.is_none_or(|decision| feedback.decision_id == Some(decision))
            && (self.kinds.is_empty() || self.kinds.contains(&feedback.kind))
            && (!self.open_only || feedback.is_open())
    }
}

#[tonic::async_trait]
impl AlignmentService for Queries {
    async fn get_alignment(
        &self,
        request: Request<pb::GetAlignmentRequest>,
    ) -> Result<Response<pb::InitiativeAlignment>, Status> {
        let target = InitiativeRef::parse("initiative", &request.get_ref().initiative).map_err(domain_status)?;
        super::record_initiative(&target);
        let wanted = wanted(&request)?;
        let view = self.reads.alignment(&target, wanted).await.map_err(read_status)?;
        let view = view.ok_or_else(|| Status::not_found(format!("initiative {target} not found")))?;
        Ok(Response::new(c::alignment(&view)))
    }

    async fn list_alignments(
        &self,
        request: Request<pb::ListAlignmentsRequest>,
    ) -> Result<Response<pb::ListAlignmentsResponse>, Status> {
        let r = request.get_ref();
        let filter = list_filter(r).map_err(domain_status)?;
        let page_size = page_size(r.page_size).map_err(domain_status)?;
        let after = decode_token(&filter, &r.page_token).map_err(domain_status)?;
        let wanted = wanted(&request)?;
        let mut views =
            self.reads.list(&filter, after.as_deref(), page_size as usize + 1, wanted).await.map_err(read_status)?;
        let more = views.len() > page_size as usize;
        views.truncate(page_size as usize);
        let next_page_token = match views.last() {
            Some(last) if more => encode_token(&filter, last.key.as_str()),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListAlignmentsResponse {
            initiatives: views.iter().map(|view| c::alignment(view)).collect(),
            next_page_token,
        }))
    }

    async fn get_inbox(&self, request: Request<pb::GetInboxRequest>) -> Result<Response<pb::GetInboxResponse>, Status> {
        let principal = Principal::parse("principal", &request.get_ref().principal).map_err(domain_status)?;
        let wanted = wanted(&request)?;
        // Your own inbox includes what waits on your teams; someone else's, only what
        // waits on them (their teams are in their credentials, not here).
        let no_teams = BTreeSet::new();
        let teams = match request.extensions().get::<Caller>() {
            Some(caller) if caller.principal == principal => &caller.teams,
            _ => &no_teams,
        };
        let member = Member { person: &principal, teams };
        let inboxes = self.reads.inbox(&self.store, member, wanted).await.map_err(read_status)?;
        let items =
            inboxes.iter().flat_map(|(view, items)| items.iter().map(|item| c::inbox_item(view, item))).collect();
        Ok(Response::new(pb::GetInboxResponse { items }))
    }

    async fn list_feedback(
        &self,
        request: Request<pb::ListFeedbackRequest>,
    ) -> Result<Response<pb::ListFeedbackResponse>, Status> {
        let r = request.get_ref();
        let target = InitiativeRef::parse("initiative", &r.initiative).map_err(domain_status)?;
        super::record_initiative(&target);
        let filter = FeedbackFilter::parse(r).map_err(domain_status)?;
        let store = self.store.reader(wanted(&request)?.min_position).await;
        let page_size = page_size(r.page_size).map_err(domain_status)? as usize;
        // A token is valid for the same initiative and filters only.
        let filters = (&r.initiative, &filter);
        let after = decode_token_for(&filters, &r.page_token).map_err(domain_status)?;
        let after = match after {
            None => None,
            Some(last) => {
                let malformed =
                    || domain_status(DomainError::invalid("page_token", "is not a token this service issued"));
                let (version, id) = last.split_once('/').ok_or_else(malformed)?;
                let version: u64 = version.parse().map_err(|_| malformed())?;
                let id = FeedbackId::parse("page_token", id).map_err(|_| malformed())?;
                Some((version, id))
            }
        };
        let initiative = store.initiative(&target).await.map_err(store_status)?;
        let initiative = initiative.ok_or_else(|| Status::not_found(format!("initiative {target} not found")))?;
        if let Some(decision) = filter.decision
            && !initiative.decisions.contains_key(&decision)
        {
            return Err(Status::not_found(format!("decision {decision} not found on initiative {}", initiative.key)));
        }
        // In the order it was recorded: by the version of the event that recorded it.
        let mut matching: Vec<&Feedback> = initiative.feedback.values().filter(|f| filter.matches(f)).collect();
        matching.sort_by_key(|f| (f.version, f.id));
        let total = u32::try_from(matching.len()).unwrap_or(u32::MAX);
        let mut page: Vec<&Feedback> = matching
            .into_iter()
            .filter(|f| after.is_none_or(|after| (f.version, f.id) > after))
            .take(page_size + 1)
            .collect();
        let more = page.len() > page_size;
        page.truncate(page_size);
        let next_page_token = match page.last() {
            Some(last) if more => encode_token(&filters, &format!("{}/{}", last.version, last.id)),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListFeedbackResponse {
            items: page.into_iter().map(c::feedback).collect(),
            next_page_token,
            total,
        }))
    }

    async fn get_decision(
        &self,
        request: Request<pb::GetDecisionRequest>,
    ) -> Result<Response<pb::DecisionDetail>, Status> {
        let r = request.get_ref();
        let target = InitiativeRef::parse("initiative", &r.initiative).map_err(domain_status)?;
        super::record_initiative(&target);
        let decision_id = DecisionId::parse("decision_id", &r.decision_id).map_err(domain_status)?;
        let store = self.store.reader(wanted(&request)?.min_position).await;
        let initiative = store.initiative(&target).await.map_err(store_status)?;
        let initiative = initiative.ok_or_else(|| Status::not_found(format!("initiative {target} not found")))?;
        let decision = initiative.decisions.get(&decision_id).ok_or_else(|| {
            Status::not_found(format!("decision {decision_id} not found on initiative {}", initiative.key))
        })?;
        let events = store.sign_off_events(initiative.id, decision_id).await.map_err(store_status)?;
        let recorded =
            events.iter().map(StoredEvent::to_recorded).collect::<Result<Vec<_>, _>>().map_err(store_status)?;
        let history = sign_off_history(decision_id, &recorded);
        Ok(Response::new(c::decision_detail(&initiative, decision, &history)))
    }

    type WatchAlignmentsStream = Pin<Box<dyn Stream<Item = Result<pb::AlignmentUpdate, Status>> + Send + 'static>>;

    async fn watch_alignments(
        &self,
        request: Request<pb::WatchAlignmentsRequest>,
    ) -> Result<Response<Self::WatchAlignmentsStream>, Status> {
        let r = request.get_ref();
        let filter = watch_filter(r).map_err(domain_status)?;
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("the server has its limit of open streams; retry later with backoff")
        })?;
        let watch = self.feed.watch(filter, r.after_position).await.map_err(store_status)?;
        Ok(Response::new(Box::pin(watch_stream(watch, self.feed.clone(), r.after_position, permit))))
    }
}
