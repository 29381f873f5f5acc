//! The webhooks' tables on PostgreSQL (see `store::webhooks`): every statement runs in
//! a `Session`; the lease is one upsert judged by the database's clock, and a batch of
//! deliveries is one UNNEST upsert and one UNNEST update in the fenced transaction.

use std::sync::LazyLock;

use crate::store::backend::Webhooks;
use crate::store::webhooks::{
    DELIVERY_COLUMNS, DeliveryRow, LeaseFence, Progress, SUBSCRIPTION_COLUMNS, SubscriptionRow, SubscriptionUpdate,
    decode_delivery, decode_fence, decode_subscription, stored_tx, subscriptions_named, updated,
};

use super::*;

static SUBSCRIPTION: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = $1"));

static DELIVERY: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE subscription_id = $1 AND message_id = $2")
});

/// Grants the lease when it is free, expired or the holder's own (renewed at the same
/// epoch), taking it from another holder at the next epoch; no row while another holds
/// it. Two at once on a free name: the second waits for the first's row and then
/// finds it held.
const ACQUIRE: &str = "INSERT INTO webhook_leases AS l (name, holder, epoch, expires_at)
     VALUES ($1, $2, 1, clock_timestamp() + $3::bigint * interval '1 microsecond')
     ON CONFLICT (name) DO UPDATE
        SET epoch = CASE WHEN l.holder = EXCLUDED.holder THEN l.epoch ELSE l.epoch + 1 END,
            holder = EXCLUDED.holder,
            expires_at = EXCLUDED.expires_at
      WHERE l.holder = EXCLUDED.holder OR l.expires_at <= clock_timestamp()
     RETURNING name, holder, epoch";

/// A released lease has no holder (so that whoever takes it next, at the next epoch)
/// and has expired.
const RELEASE: &str = "UPDATE webhook_leases SET holder = '', expires_at = clock_timestamp()
     WHERE name = $1 AND holder = $2 AND epoch = $3";

/// The fence holds: its lease, unexpired. FOR SHARE keeps a takeover from committing
/// before the transaction that checked it.
const FENCE: &str = "SELECT epoch FROM webhook_leases
     WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp() FOR SHARE";

/// The batch's subscriptions that exist, locked in id order: one deleted meanwhile is
/// not written to, and a delete waits for the batch.
const LOCK_SUBSCRIPTIONS: &str =
    "SELECT id FROM webhook_subscriptions WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE";

const UPSERT_DELIVERIES: &str = "INSERT INTO webhook_deliveries
         (subscription_id, message_id, message_type, position, initiative_id, status, attempts, response_code,
          error, latency_ms, first_attempt_at, last_attempt_at, delivered_at, payload)
     SELECT d.* FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::uuid[], $6::text[],
                            $7::integer[], $8::integer[], $9::text[], $10::bigint[], $11::timestamptz[],
                            $12::timestamptz[], $13::timestamptz[], $14::bytea[])
                 AS d(subscription_id, message_id, message_type, position, initiative_id, status, attempts,
                      response_code, error, latency_ms, first_attempt_at, last_attempt_at, delivered_at, payload)
      WHERE d.subscription_id = ANY($15)
     ON CONFLICT (subscription_id, message_id) DO UPDATE
        SET message_type = EXCLUDED.message_type, position = EXCLUDED.position,
            initiative_id = EXCLUDED.initiative_id, status = EXCLUDED.status, attempts = EXCLUDED.attempts,
            response_code = EXCLUDED.response_code, error = EXCLUDED.error, latency_ms = EXCLUDED.latency_ms,
            last_attempt_at = EXCLUDED.last_attempt_at, delivered_at = EXCLUDED.delivered_at,
            payload = coalesce(EXCLUDED.payload, webhook_deliveries.payload)";

/// Progress: the cursor only forward, disabling only an enabled subscription (which
/// alone raises its version).
const PROGRESS: &str = "UPDATE webhook_subscriptions s
        SET cursor_tx = CASE WHEN (s.cursor_tx, s.cursor_position) < (p.cursor_tx, p.cursor_position)
                             THEN p.cursor_tx ELSE s.cursor_tx END,
            cursor_position = CASE WHEN (s.cursor_tx, s.cursor_position) < (p.cursor_tx, p.cursor_position)
                                   THEN p.cursor_position ELSE s.cursor_position END,
            dead_in_a_row = coalesce(p.dead_in_a_row, s.dead_in_a_row),
            last_digest_on = coalesce(p.last_digest_on, s.last_digest_on),
            state = CASE WHEN p.disable IS NOT NULL AND s.state = 'enabled' THEN 'disabled' ELSE s.state END,
            disabled_reason = CASE WHEN p.disable IS NOT NULL AND s.state = 'enabled'
                                   THEN p.disable ELSE s.disabled_reason END,
            updated_at = CASE WHEN p.disable IS NOT NULL AND s.state = 'enabled' THEN $7 ELSE s.updated_at END,
            version = CASE WHEN p.disable IS NOT NULL AND s.state = 'enabled' THEN s.version + 1 ELSE s.version END
       FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[])
            AS p(id, cursor_tx, cursor_position, dead_in_a_row, disable, last_digest_on)
      WHERE s.id = p.id";

#[async_trait]
impl Webhooks for PgStore {
    async fn create_subscription(&self, subscription: &SubscriptionRow) -> Result<(), StoreError> {
        let insert = sqlx::query(
            "INSERT INTO webhook_subscriptions
                 (id, config, state, disabled_reason, cursor_tx, cursor_position, dead_in_a_row, last_digest_on,
                  created_by, created_at, updated_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(subscription.id)
        .bind(&subscription.config)
        .bind(&subscription.state)
        .bind(&subscription.disabled_reason)
        .bind(stored_tx("cursor", subscription.cursor)?)
        .bind(subscription.cursor.position)
        .bind(subscription.dead_in_a_row)
        .bind(&subscription.last_digest_on)
        .bind(&subscription.created_by)
        .bind(subscription.created_at)
        .bind(subscription.updated_at)
        .bind(subscription.version);
        let mut session = self.session().await?;
        let done = insert.execute(session.run()).await.map_err(map_sqlx)?;
        session.commit().await?;
        if done.rows_affected() == 0 {
            return Err(DomainError::AlreadyExists(format!("webhook subscription {}", subscription.id)).into());
        }
        Ok(())
    }

    async fn subscription(&self, id: Uuid) -> Result<Option<SubscriptionRow>, StoreError> {
        let mut session = self.session().await?;
        let row = sql::optional(sqlx::query(&SUBSCRIPTION).bind(id), session.run(), decode_subscription).await?;
        session.commit().await?;
        Ok(row)
    }

    async fn subscriptions(&self) -> Result<Vec<SubscriptionRow>, StoreError> {
        let all = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions ORDER BY created_at, id");
        let mut session = self.session().await?;
        let rows = sql::all(sqlx::query(&all), session.run(), decode_subscription).await?;
        session.commit().await?;
        Ok(rows)
    }

    async fn update_subscription(
        &self,
        id: Uuid,
        expected_version: Option<i64>,
        update: &SubscriptionUpdate,
    ) -> Result<Option<SubscriptionRow>, StoreError> {
        let mut tx = self.begin().await?;
        let held = format!("{} FOR UPDATE", *SUBSCRIPTION);
        let Some(before) = sql::optional(sqlx::query(&held).bind(id), tx.run(), decode_subscription).await? else {
            return Ok(None);
        };
        let after = updated(before, expected_version, update, now_micros())?;
        let write = sqlx::query(
            "UPDATE webhook_subscriptions
                SET config = $2, state = $3, disabled_reason = $4, cursor_tx = $5, cursor_position = $6,
                    dead_in_a_row = $7, updated_at = $8, version = $9
              WHERE id = $1",
        )
        .bind(id)
        .bind(&after.config)
        .bind(&after.state)
        .bind(&after.disabled_reason)
        .bind(stored_tx("cursor", after.cursor)?)
        .bind(after.cursor.position)
        .bind(after.dead_in_a_row)
        .bind(after.updated_at)
        .bind(after.version);
        sql::execute(write, tx.run()).await?;
        tx.commit().await?;
        Ok(Some(after))
    }

    /// Its deliveries go by the foreign key's cascade.
    async fn delete_subscription(&self, id: Uuid) -> Result<bool, StoreError> {
        let mut session = self.session().await?;
        let done = sqlx::query("DELETE FROM webhook_subscriptions WHERE id = $1")
            .bind(id)
            .execute(session.run())
            .await
            .map_err(map_sqlx)?;
        session.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn acquire_lease(&self, name: &str, holder: &str, ttl_micros: i64) -> Result<Option<LeaseFence>, StoreError> {
        let acquire = sqlx::query(ACQUIRE).bind(name).bind(holder).bind(ttl_micros);
        let mut session = self.session().await?;
        let fence = sql::optional(acquire, session.run(), decode_fence).await?;
        session.commit().await?;
        Ok(fence)
    }

    async fn release_lease(&self, fence: &LeaseFence) -> Result<(), StoreError> {
        let release = sqlx::query(RELEASE).bind(&fence.name).bind(&fence.holder).bind(fence.epoch);
        let mut session = self.session().await?;
        sql::execute(release, session.run()).await?;
        session.commit().await
    }

    /// BEGIN, the fence, the lock on the subscriptions, one upsert of every delivery,
    /// one update of every progress, COMMIT: the same round trips for one row or
    /// hundreds. A stale fence rolls back having written nothing.
    async fn record_deliveries(
        &self,
        fence: &LeaseFence,
        deliveries: &[DeliveryRow],
        progress: &[Progress],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let check = sqlx::query(FENCE).bind(&fence.name).bind(&fence.holder).bind(fence.epoch);
        if sql::optional(check, tx.run(), |_| Ok(())).await?.is_none() {
            return Ok(false);
        }
        let named = subscriptions_named(deliveries, progress);
        if named.is_empty() {
            tx.commit().await?;
            return Ok(true);
        }
        let lock = sqlx::query(LOCK_SUBSCRIPTIONS).bind(&named);
        let existing = sql::all(lock, tx.run(), |row| row.uuid("id")).await?;
        if !deliveries.is_empty() {
            let upsert = sqlx::query(UPSERT_DELIVERIES)
                .bind(deliveries.iter().map(|d| d.subscription_id).collect::<Vec<_>>())
                .bind(deliveries.iter().map(|d| d.message_id.clone()).collect::<Vec<_>>())
                .bind(deliveries.iter().map(|d| d.message_type.clone()).collect::<Vec<_>>())
                .bind(deliveries.iter().map(|d| d.position).collect::<Vec<_>>())
                .bind(deliveries.iter().map(|d| d.initiative_id).collect::<Vec<_>>())
                .bind(deliveries.iter().map(|d| d.status.clone()).collect::<Vec<_>>())
                .bind(deliveries.iter().map(|d| d.attempts).collect::<Vec<_>>())
                .bind(deliveries.iter().map(|d| d.response_code).collect::<Vec<_>>())
                .bind(deliveries.iter().map(|d| d.error.clone()).collect::<Vec<_>>())
                .bind(deliveries.iter().map(|d| d.latency_ms).collect::<Vec<_>>())
                .bind(deliveries.iter().map(|d| d.first_attempt_at).collect::<Vec<_>>())
                .bind(deliveries.iter().map(|d| d.last_attempt_at).collect::<Vec<_>>())
                .bind(deliveries.iter().map(|d| d.delivered_at).collect::<Vec<_>>())
                .bind(deliveries.iter().map(|d| d.payload.clone()).collect::<Vec<_>>())
                .bind(&existing);
            sql::execute(upsert, tx.run()).await?;
        }
        if !progress.is_empty() {
            let mut cursor_tx = Vec::with_capacity(progress.len());
            for step in progress {
                cursor_tx.push(step.cursor.map(|cursor| stored_tx("cursor", cursor)).transpose()?);
            }
            let update = sqlx::query(PROGRESS)
                .bind(progress.iter().map(|p| p.subscription_id).collect::<Vec<_>>())
                .bind(cursor_tx)
                .bind(progress.iter().map(|p| p.cursor.map(|cursor| cursor.position)).collect::<Vec<_>>())
                .bind(progress.iter().map(|p| p.dead_in_a_row).collect::<Vec<_>>())
                .bind(progress.iter().map(|p| p.disable.clone()).collect::<Vec<_>>())
                .bind(progress.iter().map(|p| p.last_digest_on.clone()).collect::<Vec<_>>())
                .bind(now_micros());
            sql::execute(update, tx.run()).await?;
        }
        tx.commit().await?;
        Ok(true)
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
              WHERE subscription_id = $1 AND seq < $2 AND ($3::text IS NULL OR status = $3)
              ORDER BY seq DESC LIMIT $4"
        );
        let query = sqlx::query(&page).bind(subscription_id).bind(before_seq).bind(status).bind(limit);
        let mut session = self.session().await?;
        let rows = sql::all(query, session.run(), decode_delivery).await?;
        session.commit().await?;
        Ok(rows)
    }

    async fn delivery(&self, subscription_id: Uuid, message_id: &str) -> Result<Option<DeliveryRow>, StoreError> {
        let mut session = self.session().await?;
        let query = sqlx::query(&DELIVERY).bind(subscription_id).bind(message_id);
        let row = sql::optional(query, session.run(), decode_delivery).await?;
        session.commit().await?;
        Ok(row)
    }

    async fn request_redelivery(
        &self,
        subscription_id: Uuid,
        message_id: &str,
    ) -> Result<Option<DeliveryRow>, StoreError> {
        let queue = format!(
            "UPDATE webhook_deliveries SET status = 'queued'
              WHERE subscription_id = $1 AND message_id = $2 AND status <> 'failing'
              RETURNING {DELIVERY_COLUMNS}"
        );
        let mut tx = self.begin().await?;
        let queued =
            sql::optional(sqlx::query(&queue).bind(subscription_id).bind(message_id), tx.run(), decode_delivery)
                .await?;
        let row = match queued {
            Some(row) => Some(row),
            None => {
                let query = sqlx::query(&DELIVERY).bind(subscription_id).bind(message_id);
                sql::optional(query, tx.run(), decode_delivery).await?
            }
        };
        tx.commit().await?;
        Ok(row)
    }

    async fn queued_redeliveries(&self, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        let queued =
            format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE status = 'queued' ORDER BY seq LIMIT $1");
        let mut session = self.session().await?;
        let rows = sql::all(sqlx::query(&queued).bind(limit), session.run(), decode_delivery).await?;
        session.commit().await?;
        Ok(rows)
    }

    async fn prune_deliveries(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut session = self.session().await?;
        let done = sqlx::query("DELETE FROM webhook_deliveries WHERE status = 'delivered' AND last_attempt_at < $1")
            .bind(older_than)
            .execute(session.run())
            .await
            .map_err(map_sqlx)?;
        session.commit().await?;
        Ok(done.rows_affected())
    }
}
