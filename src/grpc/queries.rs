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
use crate::proto::{self as pb, alignment_service_server::AlignmentService};
use crate::store::{InitiativeRef, ListFilter, Store, StoredEvent};

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

#[derive(Clone, Debug)]
pub struct Queries {
    store: Store,
}

impl Queries {
    pub fn new(store: Store) -> Self {
        Self { store }
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
        super::record_initiative(&target);
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
        super::record_initiative(&target);
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

    type WatchAlignmentsStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::AlignmentUpdate, Status>> + Send + 'static>>;

    async fn watch_alignments(
        &self,
        _request: Request<pb::WatchAlignmentsRequest>,
    ) -> Result<Response<Self::WatchAlignmentsStream>, Status> {
        Err(Status::unimplemented("WatchAlignments: work in progress"))
    }
}
