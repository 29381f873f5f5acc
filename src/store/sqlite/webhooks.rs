//! The webhooks' tables on SQLite (see `store::webhooks`): reads on the readers' pool,
//! every write on the one writer, a batch of deliveries as one prepared statement run
//! per row inside one write transaction. Times are microseconds; the lease's clock is
//! SQLite's own (`NOW`), the clock of the one machine that holds the file.

use crate::store::backend::Webhooks;
use crate::store::webhooks::{
    DELIVERY_COLUMNS, DeliveryRow, LeaseFence, Progress, SUBSCRIPTION_COLUMNS, SubscriptionRow, SubscriptionUpdate,
    decode_delivery, decode_fence, decode_subscription, stored_tx, updated,
};

use super::*;

/// Now, by SQLite's clock, in microseconds (to the millisecond SQLite reads it at).
const NOW: &str = "CAST(unixepoch('subsec') * 1000000 AS INTEGER)";

/// A subscription by id (?1).
fn subscription_sql() -> String {
    format!("SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = ?1")
}

/// A delivery by subscription (?1) and message (?2).
fn delivery_sql() -> String {
    format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE subscription_id = ?1 AND message_id = ?2")
}

/// See the PostgreSQL statement of the same name: the same upsert, in one statement
/// (SQLite's writer admits no other at once anyway).
fn acquire_sql() -> String {
    format!(
        "INSERT INTO webhook_leases (name, holder, epoch, expires_at) VALUES (?1, ?2, 1, {NOW} + ?3)
         ON CONFLICT (name) DO UPDATE
            SET epoch = CASE WHEN webhook_leases.holder = excluded.holder
                             THEN webhook_leases.epoch ELSE webhook_leases.epoch + 1 END,
                holder = excluded.holder,
                expires_at = excluded.expires_at
          WHERE webhook_leases.holder = excluded.holder OR webhook_leases.expires_at <= {NOW}
         RETURNING name, holder, epoch"
    )
}

/// A delivery (?1-?14) inserted or, for a message already recorded, replaced but for
/// its seq, first attempt and (when the new one has none) payload; nothing for a
/// subscription that does not exist.
const UPSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries
         (subscription_id, message_id, message_type, position, initiative_id, status, attempts, response_code,
          error, latency_ms, first_attempt_at, last_attempt_at, delivered_at, payload)
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14
      WHERE EXISTS (SELECT 1 FROM webhook_subscriptions WHERE id = ?1)
     ON CONFLICT (subscription_id, message_id) DO UPDATE
        SET message_type = excluded.message_type, position = excluded.position,
            initiative_id = excluded.initiative_id, status = excluded.status, attempts = excluded.attempts,
            response_code = excluded.response_code, error = excluded.error, latency_ms = excluded.latency_ms,
            last_attempt_at = excluded.last_attempt_at, delivered_at = excluded.delivered_at,
            payload = coalesce(excluded.payload, webhook_deliveries.payload)";

/// One subscription's progress (?1 id, ?2/?3 cursor, ?4 dead in a row, ?5 disable, ?6
/// digest day, ?7 now): as on PostgreSQL.
const PROGRESS: &str = "UPDATE webhook_subscriptions
        SET cursor_tx = CASE WHEN (cursor_tx, cursor_position) < (?2, ?3) THEN ?2 ELSE cursor_tx END,
            cursor_position = CASE WHEN (cursor_tx, cursor_position) < (?2, ?3) THEN ?3 ELSE cursor_position END,
            dead_in_a_row = coalesce(?4, dead_in_a_row),
            last_digest_on = coalesce(?6, last_digest_on),
            state = CASE WHEN ?5 IS NOT NULL AND state = 'enabled' THEN 'disabled' ELSE state END,
            disabled_reason = CASE WHEN ?5 IS NOT NULL AND state = 'enabled' THEN ?5 ELSE disabled_reason END,
            updated_at = CASE WHEN ?5 IS NOT NULL AND state = 'enabled' THEN ?7 ELSE updated_at END,
            version = CASE WHEN ?5 IS NOT NULL AND state = 'enabled' THEN version + 1 ELSE version END
      WHERE id = ?1";

#[async_trait]
impl Webhooks for SqliteStore {
    async fn create_subscription(&self, subscription: &SubscriptionRow) -> Result<(), StoreError> {
        let subscription = subscription.clone();
        let config = encode_json(&subscription.config)?;
        let cursor_tx = stored_tx("cursor", subscription.cursor)?;
        self.write(move |pool| async move {
            let done = sqlx::query(
                "INSERT INTO webhook_subscriptions
                     (id, config, state, disabled_reason, cursor_tx, cursor_position, dead_in_a_row,
                      last_digest_on, created_by, created_at, updated_at, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(subscription.id.to_string())
            .bind(config)
            .bind(&subscription.state)
            .bind(&subscription.disabled_reason)
            .bind(cursor_tx)
            .bind(subscription.cursor.position)
            .bind(subscription.dead_in_a_row)
            .bind(&subscription.last_digest_on)
            .bind(&subscription.created_by)
            .bind(subscription.created_at.timestamp_micros())
            .bind(subscription.updated_at.timestamp_micros())
            .bind(subscription.version)
            .execute(&pool)
            .await
            .map_err(map_sqlx)?;
            if done.rows_affected() == 0 {
                return Err(DomainError::AlreadyExists(format!("webhook subscription {}", subscription.id)).into());
            }
            Ok(())
        })
        .await
    }

    async fn subscription(&self, id: Uuid) -> Result<Option<SubscriptionRow>, StoreError> {
        sql::optional(sqlx::query(&subscription_sql()).bind(id.to_string()), &self.pool, decode_subscription).await
    }

    async fn subscriptions(&self) -> Result<Vec<SubscriptionRow>, StoreError> {
        let all = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions ORDER BY created_at, id");
        sql::all(sqlx::query(&all), &self.pool, decode_subscription).await
    }

    async fn update_subscription(
        &self,
        id: Uuid,
        expected_version: Option<i64>,
        update: &SubscriptionUpdate,
    ) -> Result<Option<SubscriptionRow>, StoreError> {
        let update = update.clone();
        self.write(move |pool| async move {
            let mut tx = pool.begin_with(BEGIN_WRITE).await.map_err(map_sqlx)?;
            let statement = subscription_sql();
            let read = sqlx::query(&statement).bind(id.to_string());
            let Some(before) = sql::optional(read, &mut *tx, decode_subscription).await? else {
                return Ok(None);
            };
            let after = updated(before, expected_version, &update, now_micros())?;
            let write = sqlx::query(
                "UPDATE webhook_subscriptions
                    SET config = ?2, state = ?3, disabled_reason = ?4, cursor_tx = ?5, cursor_position = ?6,
                        dead_in_a_row = ?7, updated_at = ?8, version = ?9
                  WHERE id = ?1",
            )
            .bind(id.to_string())
            .bind(encode_json(&after.config)?)
            .bind(&after.state)
            .bind(&after.disabled_reason)
            .bind(stored_tx("cursor", after.cursor)?)
            .bind(after.cursor.position)
            .bind(after.dead_in_a_row)
            .bind(after.updated_at.timestamp_micros())
            .bind(after.version);
            sql::execute(write, &mut *tx).await?;
            tx.commit().await.map_err(map_sqlx)?;
            Ok(Some(after))
        })
        .await
    }

    /// Its deliveries go by the foreign key's cascade (every connection enforces them).
    async fn delete_subscription(&self, id: Uuid) -> Result<bool, StoreError> {
        self.write(move |pool| async move {
            let done = sqlx::query("DELETE FROM webhook_subscriptions WHERE id = ?1")
                .bind(id.to_string())
                .execute(&pool)
                .await
                .map_err(map_sqlx)?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn acquire_lease(&self, name: &str, holder: &str, ttl_micros: i64) -> Result<Option<LeaseFence>, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |pool| async move {
            let statement = acquire_sql();
            let acquire = sqlx::query(&statement).bind(name).bind(holder).bind(ttl_micros);
            sql::optional(acquire, &pool, decode_fence).await
        })
        .await
    }

    /// See the PostgreSQL statement: no holder, expired.
    async fn release_lease(&self, fence: &LeaseFence) -> Result<(), StoreError> {
        let fence = fence.clone();
        self.write(move |pool| async move {
            let statement = format!(
                "UPDATE webhook_leases SET holder = '', expires_at = {NOW}
                  WHERE name = ?1 AND holder = ?2 AND epoch = ?3"
            );
            let release = sqlx::query(&statement).bind(fence.name).bind(fence.holder).bind(fence.epoch);
            sql::execute(release, &pool).await
        })
        .await
    }

    /// The write transaction holds SQLite's write lock from its start, so no takeover
    /// can commit between the fence's check and the batch's commit.
    async fn record_deliveries(
        &self,
        fence: &LeaseFence,
        deliveries: &[DeliveryRow],
        progress: &[Progress],
    ) -> Result<bool, StoreError> {
        let (fence, deliveries, progress) = (fence.clone(), deliveries.to_vec(), progress.to_vec());
        let mut cursor_tx = Vec::with_capacity(progress.len());
        for step in &progress {
            cursor_tx.push(step.cursor.map(|cursor| stored_tx("cursor", cursor)).transpose()?);
        }
        self.write(move |pool| async move {
            let mut tx = pool.begin_with(BEGIN_WRITE).await.map_err(map_sqlx)?;
            let statement = format!(
                "SELECT epoch FROM webhook_leases
                  WHERE name = ?1 AND holder = ?2 AND epoch = ?3 AND expires_at > {NOW}"
            );
            let check = sqlx::query(&statement).bind(fence.name).bind(fence.holder).bind(fence.epoch);
            if sql::optional(check, &mut *tx, |_| Ok(())).await?.is_none() {
                return Ok(false);
            }
            for d in &deliveries {
                let upsert = sqlx::query(UPSERT_DELIVERY)
                    .bind(d.subscription_id.to_string())
                    .bind(&d.message_id)
                    .bind(&d.message_type)
                    .bind(d.position)
                    .bind(d.initiative_id.map(|id| id.to_string()))
                    .bind(&d.status)
                    .bind(d.attempts)
                    .bind(d.response_code)
                    .bind(&d.error)
                    .bind(d.latency_ms)
                    .bind(d.first_attempt_at.timestamp_micros())
                    .bind(d.last_attempt_at.timestamp_micros())
                    .bind(d.delivered_at.map(|at| at.timestamp_micros()))
                    .bind(&d.payload);
                sql::execute(upsert, &mut *tx).await?;
            }
            let now = now_micros().timestamp_micros();
            for (step, cursor_tx) in progress.iter().zip(cursor_tx) {
                let update = sqlx::query(PROGRESS)
                    .bind(step.subscription_id.to_string())
                    .bind(cursor_tx)
                    .bind(step.cursor.map(|cursor| cursor.position))
                    .bind(step.dead_in_a_row)
                    .bind(&step.disable)
                    .bind(&step.last_digest_on)
                    .bind(now);
                sql::execute(update, &mut *tx).await?;
            }
            tx.commit().await.map_err(map_sqlx)?;
            Ok(true)
        })
        .await
    }

    async fn deliveries(
        &self,
        subscription_id: Uuid,
        status: Option<&str>,
        before_seq: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let page = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
              WHERE subscription_id = ?1 AND seq < ?2 AND (?3 IS NULL OR status = ?3)
              ORDER BY seq DESC LIMIT ?4"
        );
        let query = sqlx::query(&page).bind(subscription_id.to_string()).bind(before_seq).bind(status).bind(limit);
        sql::all(query, &self.pool, decode_delivery).await
    }

    async fn delivery(&self, subscription_id: Uuid, message_id: &str) -> Result<Option<DeliveryRow>, StoreError> {
        let statement = delivery_sql();
        let query = sqlx::query(&statement).bind(subscription_id.to_string()).bind(message_id);
        sql::optional(query, &self.pool, decode_delivery).await
    }

    async fn request_redelivery(
        &self,
        subscription_id: Uuid,
        message_id: &str,
    ) -> Result<Option<DeliveryRow>, StoreError> {
        let (subscription, message_id) = (subscription_id.to_string(), message_id.to_owned());
        self.write(move |pool| async move {
            let mut tx = pool.begin_with(BEGIN_WRITE).await.map_err(map_sqlx)?;
            let queue = sqlx::query(
                "UPDATE webhook_deliveries SET status = 'queued'
                  WHERE subscription_id = ?1 AND message_id = ?2 AND status <> 'failing'",
            )
            .bind(&subscription)
            .bind(&message_id);
            sql::execute(queue, &mut *tx).await?;
            let statement = delivery_sql();
            let read = sqlx::query(&statement).bind(subscription).bind(message_id);
            let row = sql::optional(read, &mut *tx, decode_delivery).await?;
            tx.commit().await.map_err(map_sqlx)?;
            Ok(row)
        })
        .await
    }

    async fn queued_redeliveries(&self, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        let queued =
            format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE status = 'queued' ORDER BY seq LIMIT ?1");
        sql::all(sqlx::query(&queued).bind(limit), &self.pool, decode_delivery).await
    }

    async fn prune_deliveries(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        let older_than = older_than.timestamp_micros();
        self.write(move |pool| async move {
            let done =
                sqlx::query("DELETE FROM webhook_deliveries WHERE status = 'delivered' AND last_attempt_at < ?1")
                    .bind(older_than)
                    .execute(&pool)
                    .await
                    .map_err(map_sqlx)?;
            Ok(done.rows_affected())
        })
        .await
    }
}
