//! Delivering: one replica at a time holds the webhooks lease (in the database, on its
//! clock) and runs a sender per enabled subscription; the others wait to take over. A
//! sender walks the derived log (`derive::Tail`) from its subscription's cursor and
//! sends each message it wants in log order: retried with exponential backoff and
//! jitter up to the attempt budget, then dead-lettered (recorded, re-deliverable, and
//! the sender goes on); a receiver that answers 410 Gone, resolves to a refused address
//! or dead-letters `disable_after` messages in a row disables its subscription with the
//! reason. Progress (the delivery log's rows and the cursors) is written in batches,
//! fenced by the lease: a replica that lost it can never move a cursor, and stops
//! sending before another may take over (it gives up a third of the lease's time early).
//!
//! At least once, never twice at the same time: a message is marked delivered after its
//! receiver answered, so a replica killed in between leaves it to be sent again by the
//! next holder — with the same `webhook-id`, by which receivers de-duplicate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use uuid::Uuid;

use super::WebhookOptions;
use super::derive::{Derived, Deriver, Tail};
use super::http::{Attempt, HttpSender, Outcome};
use super::payload::{self, BoardLinks};
use super::sign;
use super::subscription::{State, Subscription};
use crate::domain::notify;
use crate::domain::values::InitiativeRef;
use crate::live::Feed;
use crate::store::webhooks::{DeliveryRow, LeaseFence, Progress};
use crate::store::{GlobalCursor, Store, StoreError};

/// The lease's name in the store.
pub const LEASE: &str = "webhooks";
/// Derived events a sender takes at a time.
const BATCH: usize = 256;
/// Rows the writer gathers before it writes (or after `WRITE_EVERY`).
const WRITE_BATCH: usize = 512;
const WRITE_EVERY: Duration = Duration::from_millis(50);
/// Writes queued for the writer at most: a sender waits when it is full. A row is a few
/// hundred bytes (its error text is bounded; only digests carry a payload).
const WRITE_QUEUE: usize = 4096;
/// Longest error text kept in the delivery log.
const ERROR_CHARS: usize = 200;

/// One message for one subscription.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub id: String,
    pub message_type: String,
    pub position: Option<i64>,
    pub initiative: Option<Uuid>,
    pub body: Bytes,
    /// Whether the delivery log keeps the body (a digest cannot be derived again).
    pub keep_payload: bool,
}

/// The messages of one derived event in `format`: the event, then its notifications;
/// `wanted` picks which of them a subscription receives (all: a redelivery's search).
pub fn messages(subscription: &Subscription, derived: &Derived, links: &BoardLinks, everything: bool) -> Vec<Outgoing> {
    let event = &derived.event;
    let event_id = event.event_id.simple();
    let mut out = Vec::new();
    let filter = &subscription.filter;
    let format = subscription.format;
    if everything || filter.wants_event(format, event.stream_id, &event.event_type, &derived.recorded.event) {
        out.push(Outgoing {
            id: format!("msg_{event_id}"),
            message_type: format!("event.{}", event.event_type),
            position: Some(event.position),
            initiative: Some(event.stream_id),
            body: Bytes::from(payload::event_body(format, event, &derived.recorded, links)),
            keep_payload: false,
        });
    }
    let mut seen: HashMap<&'static str, usize> = HashMap::new();
    for notification in &derived.notifications {
        let kind = notification.kind.as_str();
        let n = seen.entry(kind).or_default();
        let id = if *n == 0 { format!("msg_{event_id}_{kind}") } else { format!("msg_{event_id}_{kind}_{n}") };
        *n += 1;
        if everything || filter.wants_notification(notification) {
            out.push(Outgoing {
                id,
                message_type: format!("notification.{kind}"),
                position: Some(event.position),
                initiative: Some(notification.initiative_id.0),
                body: Bytes::from(payload::notification_body(format, notification, event, links)),
                keep_payload: false,
            });
        }
    }
    out
}

/// The webhook-id of a person's digest for a day.
pub fn digest_id(person: &str, day: chrono::NaiveDate) -> String {
    let hash = Sha256::digest(person.as_bytes());
    format!("msg_digest_{}_{}", day.format("%Y%m%d"), hex::encode(&hash[..8]))
}

/// The exponential backoff before attempt `attempt + 1`, with jitter: a uniformly
/// random point in the second half of the doubled delay, capped at `max`.
pub fn backoff(base: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    let doubled = base.saturating_mul(1u32.checked_shl(attempt.saturating_sub(1).min(30)).unwrap_or(u32::MAX));
    let capped = doubled.min(max);
    capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

fn short(text: &str) -> String {
    if text.chars().count() > ERROR_CHARS {
        format!("{}…", text.chars().take(ERROR_CHARS).collect::<String>())
    } else {
        text.to_owned()
    }
}

/// The dispatcher's handle: tell it that subscriptions changed, or stop it.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    feed: Feed,
    options: WebhookOptions,
    http: HttpSender,
    holder: String,
    changed: Notify,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").field("holder", &self.inner.holder).finish()
    }
}

impl Webhooks {
    /// Starts competing for the lease; delivers while it holds it, until `stop`.
    pub fn start(store: Store, feed: Feed, options: WebhookOptions) -> Result<Webhooks, String> {
        let http = HttpSender::new(options.http())?;
        let holder = format!("{}-{}", std::process::id(), Uuid::now_v7().simple());
        let (stop, _) = watch::channel(false);
        let inner = Arc::new(Inner { store, feed, options, http, holder, changed: Notify::new(), stop });
        tokio::spawn(compete(Arc::clone(&inner)));
        Ok(Webhooks { inner })
    }

    /// Subscriptions changed (through this process's API): look again now.
    pub fn changed(&self) {
        self.inner.changed.notify_one();
    }

    /// Stops delivering and gives the lease up, so that another replica takes over now.
    pub fn stop(&self) {
        let _ = self.inner.stop.send(true);
    }

    pub fn options(&self) -> &WebhookOptions {
        &self.inner.options
    }
}

async fn compete(inner: Arc<Inner>) {
    let mut stopping = inner.stop.subscribe();
    let ttl = inner.options.lease_ttl;
    loop {
        if *stopping.borrow() {
            return;
        }
        match inner.store.acquire_lease(LEASE, &inner.holder, ttl).await {
            Ok(Some(fence)) => {
                info!(holder = %inner.holder, epoch = fence.epoch, "webhooks: this replica delivers");
                let released = hold(Arc::clone(&inner), fence.clone()).await;
                if released {
                    let _ = inner.store.release_lease(&fence).await;
                    return;
                }
                warn!(holder = %inner.holder, "webhooks: lease lost; another replica may deliver now");
            }
            Ok(None) => {}
            Err(error) => warn!(%error, "webhooks: cannot ask for the lease"),
        }
        tokio::select! {
            _ = tokio::time::sleep(ttl / 3) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
    }
}

/// What every task under one holding of the lease shares.
struct Held {
    inner: Arc<Inner>,
    tail: Tail,
    writes: mpsc::Sender<Write>,
    lost: watch::Receiver<bool>,
    links: BoardLinks,
}

/// Delivers while the lease holds; true when it ended because the dispatcher stops.
async fn hold(inner: Arc<Inner>, fence: LeaseFence) -> bool {
    let (lose, lost) = watch::channel(false);
    let renewer = tokio::spawn(renew(Arc::clone(&inner), fence.clone(), lose.clone()));
    // The shared tail starts at the head: a subscription behind it (one resumed after a
    // while) reads the log itself until it gets there, and holds up no one meanwhile.
    let start = match head_cursor(&inner.store).await {
        Ok(cursor) => cursor,
        Err(error) => {
            warn!(%error, "webhooks: cannot read the log's head");
            renewer.abort();
            return false;
        }
    };
    let (tail, tail_task) = Tail::start(inner.store.clone(), inner.feed.clone(), start, inner.options.ring_bytes);
    let (writes, queue) = mpsc::channel(WRITE_QUEUE);
    let writer = tokio::spawn(write(inner.store.clone(), fence.clone(), queue, lose.clone()));
    let links = BoardLinks { base: inner.options.board_url.clone() };
    let held = Arc::new(Held { inner: Arc::clone(&inner), tail, writes, lost: lost.clone(), links });
    let redeliveries = tokio::spawn(redeliver(Arc::clone(&held)));
    let pruning = tokio::spawn(prune(Arc::clone(&held)));
    let stopped = supervise(Arc::clone(&held)).await;
    for task in [renewer, tail_task, redeliveries, pruning] {
        task.abort();
    }
    // The writer finishes what was queued (if the lease still holds) once every sender
    // is gone.
    drop(held);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    stopped
}

/// The cursor of the log's last event now.
pub async fn head_cursor(store: &Store) -> Result<GlobalCursor, StoreError> {
    let head = store.head_position().await?;
    if head == 0 {
        return Ok(GlobalCursor::default());
    }
    let before = store.cursor_after_position(head.saturating_sub(1)).await?;
    let after = store.read_all(before, 1).await?;
    Ok(after.first().map(|(cursor, _)| *cursor).unwrap_or(before))
}

/// Renews the lease every third of its time; reports it lost when the store refuses, or
/// when two thirds of its time passed since the last renewal the store confirmed.
async fn renew(inner: Arc<Inner>, fence: LeaseFence, lose: watch::Sender<bool>) {
    let ttl = inner.options.lease_ttl;
    let mut valid_until = Instant::now() + ttl * 2 / 3;
    loop {
        let next = (Instant::now() + ttl / 3).min(valid_until);
        tokio::time::sleep_until(next.into()).await;
        if Instant::now() >= valid_until {
            let _ = lose.send(true);
            return;
        }
        let asked = Instant::now();
        match inner.store.acquire_lease(LEASE, &inner.holder, ttl).await {
            Ok(Some(renewed)) if renewed.epoch == fence.epoch => valid_until = asked + ttl * 2 / 3,
            Ok(_) => {
                let _ = lose.send(true);
                return;
            }
            Err(error) => warn!(%error, "webhooks: cannot renew the lease"),
        }
    }
}

struct Running {
    config: watch::Sender<Arc<Subscription>>,
    task: JoinHandle<()>,
    version: i64,
}

/// Keeps one sender per enabled subscription; true when the dispatcher stops.
async fn supervise(held: Arc<Held>) -> bool {
    let inner = &held.inner;
    let mut stopping = inner.stop.subscribe();
    let mut lost = held.lost.clone();
    let mut running: HashMap<Uuid, Running> = HashMap::new();
    let stopped = loop {
        match inner.store.subscriptions().await {
            Ok(rows) => {
                let mut present = std::collections::HashSet::new();
                for row in rows {
                    present.insert(row.id);
                    let subscription = match Subscription::from_row(row) {
                        Ok(subscription) => Arc::new(subscription),
                        Err(error) => {
                            warn!(%error, "webhooks: a stored subscription does not parse; skipped");
                            continue;
                        }
                    };
                    let id = subscription.id;
                    let enabled = subscription.state == State::Enabled;
                    match running.get_mut(&id) {
                        Some(run) if run.version != subscription.version || !run.task.is_finished() => {
                            if run.task.is_finished() && enabled {
                                // Enabled again after it stopped itself: a new sender.
                                let version = subscription.version;
                                *run = spawn_sender(&held, subscription);
                                run.version = version;
                            } else if run.version != subscription.version {
                                run.version = subscription.version;
                                run.config.send_replace(subscription);
                            }
                        }
                        Some(_) => {}
                        None if enabled => {
                            running.insert(id, spawn_sender(&held, subscription));
                        }
                        None => {}
                    }
                }
                held.tail.set_active(!running.is_empty());
                running.retain(|id, run| {
                    let keep = present.contains(id);
                    if !keep {
                        run.task.abort();
                    }
                    keep
                });
            }
            Err(error) => warn!(%error, "webhooks: cannot read the subscriptions"),
        }
        tokio::select! {
            _ = tokio::time::sleep(inner.options.refresh) => {}
            _ = inner.changed.notified() => {}
            _ = lost.wait_for(|lost| *lost) => break false,
            _ = stopping.wait_for(|stop| *stop) => break true,
        }
    };
    for (_, run) in running {
        run.task.abort();
    }
    stopped
}

fn spawn_sender(held: &Arc<Held>, subscription: Arc<Subscription>) -> Running {
    let version = subscription.version;
    let (config, configured) = watch::channel(subscription);
    let task = tokio::spawn(send(Arc::clone(held), configured));
    Running { config, task, version }
}

/// How one message ended.
enum Sent {
    Delivered,
    Dead,
    /// The sender stops here: the subscription was disabled (with this reason, to be
    /// recorded), paused, deleted, or the lease was lost. The message is not handled.
    Stop(Option<String>),
}

async fn send(held: Arc<Held>, mut config: watch::Receiver<Arc<Subscription>>) {
    let first = config.borrow().clone();
    let id = first.id;
    let mut cursor = first.cursor;
    let mut dead_in_a_row = first.dead_in_a_row;
    let mut last_digest = first.last_digest_on.clone();
    let mut own = Deriver::default();
    let mut tail = held.tail.clone();
    let options = &held.inner.options;
    loop {
        let subscription = config.borrow().clone();
        if subscription.state != State::Enabled || *held.lost.borrow() {
            break;
        }
        if let Some(plan) = &subscription.digest
            && let Some(day) = plan.due(Utc::now(), last_digest.as_deref())
        {
            match send_digests(&held, &mut config, day).await {
                Sent::Stop(reason) => return stop(&held, id, reason).await,
                _ => {
                    last_digest = Some(day.format("%Y-%m-%d").to_string());
                    let progress = Progress { last_digest_on: last_digest.clone(), ..progress(id) };
                    if held.writes.send(Write::Progress(progress)).await.is_err() {
                        return;
                    }
                }
            }
        }
        let batch = match tail.after(cursor, BATCH, &mut own).await {
            Ok(batch) => batch,
            Err(error) => {
                warn!(%error, subscription = %id, "webhooks: cannot read the log");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            let wait = subscription.digest.as_ref().map_or(options.refresh, |plan| plan.wait(Utc::now()));
            tokio::select! {
                _ = tail.moved_past(cursor, wait) => {}
                _ = config.changed() => {}
            }
            continue;
        }
        for derived in batch {
            let subscription = config.borrow().clone();
            for message in messages(&subscription, &derived, &held.links, false) {
                match deliver(&held, &mut config, &message).await {
                    Sent::Delivered => dead_in_a_row = 0,
                    Sent::Dead => dead_in_a_row += 1,
                    Sent::Stop(reason) => return stop(&held, id, reason).await,
                }
            }
            cursor = derived.cursor;
            let moved = Progress { cursor: Some(cursor), dead_in_a_row: Some(dead_in_a_row), ..progress(id) };
            if held.writes.send(Write::Progress(moved)).await.is_err() {
                return;
            }
            if dead_in_a_row >= i64::from(options.disable_after) {
                let reason = format!("{dead_in_a_row} messages in a row were dead-lettered");
                return stop(&held, id, Some(reason)).await;
            }
        }
    }
    flush(&held).await;
}

fn progress(id: Uuid) -> Progress {
    Progress { subscription_id: id, cursor: None, dead_in_a_row: None, disable: None, last_digest_on: None }
}

/// Records why the subscription stops (if it is disabled) and waits until what this
/// sender did is written.
async fn stop(held: &Held, id: Uuid, reason: Option<String>) {
    if let Some(reason) = reason {
        warn!(subscription = %id, %reason, "webhooks: subscription disabled");
        let _ = held.writes.send(Write::Progress(Progress { disable: Some(reason), ..progress(id) })).await;
    }
    flush(held).await;
}

async fn flush(held: &Held) {
    let (done, written) = oneshot::channel();
    if held.writes.send(Write::Flush(done)).await.is_ok() {
        let _ = written.await;
    }
}

/// Sends one message until it is delivered or dead, or the sender must stop.
async fn deliver(held: &Held, config: &mut watch::Receiver<Arc<Subscription>>, message: &Outgoing) -> Sent {
    let options = &held.inner.options;
    let mut lost = held.lost.clone();
    let first_attempt_at = crate::store::now_micros();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let subscription = config.borrow().clone();
        let (tried, at) = post(held, &subscription, message).await;
        let mut row = delivery_row(&subscription, message, &tried, attempt, first_attempt_at, at);
        let sent = match tried.outcome {
            Outcome::Delivered => {
                row.status = "delivered".into();
                row.delivered_at = Some(at);
                Some(Sent::Delivered)
            }
            Outcome::Gone => Some(Sent::Stop(Some(format!("the receiver answered 410 Gone to {}", message.id)))),
            Outcome::Refused => Some(Sent::Stop(Some(format!("the target is refused: {}", short(&tried.error))))),
            Outcome::Failed if attempt >= options.attempts => {
                row.status = "dead".into();
                Some(Sent::Dead)
            }
            Outcome::Failed => None,
        };
        crate::metrics::webhook_attempt(&row.status, tried.latency);
        if held.writes.send(Write::Delivery(row)).await.is_err() {
            return Sent::Stop(None);
        }
        if let Some(sent) = sent {
            return sent;
        }
        let wait = backoff(options.backoff_base, options.backoff_max, attempt, jitter());
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                changed = config.changed() => {
                    if changed.is_err() || config.borrow().state != State::Enabled {
                        return Sent::Stop(None);
                    }
                }
                _ = lost.wait_for(|lost| *lost) => return Sent::Stop(None),
            }
        }
    }
}

/// One attempt, signed with the secrets valid now.
async fn post(held: &Held, subscription: &Subscription, message: &Outgoing) -> (Attempt, DateTime<Utc>) {
    let at = crate::store::now_micros();
    let secrets = subscription.signing_secrets(at);
    let headers = sign::headers(&secrets, &message.id, at.timestamp(), &message.body);
    let headers: Vec<(&str, String)> = headers.iter().map(|(name, value)| (*name, value.clone())).collect();
    let tried = held.inner.http.post(&subscription.url, &headers, message.body.clone()).await;
    (tried, at)
}

fn delivery_row(
    subscription: &Subscription,
    message: &Outgoing,
    tried: &Attempt,
    attempts: u32,
    first_attempt_at: DateTime<Utc>,
    at: DateTime<Utc>,
) -> DeliveryRow {
    DeliveryRow {
        seq: 0,
        subscription_id: subscription.id,
        message_id: message.id.clone(),
        message_type: message.message_type.clone(),
        position: message.position,
        initiative_id: message.initiative,
        status: "failing".into(),
        attempts: i32::try_from(attempts).unwrap_or(i32::MAX),
        response_code: tried.response_code.map(i32::from),
        error: short(&tried.error),
        latency_ms: i64::try_from(tried.latency.as_millis()).unwrap_or(i64::MAX),
        first_attempt_at,
        last_attempt_at: at,
        delivered_at: None,
        payload: message.keep_payload.then(|| message.body.to_vec()),
    }
}

/// The day's digest of every person the subscription names (those something waits on).
async fn send_digests(held: &Held, config: &mut watch::Receiver<Arc<Subscription>>, day: chrono::NaiveDate) -> Sent {
    let subscription = config.borrow().clone();
    let Some(plan) = &subscription.digest else { return Sent::Delivered };
    let store = &held.inner.store;
    for person in &plan.people {
        let digest = match digest_of(store, person).await {
            Ok(digest) => digest,
            Err(error) => {
                warn!(%error, "webhooks: cannot gather a digest; sent at the next try");
                return Sent::Dead;
            }
        };
        if digest.total == 0 {
            continue;
        }
        let message = Outgoing {
            id: digest_id(person.as_str(), day),
            message_type: "digest".into(),
            position: None,
            initiative: None,
            body: Bytes::from(payload::digest_body(subscription.format, &digest, day, &held.links)),
            keep_payload: true,
        };
        if let Sent::Stop(reason) = deliver(held, config, &message).await {
            return Sent::Stop(reason);
        }
    }
    Sent::Delivered
}

/// What waits on `person` now, from the alignment projection and their initiatives.
pub async fn digest_of(store: &Store, person: &crate::domain::values::Principal) -> Result<notify::Digest, StoreError> {
    let views = store.awaiting(person).await?;
    let mut initiatives = Vec::with_capacity(views.len());
    for view in views {
        if let Some(initiative) = store.initiative(&InitiativeRef::Id(view.initiative_id)).await? {
            initiatives.push(initiative);
        }
    }
    Ok(notify::digest(person, initiatives.iter()))
}

/// Sends the messages a redelivery was asked for, once each.
async fn redeliver(held: Arc<Held>) {
    let store = &held.inner.store;
    loop {
        match store.queued_redeliveries(32).await {
            Ok(rows) if !rows.is_empty() => {
                for row in rows {
                    redeliver_one(&held, row).await;
                }
                // Written before the queue is read again, so that each is sent once.
                flush(&held).await;
                continue;
            }
            Ok(_) => {}
            Err(error) => warn!(%error, "webhooks: cannot read the queued redeliveries"),
        }
        tokio::time::sleep(held.inner.options.refresh).await;
    }
}

async fn redeliver_one(held: &Held, mut row: DeliveryRow) {
    let store = &held.inner.store;
    let subscription = match store.subscription(row.subscription_id).await {
        Ok(Some(found)) => match Subscription::from_row(found) {
            Ok(subscription) => subscription,
            Err(error) => return warn!(%error, "webhooks: redelivery of a subscription that does not parse"),
        },
        Ok(None) => return,
        Err(error) => return warn!(%error, "webhooks: cannot read a subscription"),
    };
    let message = match &row.payload {
        Some(body) => Some(Outgoing {
            id: row.message_id.clone(),
            message_type: row.message_type.clone(),
            position: row.position,
            initiative: row.initiative_id,
            body: Bytes::from(body.clone()),
            keep_payload: true,
        }),
        None => match rederive(store, &subscription, &row, &held.links).await {
            Ok(message) => message,
            Err(error) => return warn!(%error, "webhooks: cannot derive a message again"),
        },
    };
    let Some(message) = message else {
        row.status = "dead".into();
        row.error = "the message cannot be derived from the log again".into();
        let _ = held.writes.send(Write::Delivery(row)).await;
        return;
    };
    let (tried, at) = post(held, &subscription, &message).await;
    let attempts = u32::try_from(row.attempts).unwrap_or_default().saturating_add(1);
    let mut again = delivery_row(&subscription, &message, &tried, attempts, row.first_attempt_at, at);
    again.status = if matches!(tried.outcome, Outcome::Delivered) { "delivered" } else { "dead" }.into();
    again.delivered_at = (matches!(tried.outcome, Outcome::Delivered)).then_some(at);
    crate::metrics::webhook_attempt(&again.status, tried.latency);
    let _ = held.writes.send(Write::Delivery(again)).await;
}

/// The message a delivery row names, derived from its event again.
async fn rederive(
    store: &Store,
    subscription: &Subscription,
    row: &DeliveryRow,
    links: &BoardLinks,
) -> Result<Option<Outgoing>, StoreError> {
    let Some(position) = row.position.and_then(|p| u64::try_from(p).ok()) else { return Ok(None) };
    let page = store.read_all_after_position(position.saturating_sub(1), 1).await?;
    let Some((cursor, event)) =
        page.into_iter().next().filter(|(_, event)| event.position == row.position.unwrap_or(0))
    else {
        return Ok(None);
    };
    let derived = Deriver::default().derive(store, cursor, event).await?;
    Ok(messages(subscription, &derived, links, true).into_iter().find(|message| message.id == row.message_id))
}

/// Deletes delivered rows older than the delivery log keeps them, hourly.
async fn prune(held: Arc<Held>) {
    loop {
        let keep = chrono::Duration::from_std(held.inner.options.keep_deliveries).unwrap_or(chrono::Duration::days(7));
        match held.inner.store.prune_deliveries(Utc::now() - keep).await {
            Ok(0) => {}
            Ok(pruned) => info!(pruned, "webhooks: old deliveries pruned"),
            Err(error) => warn!(%error, "webhooks: cannot prune the delivery log"),
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

enum Write {
    Delivery(DeliveryRow),
    Progress(Progress),
    Flush(oneshot::Sender<()>),
}

/// Writes the delivery log and the cursors in batches, fenced by the lease.
async fn write(store: Store, fence: LeaseFence, mut queue: mpsc::Receiver<Write>, lose: watch::Sender<bool>) {
    let mut rows: Vec<DeliveryRow> = Vec::new();
    let mut moves: Vec<Progress> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut open = true;
    while open || !rows.is_empty() || !moves.is_empty() {
        let deadline = tokio::time::Instant::now() + WRITE_EVERY;
        while rows.len() + moves.len() < WRITE_BATCH && waiting.is_empty() {
            match tokio::time::timeout_at(deadline, queue.recv()).await {
                Ok(Some(Write::Delivery(row))) => rows.push(row),
                Ok(Some(Write::Progress(progress))) => moves.push(progress),
                Ok(Some(Write::Flush(done))) => waiting.push(done),
                Ok(None) => {
                    open = false;
                    break;
                }
                Err(_) => break,
            }
        }
        if !rows.is_empty() || !moves.is_empty() {
            let deliveries = last_of_each(std::mem::take(&mut rows));
            let progress = merged(std::mem::take(&mut moves));
            match store.record_deliveries(&fence, &deliveries, &progress).await {
                Ok(true) => {}
                Ok(false) => {
                    let _ = lose.send(true);
                    return;
                }
                Err(error) => {
                    // Kept for the next round: nothing was written.
                    warn!(%error, "webhooks: cannot record deliveries");
                    rows = deliveries;
                    moves = progress;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

/// The latest row of each message (a batch may hold several attempts of one).
fn last_of_each(rows: Vec<DeliveryRow>) -> Vec<DeliveryRow> {
    let mut index: HashMap<(Uuid, String), usize> = HashMap::new();
    let mut out: Vec<DeliveryRow> = Vec::with_capacity(rows.len());
    for row in rows {
        match index.get(&(row.subscription_id, row.message_id.clone())) {
            Some(&at) => {
                let first = out[at].first_attempt_at.min(row.first_attempt_at);
                out[at] = DeliveryRow { first_attempt_at: first, ..row };
            }
            None => {
                index.insert((row.subscription_id, row.message_id.clone()), out.len());
                out.push(row);
            }
        }
    }
    out
}

/// One progress per subscription, the latest of each field.
fn merged(moves: Vec<Progress>) -> Vec<Progress> {
    let mut by: HashMap<Uuid, Progress> = HashMap::new();
    for next in moves {
        let entry = by.entry(next.subscription_id).or_insert_with(|| progress(next.subscription_id));
        if next.cursor.is_some() {
            entry.cursor = next.cursor;
        }
        if next.dead_in_a_row.is_some() {
            entry.dead_in_a_row = next.dead_in_a_row;
        }
        if next.disable.is_some() {
            entry.disable = next.disable;
        }
        if next.last_digest_on.is_some() {
            entry.last_digest_on = next.last_digest_on;
        }
    }
    by.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap_with_jitter_in_its_upper_half() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        assert_eq!(backoff(base, max, 1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(base, max, 3, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(base, max, 3, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(base, max, 20, 1.0), max);
        assert_eq!(backoff(base, max, u32::MAX, 1.0), max, "no overflow");
        for _ in 0..100 {
            let wait = backoff(base, max, 4, jitter());
            assert!(wait >= Duration::from_secs(4) && wait <= Duration::from_secs(8), "{wait:?}");
        }
    }

    #[test]
    fn a_digest_id_is_the_same_for_the_same_person_and_day_only() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).expect("day");
        let next = chrono::NaiveDate::from_ymd_opt(2026, 12, 8).expect("day");
        assert_eq!(digest_id("ana@example.com", day), digest_id("ana@example.com", day));
        assert_ne!(digest_id("ana@example.com", day), digest_id("bo@example.com", day));
        assert_ne!(digest_id("ana@example.com", day), digest_id("ana@example.com", next));
        assert!(digest_id("ana@example.com", day).starts_with("msg_digest_20261207_"));
    }

    #[test]
    fn a_batch_keeps_the_last_attempt_of_each_message_and_its_first_attempt_time() {
        let at = |s: i64| DateTime::from_timestamp(s, 0).expect("time");
        let row = |message: &str, attempts: i32, first: i64, status: &str| DeliveryRow {
            seq: 0,
            subscription_id: Uuid::nil(),
            message_id: message.into(),
            message_type: "event.X".into(),
            position: Some(1),
            initiative_id: None,
            status: status.into(),
            attempts,
            response_code: None,
            error: String::new(),
            latency_ms: 0,
            first_attempt_at: at(first),
            last_attempt_at: at(first),
            delivered_at: None,
            payload: None,
        };
        let kept =
            last_of_each(vec![row("a", 1, 10, "failing"), row("b", 1, 11, "delivered"), row("a", 2, 12, "delivered")]);
        assert_eq!(kept.len(), 2);
        assert_eq!((kept[0].attempts, kept[0].status.as_str(), kept[0].first_attempt_at), (2, "delivered", at(10)));
    }
}
