//! What the outbound webhooks (`crate::webhook`) keep in the store: subscriptions, the
//! delivery log, and the lease that lets one replica at a time dispatch. This module
//! holds what both backends share — the rows, their checks, their decoding, how a
//! batch is merged before it is written — and the `Store` methods, which always run
//! on the primary; each backend's statements are in its own `webhooks` file.
//!
//! The dispatcher writes what it delivered and how far each subscription got in one
//! transaction (`Store::record_deliveries`), fenced by its lease: a replica whose lease
//! was taken over (it paused, its clock or network failed) writes nothing, so it can
//! never move a cursor behind the new holder's back.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::rows::StoredRow;
use super::{GlobalCursor, Store, StoreError};
use crate::domain::DomainError;

/// The states of a subscription.
pub const SUBSCRIPTION_STATES: [&str; 3] = ["enabled", "paused", "disabled"];

/// The statuses of a delivery.
pub const DELIVERY_STATUSES: [&str; 4] = ["delivered", "failing", "dead", "queued"];

/// The columns `decode_subscription` reads, in both databases.
pub(crate) const SUBSCRIPTION_COLUMNS: &str = "id, config, state, disabled_reason, cursor_tx, cursor_position, \
     dead_in_a_row, last_digest_on, created_by, created_at, updated_at, version";

/// The columns `decode_delivery` reads, in both databases.
pub(crate) const DELIVERY_COLUMNS: &str = "seq, subscription_id, message_id, message_type, position, initiative_id, \
     status, attempts, response_code, error, latency_ms, first_attempt_at, last_attempt_at, delivered_at, payload";

/// One webhook subscription as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriptionRow {
    pub id: Uuid,
    /// The endpoint, filters and secrets: opaque to the store, `crate::webhook` parses it.
    pub config: serde_json::Value,
    /// "enabled" | "paused" | "disabled".
    pub state: String,
    /// Why it was disabled; "" unless it is.
    pub disabled_reason: String,
    /// The last log event handled (delivered or dead-lettered).
    pub cursor: GlobalCursor,
    /// Consecutive dead letters.
    pub dead_in_a_row: i64,
    /// The day ("YYYY-MM-DD") of the last digest sent.
    pub last_digest_on: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// 1 at creation, +1 at every update.
    pub version: i64,
}

/// An administrator's change to a subscription; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SubscriptionUpdate {
    pub config: Option<serde_json::Value>,
    /// (state, reason); the reason is "" unless the state is "disabled".
    pub state: Option<(String, String)>,
    /// Set exactly: an administrator may rewind or skip.
    pub cursor: Option<GlobalCursor>,
    pub dead_in_a_row: Option<i64>,
}

/// One message's delivery to one subscription: the same `message_id` is the same row,
/// however often it is attempted.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryRow {
    /// Assigned by the store at the first write; ignored when writing.
    pub seq: i64,
    pub subscription_id: Uuid,
    /// The webhook-id.
    pub message_id: String,
    pub message_type: String,
    /// The event's global position, for a message about one event.
    pub position: Option<i64>,
    pub initiative_id: Option<Uuid>,
    /// "delivered" | "failing" | "dead" | "queued".
    pub status: String,
    pub attempts: i32,
    pub response_code: Option<i32>,
    pub error: String,
    pub latency_ms: i64,
    pub first_attempt_at: DateTime<Utc>,
    pub last_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// Kept only for messages that cannot be derived from the log again (digests).
    pub payload: Option<Vec<u8>>,
}

/// One subscription's progress, written with the deliveries that made it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    pub subscription_id: Uuid,
    /// Only ever moves the cursor forward (an older one is ignored).
    pub cursor: Option<GlobalCursor>,
    pub dead_in_a_row: Option<i64>,
    /// Disables the subscription with this reason, if it is still enabled.
    pub disable: Option<String>,
    pub last_digest_on: Option<String>,
}

/// A lease as granted: writes fenced by it happen only while it is still held by
/// `holder` at `epoch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseFence {
    pub name: String,
    pub holder: String,
    pub epoch: i64,
}

/// A subscription row (`SUBSCRIPTION_COLUMNS`).
pub(crate) fn decode_subscription<R: StoredRow>(row: &R) -> Result<SubscriptionRow, StoreError> {
    let id = row.uuid("id")?;
    let corrupt = |what: String| StoreError::Corrupt(format!("webhook subscription {id}: {what}"));
    let cursor_tx: i64 = row.read("cursor_tx")?;
    Ok(SubscriptionRow {
        id,
        config: row.json("config")?.map_err(|e| corrupt(format!("config: {e}")))?,
        state: row.read("state")?,
        disabled_reason: row.read("disabled_reason")?,
        cursor: GlobalCursor {
            tx_id: u64::try_from(cursor_tx).map_err(|_| corrupt(format!("negative cursor_tx {cursor_tx}")))?,
            position: row.read("cursor_position")?,
        },
        dead_in_a_row: row.read("dead_in_a_row")?,
        last_digest_on: row.read("last_digest_on")?,
        created_by: row.read("created_by")?,
        created_at: row.time("created_at")?.map_err(corrupt)?,
        updated_at: row.time("updated_at")?.map_err(corrupt)?,
        version: row.read("version")?,
    })
}

/// A delivery row (`DELIVERY_COLUMNS`).
pub(crate) fn decode_delivery<R: StoredRow>(row: &R) -> Result<DeliveryRow, StoreError> {
    let seq: i64 = row.read("seq")?;
    let corrupt = |what: String| StoreError::Corrupt(format!("webhook delivery {seq}: {what}"));
    Ok(DeliveryRow {
        seq,
        subscription_id: row.uuid("subscription_id")?,
        message_id: row.read("message_id")?,
        message_type: row.read("message_type")?,
        position: row.read("position")?,
        initiative_id: row.optional_uuid("initiative_id")?,
        status: row.read("status")?,
        attempts: row.read("attempts")?,
        response_code: row.read("response_code")?,
        error: row.read("error")?,
        latency_ms: row.read("latency_ms")?,
        first_attempt_at: row.time("first_attempt_at")?.map_err(corrupt)?,
        last_attempt_at: row.time("last_attempt_at")?.map_err(corrupt)?,
        delivered_at: row.optional_time("delivered_at")?.map_err(corrupt)?,
        payload: row.read("payload")?,
    })
}

/// A lease row's name, holder and epoch.
pub(crate) fn decode_fence<R: StoredRow>(row: &R) -> Result<LeaseFence, StoreError> {
    Ok(LeaseFence { name: row.read("name")?, holder: row.read("holder")?, epoch: row.read("epoch")? })
}

/// The cursor's transaction id as both databases store it (a signed 64-bit integer).
pub(crate) fn stored_tx(field: &str, cursor: GlobalCursor) -> Result<i64, StoreError> {
    i64::try_from(cursor.tx_id)
        .map_err(|_| DomainError::invalid(field, format!("transaction id {} is out of range", cursor.tx_id)).into())
}

/// `subscription` after `update` at `now`, if it is at `expected` (when given): the
/// version conflict otherwise. Runs inside the backend's transaction, on the row it
/// holds locked.
pub(crate) fn updated(
    mut subscription: SubscriptionRow,
    expected: Option<i64>,
    update: &SubscriptionUpdate,
    now: DateTime<Utc>,
) -> Result<SubscriptionRow, StoreError> {
    if let Some(expected) = expected
        && expected != subscription.version
    {
        let version = |v: i64| u64::try_from(v).unwrap_or_default();
        return Err(DomainError::VersionConflict {
            expected: version(expected),
            actual: version(subscription.version),
        }
        .into());
    }
    if let Some(config) = &update.config {
        subscription.config = config.clone();
    }
    if let Some((state, reason)) = &update.state {
        subscription.state = state.clone();
        subscription.disabled_reason = reason.clone();
    }
    if let Some(cursor) = update.cursor {
        subscription.cursor = cursor;
    }
    if let Some(dead) = update.dead_in_a_row {
        subscription.dead_in_a_row = dead;
    }
    subscription.version += 1;
    subscription.updated_at = now;
    Ok(subscription)
}

/// A batch's deliveries with one row per (subscription, message), the last one given
/// (a row upserted twice in one statement is an error on PostgreSQL), keeping an
/// earlier payload when the last has none, as the upsert does with the stored one.
pub(crate) fn one_per_message(deliveries: &[DeliveryRow]) -> Vec<DeliveryRow> {
    let mut last: BTreeMap<(Uuid, &str), usize> = BTreeMap::new();
    let mut merged: Vec<DeliveryRow> = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        match last.get(&(delivery.subscription_id, delivery.message_id.as_str())) {
            Some(&at) => {
                let payload = delivery.payload.clone().or_else(|| merged[at].payload.take());
                merged[at] = DeliveryRow { payload, ..delivery.clone() };
            }
            None => {
                last.insert((delivery.subscription_id, delivery.message_id.as_str()), merged.len());
                merged.push(delivery.clone());
            }
        }
    }
    merged
}

/// A batch's progress with one entry per subscription: the furthest cursor, the last
/// count of dead letters and digest day given, the first reason to disable.
pub(crate) fn one_per_subscription(progress: &[Progress]) -> Vec<Progress> {
    let mut merged: BTreeMap<Uuid, Progress> = BTreeMap::new();
    for step in progress {
        let entry = merged
            .entry(step.subscription_id)
            .or_insert_with(|| Progress { subscription_id: step.subscription_id, ..Progress::default() });
        entry.cursor = entry.cursor.max(step.cursor);
        entry.dead_in_a_row = step.dead_in_a_row.or(entry.dead_in_a_row);
        entry.disable = entry.disable.take().or_else(|| step.disable.clone());
        entry.last_digest_on = step.last_digest_on.clone().or(entry.last_digest_on.take());
    }
    merged.into_values().collect()
}

/// The subscriptions a batch names, each once, in id order (the order PostgreSQL locks
/// them in, so that two batches never wait for each other in a cycle).
pub(crate) fn subscriptions_named(deliveries: &[DeliveryRow], progress: &[Progress]) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> =
        deliveries.iter().map(|d| d.subscription_id).chain(progress.iter().map(|p| p.subscription_id)).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// At most 40 characters of some input, for an error message.
fn prefix(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{:?}…", &text[..end]),
        None => format!("{text:?}"),
    }
}

fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), StoreError> {
    if allowed.contains(&value) {
        return Ok(());
    }
    Err(DomainError::invalid(field, format!("{} is not one of {}", prefix(value), allowed.join(", "))).into())
}

fn not_empty(field: &str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() { Err(DomainError::invalid(field, "must not be empty").into()) } else { Ok(()) }
}

fn not_negative(field: &str, value: i64) -> Result<(), StoreError> {
    if value < 0 { Err(DomainError::invalid(field, format!("{value} is negative")).into()) } else { Ok(()) }
}

/// A state with its reason: one of the states, the reason given exactly when disabled.
fn check_state(state: &str, reason: &str) -> Result<(), StoreError> {
    one_of("state", state, &SUBSCRIPTION_STATES)?;
    match (state == "disabled", reason.is_empty()) {
        (true, true) => Err(DomainError::invalid("disabled_reason", "a disabled subscription needs a reason").into()),
        (false, false) => Err(DomainError::invalid("disabled_reason", format!("must be empty when {state}")).into()),
        _ => Ok(()),
    }
}

fn check_cursor(field: &str, cursor: GlobalCursor) -> Result<(), StoreError> {
    stored_tx(field, cursor)?;
    not_negative(field, cursor.position)
}

fn check_day(field: &str, day: Option<&str>) -> Result<(), StoreError> {
    let Some(day) = day else { return Ok(()) };
    // `%Y` alone would also take "+12345-01-01" or an unpadded "2026-1-5".
    if day.len() == 10 && NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok() {
        return Ok(());
    }
    Err(DomainError::invalid(field, format!("{} is not a day as YYYY-MM-DD", prefix(day))).into())
}

fn check_limit(limit: i64) -> Result<(), StoreError> {
    if limit < 1 { Err(DomainError::invalid("limit", format!("{limit} is not positive")).into()) } else { Ok(()) }
}

fn check_subscription(row: &SubscriptionRow) -> Result<(), StoreError> {
    check_state(&row.state, &row.disabled_reason)?;
    check_cursor("cursor", row.cursor)?;
    not_negative("dead_in_a_row", row.dead_in_a_row)?;
    check_day("last_digest_on", row.last_digest_on.as_deref())
}

fn check_update(update: &SubscriptionUpdate) -> Result<(), StoreError> {
    if let Some((state, reason)) = &update.state {
        check_state(state, reason)?;
    }
    if let Some(cursor) = update.cursor {
        check_cursor("cursor", cursor)?;
    }
    if let Some(dead) = update.dead_in_a_row {
        not_negative("dead_in_a_row", dead)?;
    }
    Ok(())
}

fn check_delivery(delivery: &DeliveryRow) -> Result<(), StoreError> {
    not_empty("message_id", &delivery.message_id)?;
    not_empty("message_type", &delivery.message_type)?;
    one_of("status", &delivery.status, &DELIVERY_STATUSES)?;
    not_negative("attempts", i64::from(delivery.attempts))?;
    not_negative("latency_ms", delivery.latency_ms)
}

fn check_progress(progress: &Progress) -> Result<(), StoreError> {
    if let Some(cursor) = progress.cursor {
        check_cursor("cursor", cursor)?;
    }
    if let Some(dead) = progress.dead_in_a_row {
        not_negative("dead_in_a_row", dead)?;
    }
    if let Some(reason) = &progress.disable {
        not_empty("disable", reason)?;
    }
    check_day("last_digest_on", progress.last_digest_on.as_deref())
}

/// A lease's time to live in microseconds, as the databases add it to their clocks.
fn ttl_micros(ttl: Duration) -> Result<i64, StoreError> {
    match i64::try_from(ttl.as_micros()) {
        Ok(micros) if micros > 0 => Ok(micros),
        _ => Err(DomainError::invalid("ttl", format!("{} s is not a usable lease time", ttl.as_secs_f64())).into()),
    }
}

/// The webhooks' store operations. Every one runs on the primary (the dispatcher and
/// the administrators act on what was last written), bounded by the query timeout.
impl Store {
    /// Stores a new subscription as given, at version 1; `AlreadyExists` if its id is
    /// taken.
    pub async fn create_subscription(&self, subscription: &SubscriptionRow) -> Result<(), StoreError> {
        check_subscription(subscription)?;
        let subscription = SubscriptionRow { version: 1, ..subscription.clone() };
        self.bounded(self.backend.create_subscription(&subscription)).await
    }

    pub async fn subscription(&self, id: Uuid) -> Result<Option<SubscriptionRow>, StoreError> {
        self.bounded(self.backend.subscription(id)).await
    }

    /// Every subscription, oldest first (by created_at, then id).
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionRow>, StoreError> {
        self.bounded(self.backend.subscriptions()).await
    }

    /// Applies `update` to a subscription if it is at `expected_version` (when given:
    /// `VersionConflict` otherwise), raising its version and `updated_at`; returns the
    /// row after, or `None` when there is no such subscription.
    pub async fn update_subscription(
        &self,
        id: Uuid,
        expected_version: Option<i64>,
        update: &SubscriptionUpdate,
    ) -> Result<Option<SubscriptionRow>, StoreError> {
        check_update(update)?;
        if let Some(expected) = expected_version {
            not_negative("expected_version", expected)?;
        }
        self.bounded(self.backend.update_subscription(id, expected_version, update)).await
    }

    /// Deletes a subscription and its deliveries; whether it existed.
    pub async fn delete_subscription(&self, id: Uuid) -> Result<bool, StoreError> {
        self.bounded(self.backend.delete_subscription(id)).await
    }

    /// The lease `name` for `holder` for `ttl` from now, by the database's clock: granted
    /// when it is free, expired, or already this holder's (renewed, at the same epoch);
    /// taken from another holder (expired, or released), at the next epoch. `None`: another
    /// holder has it. Two holders asking at once: exactly one gets it.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<LeaseFence>, StoreError> {
        not_empty("name", name)?;
        not_empty("holder", holder)?;
        let ttl = ttl_micros(ttl)?;
        self.bounded(self.backend.acquire_lease(name, holder, ttl)).await
    }

    /// Gives up a lease, if it is still held as `fence` says: the next holder takes it
    /// at once, at the next epoch (even the same holder).
    pub async fn release_lease(&self, fence: &LeaseFence) -> Result<(), StoreError> {
        self.bounded(self.backend.release_lease(fence)).await
    }

    /// Writes deliveries and progress in one transaction, if `fence` still holds its
    /// lease (same holder and epoch, unexpired): `false`, having written nothing,
    /// otherwise. A delivery is inserted (given the next seq) or, for a message already
    /// recorded, replaces it but for its seq, its first attempt and — when the new one
    /// has none — its payload. Deliveries and progress of a subscription that no longer
    /// exists are skipped. Progress moves a cursor only forward, and disables only an
    /// enabled subscription (which raises its version; the rest of progress does not, so
    /// an administrator's expected version is not outdated by every delivery).
    pub async fn record_deliveries(
        &self,
        fence: &LeaseFence,
        deliveries: &[DeliveryRow],
        progress: &[Progress],
    ) -> Result<bool, StoreError> {
        deliveries.iter().try_for_each(check_delivery)?;
        progress.iter().try_for_each(check_progress)?;
        let deliveries = one_per_message(deliveries);
        let progress = one_per_subscription(progress);
        self.bounded(self.backend.record_deliveries(fence, &deliveries, &progress)).await
    }

    /// One subscription's deliveries, newest first: of one status (when given), before
    /// a seq (when given: the last seq of the previous page), at most `limit`.
    pub async fn deliveries(
        &self,
        subscription_id: Uuid,
        status: Option<&str>,
        before_seq: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        if let Some(status) = status {
            one_of("status", status, &DELIVERY_STATUSES)?;
        }
        check_limit(limit)?;
        let before = before_seq.unwrap_or(i64::MAX);
        self.bounded(self.backend.deliveries(subscription_id, status, before, limit)).await
    }

    pub async fn delivery(&self, subscription_id: Uuid, message_id: &str) -> Result<Option<DeliveryRow>, StoreError> {
        self.bounded(self.backend.delivery(subscription_id, message_id)).await
    }

    /// Queues a delivered, dead or queued message for delivery again and returns it
    /// after; a failing one (still being retried) is returned unchanged, for the caller
    /// to refuse; `None` when there is no such delivery.
    pub async fn request_redelivery(
        &self,
        subscription_id: Uuid,
        message_id: &str,
    ) -> Result<Option<DeliveryRow>, StoreError> {
        self.bounded(self.backend.request_redelivery(subscription_id, message_id)).await
    }

    /// The queued deliveries of every subscription, oldest seq first, at most `limit`.
    pub async fn queued_redeliveries(&self, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        check_limit(limit)?;
        self.bounded(self.backend.queued_redeliveries(limit)).await
    }

    /// Deletes the delivered rows last attempted before `older_than`; how many.
    pub async fn prune_deliveries(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        self.bounded(self.backend.prune_deliveries(older_than)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(message_id: &str, status: &str, payload: Option<&[u8]>) -> DeliveryRow {
        let at = DateTime::from_timestamp_micros(1_000_000).unwrap_or_default();
        DeliveryRow {
            seq: 0,
            subscription_id: Uuid::nil(),
            message_id: message_id.into(),
            message_type: "initiative.created".into(),
            position: None,
            initiative_id: None,
            status: status.into(),
            attempts: 1,
            response_code: None,
            error: String::new(),
            latency_ms: 0,
            first_attempt_at: at,
            last_attempt_at: at,
            delivered_at: None,
            payload: payload.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn a_message_twice_in_a_batch_is_its_last_row_with_the_payload_it_had() {
        let batch =
            [delivery("a", "failing", Some(b"digest")), delivery("b", "delivered", None), delivery("a", "dead", None)];
        let merged = one_per_message(&batch);
        assert_eq!(merged.len(), 2);
        assert_eq!((merged[0].status.as_str(), merged[0].payload.as_deref()), ("dead", Some(&b"digest"[..])));
        assert_eq!(merged[1].message_id, "b");
    }

    #[test]
    fn progress_for_one_subscription_merges_to_the_furthest_cursor_and_the_last_counts() {
        let id = Uuid::from_u128(7);
        let at = |position| Some(GlobalCursor { tx_id: 0, position });
        let steps = [
            Progress { subscription_id: id, cursor: at(9), dead_in_a_row: Some(1), ..Progress::default() },
            Progress { subscription_id: id, cursor: at(4), disable: Some("dead".into()), ..Progress::default() },
            Progress {
                subscription_id: id,
                dead_in_a_row: Some(2),
                disable: Some("later".into()),
                ..Progress::default()
            },
        ];
        let merged = one_per_subscription(&steps);
        assert_eq!(merged.len(), 1);
        assert_eq!((merged[0].cursor, merged[0].dead_in_a_row), (at(9), Some(2)));
        assert_eq!(merged[0].disable.as_deref(), Some("dead"));
    }

    #[test]
    fn a_day_is_exactly_yyyy_mm_dd() {
        assert!(check_day("d", Some("2026-12-23")).is_ok());
        for bad in ["2026-1-5", "2026-02-30", "+12345-01-01", "yesterday"] {
            assert!(check_day("d", Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_reason_goes_with_disabled_only() {
        assert!(check_state("disabled", "endpoint gone").is_ok());
        assert!(check_state("paused", "").is_ok());
        assert!(check_state("disabled", "").is_err());
        assert!(check_state("enabled", "why").is_err());
        assert!(check_state("sleeping", "").is_err());
    }
}
