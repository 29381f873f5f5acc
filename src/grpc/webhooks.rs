//! `WebhookService`: subscriptions, their delivery log and redelivery, for
//! administrators (the guard lets only the admin role call it). Requests are parsed here
//! into `webhook::manage` drafts; the rules live there. A change is handed to this
//! process's dispatcher at once (`Webhooks::changed`); other replicas see it at their
//! next look (about a second).

use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::convert as c;
use super::status::store_status;
use crate::domain::DomainError;
use crate::domain::values::parse_uuid;
use crate::proto::{self as pb, webhook_service_server::WebhookService};
use crate::security::Caller;
use crate::store::Store;
use crate::store::webhooks::DeliveryRow;
use crate::webhook::manage::{self, Draft, FilterInput};
use crate::webhook::subscription::{StoredDigest, Subscription, prefix};
use crate::webhook::{WebhookOptions, Webhooks};

/// Deliveries a page holds by default, and at most.
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 500;
/// How long rotated-out secrets keep signing unless the caller says.
pub const DEFAULT_PREVIOUS_VALID_SECONDS: u64 = 86_400;
/// The longest grace a rotation may give the previous secrets (30 days).
const MAX_PREVIOUS_VALID_SECONDS: u64 = 30 * 86_400;

#[derive(Clone, Debug)]
pub struct WebhookApi {
    store: Store,
    options: WebhookOptions,
    dispatcher: Option<Webhooks>,
}

impl WebhookApi {
    pub fn new(store: Store, options: WebhookOptions, dispatcher: Option<Webhooks>) -> WebhookApi {
        WebhookApi { store, options, dispatcher }
    }

    fn changed(&self) {
        if let Some(dispatcher) = &self.dispatcher {
            dispatcher.changed();
        }
    }
}

fn bad(error: DomainError) -> Status {
    super::status::domain_status(error)
}

fn id(field: &str, text: &str) -> Result<Uuid, Status> {
    parse_uuid(field, text).map_err(bad)
}

fn filter(input: Option<&pb::SubscriptionFilter>) -> Option<FilterInput> {
    input.map(|f| FilterInput {
        initiatives: f.initiatives.clone(),
        types: f.types.clone(),
        functions: f.functions.clone(),
    })
}

fn digest(input: Option<&pb::DigestSettings>) -> Option<StoredDigest> {
    input.map(|d| StoredDigest { people: d.people.clone(), hour: d.hour, timezone: d.timezone.clone() })
}

/// A subscription on the wire (never its secrets).
pub fn subscription(s: &Subscription) -> pb::Subscription {
    let settings: Option<crate::webhook::subscription::Settings> = serde_json::from_value(s.row.config.clone()).ok();
    let stored_filter = settings.as_ref().map(|settings| settings.filter.clone()).unwrap_or_default();
    pb::Subscription {
        id: s.id.to_string(),
        url: s.url.as_str().to_owned(),
        description: s.description.clone(),
        filter: Some(pb::SubscriptionFilter {
            initiatives: stored_filter.initiatives.iter().map(Uuid::to_string).collect(),
            types: stored_filter.types,
            functions: stored_filter.functions,
        }),
        format: s.format.as_str().to_owned(),
        digest: s.digest.as_ref().map(|plan| pb::DigestSettings {
            people: plan.people.iter().map(|p| p.to_string()).collect(),
            hour: plan.hour,
            timezone: plan.timezone.name().to_owned(),
        }),
        state: s.state.as_str().to_owned(),
        disabled_reason: s.disabled_reason.clone(),
        position: u64::try_from(s.cursor.position).unwrap_or_default(),
        dead_in_a_row: u32::try_from(s.dead_in_a_row).unwrap_or(u32::MAX),
        active_secrets: u32::try_from(s.signing_secrets(chrono::Utc::now()).len()).unwrap_or(u32::MAX),
        created_by: s.row.created_by.clone(),
        created_at: Some(c::timestamp(s.row.created_at)),
        updated_at: Some(c::timestamp(s.row.updated_at)),
        version: u64::try_from(s.version).unwrap_or_default(),
    }
}

pub fn delivery(row: &DeliveryRow) -> pb::Delivery {
    pb::Delivery {
        message_id: row.message_id.clone(),
        message_type: row.message_type.clone(),
        position: row.position.and_then(|p| u64::try_from(p).ok()).unwrap_or_default(),
        initiative_id: row.initiative_id.map(|id| id.to_string()).unwrap_or_default(),
        status: row.status.clone(),
        attempts: u32::try_from(row.attempts).unwrap_or_default(),
        response_code: row.response_code.and_then(|code| u32::try_from(code).ok()).unwrap_or_default(),
        error: row.error.clone(),
        latency_ms: u64::try_from(row.latency_ms).unwrap_or_default(),
        first_attempt_at: Some(c::timestamp(row.first_attempt_at)),
        last_attempt_at: Some(c::timestamp(row.last_attempt_at)),
        delivered_at: row.delivered_at.map(c::timestamp),
        seq: u64::try_from(row.seq).unwrap_or_default(),
    }
}

fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request.extensions().get::<Caller>().cloned().ok_or_else(|| Status::unauthenticated("no authenticated caller"))
}

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    async fn create_subscription(
        &self,
        request: Request<pb::CreateSubscriptionRequest>,
    ) -> Result<Response<pb::CreateSubscriptionResponse>, Status> {
        let by = caller(&request)?.principal;
        let r = request.into_inner();
        if r.url.is_empty() {
            return Err(bad(DomainError::invalid("url", "is required")));
        }
        let draft = Draft {
            url: Some(r.url),
            description: Some(r.description),
            filter: filter(r.filter.as_ref()),
            format: Some(r.format),
            digest: Some(digest(r.digest.as_ref())),
            state: Some(if r.paused { "paused" } else { "enabled" }.to_owned()),
        };
        let (created, secret) = manage::create(&self.store, &self.options, draft, Some(r.secret), r.from_start, &by)
            .await
            .map_err(store_status)?;
        self.changed();
        Ok(Response::new(pb::CreateSubscriptionResponse {
            subscription: Some(subscription(&created)),
            secret: secret.expose(),
        }))
    }

    async fn get_subscription(
        &self,
        request: Request<pb::GetSubscriptionRequest>,
    ) -> Result<Response<pb::Subscription>, Status> {
        let id = id("id", &request.get_ref().id)?;
        let found = manage::get(&self.store, id).await.map_err(store_status)?;
        Ok(Response::new(subscription(&found)))
    }

    async fn list_subscriptions(
        &self,
        _request: Request<pb::ListSubscriptionsRequest>,
    ) -> Result<Response<pb::ListSubscriptionsResponse>, Status> {
        let rows = self.store.subscriptions().await.map_err(store_status)?;
        let subscriptions = rows
            .into_iter()
            .map(|row| Subscription::from_row(row).map(|s| subscription(&s)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        Ok(Response::new(pb::ListSubscriptionsResponse { subscriptions }))
    }

    async fn update_subscription(
        &self,
        request: Request<pb::UpdateSubscriptionRequest>,
    ) -> Result<Response<pb::Subscription>, Status> {
        let r = request.into_inner();
        let id = id("id", &r.id)?;
        let expected = r
            .expected_version
            .map(|v| i64::try_from(v).map_err(|_| bad(DomainError::invalid("expected_version", "is too large"))))
            .transpose()?;
        let digest = if r.clear_digest {
            if r.digest.is_some() {
                return Err(bad(DomainError::invalid("clear_digest", "cannot be set together with digest")));
            }
            Some(None)
        } else {
            digest(r.digest.as_ref()).map(Some)
        };
        let draft = Draft {
            url: r.url,
            description: r.description,
            filter: filter(r.filter.as_ref()),
            format: r.format,
            digest,
            state: r.state,
        };
        let updated = manage::update(&self.store, &self.options, id, expected, draft).await.map_err(store_status)?;
        self.changed();
        Ok(Response::new(subscription(&updated)))
    }

    async fn rotate_secret(
        &self,
        request: Request<pb::RotateSecretRequest>,
    ) -> Result<Response<pb::RotateSecretResponse>, Status> {
        let r = request.into_inner();
        let id = id("id", &r.id)?;
        let seconds = r.previous_valid_seconds.unwrap_or(DEFAULT_PREVIOUS_VALID_SECONDS);
        if seconds > MAX_PREVIOUS_VALID_SECONDS {
            return Err(bad(DomainError::invalid(
                "previous_valid_seconds",
                format!("{seconds} is more than {MAX_PREVIOUS_VALID_SECONDS} (30 days)"),
            )));
        }
        let grace = chrono::Duration::seconds(i64::try_from(seconds).unwrap_or_default());
        let (rotated, secret) = manage::rotate(&self.store, id, Some(r.secret), grace).await.map_err(store_status)?;
        self.changed();
        Ok(Response::new(pb::RotateSecretResponse {
            subscription: Some(subscription(&rotated)),
            secret: secret.expose(),
        }))
    }

    async fn delete_subscription(
        &self,
        request: Request<pb::DeleteSubscriptionRequest>,
    ) -> Result<Response<pb::DeleteSubscriptionResponse>, Status> {
        let id = id("id", &request.get_ref().id)?;
        manage::delete(&self.store, id).await.map_err(store_status)?;
        self.changed();
        Ok(Response::new(pb::DeleteSubscriptionResponse {}))
    }

    async fn list_deliveries(
        &self,
        request: Request<pb::ListDeliveriesRequest>,
    ) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        let r = request.into_inner();
        let id = id("subscription_id", &r.subscription_id)?;
        manage::get(&self.store, id).await.map_err(store_status)?;
        let status = match r.status.as_str() {
            "" => None,
            known @ ("delivered" | "failing" | "dead" | "queued") => Some(known),
            other => {
                return Err(bad(DomainError::invalid(
                    "status",
                    format!("{:?} is not delivered, failing, dead or queued", prefix(other)),
                )));
            }
        };
        let limit = match r.limit {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => {
                return Err(bad(DomainError::invalid("limit", format!("{n} is more than {MAX_PAGE}"))));
            }
            n => n,
        };
        let before = match r.page_token.as_str() {
            "" => None,
            token => Some(token.parse::<i64>().map_err(|_| {
                bad(DomainError::invalid("page_token", format!("{:?} is not a page token of this list", prefix(token))))
            })?),
        };
        let rows = self.store.deliveries(id, status, before, i64::from(limit) + 1).await.map_err(store_status)?;
        let more = rows.len() > limit as usize;
        let page: Vec<_> = rows.into_iter().take(limit as usize).collect();
        let next_page_token =
            if more { page.last().map(|row| row.seq.to_string()).unwrap_or_default() } else { String::new() };
        Ok(Response::new(pb::ListDeliveriesResponse {
            deliveries: page.iter().map(delivery).collect(),
            next_page_token,
        }))
    }

    async fn redeliver(&self, request: Request<pb::RedeliverRequest>) -> Result<Response<pb::Delivery>, Status> {
        let r = request.into_inner();
        let id = id("subscription_id", &r.subscription_id)?;
        if r.message_id.is_empty() {
            return Err(bad(DomainError::invalid("message_id", "is required")));
        }
        let row = manage::redeliver(&self.store, id, &r.message_id).await.map_err(store_status)?;
        self.changed();
        Ok(Response::new(delivery(&row)))
    }
}
