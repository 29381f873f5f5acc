//! The reads that serve one call on SQLite: alignment views, one stream, the global log
//! (in position order, which is commit order here).

use super::*;

#[async_trait]
impl Reads for SqliteStore {
    async fn alignment(&self, target: &InitiativeRef) -> Result<Option<AlignmentView>, StoreError> {
        let statement = match target {
            InitiativeRef::Id(_) => "SELECT view FROM alignment WHERE initiative_id = ?1",
            InitiativeRef::Key(_) => "SELECT view FROM alignment WHERE key = ?1",
        };
        sql::optional(sqlx::query(statement).bind(target_text(target)), &self.pool, decode_view).await
    }

    async fn list(
        &self,
        filter: &ListFilter,
        after_key: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AlignmentView>, StoreError> {
        let list = sqlx::query(
            r"SELECT view FROM alignment
             WHERE (?1 IS NULL OR status = ?1)
               AND (?2 IS NULL OR EXISTS (SELECT 1 FROM json_each(alignment.outstanding_functions) AS f
                                           WHERE f.value = ?2))
               AND (?3 IS NULL OR stage = ?3)
               AND (?4 IS NULL OR owner = ?4)
               AND (?5 IS NULL OR key LIKE ?5 ESCAPE '\' OR title LIKE ?5 ESCAPE '\')
               AND (?6 OR NOT archived)
               AND (?7 IS NULL OR key > ?7)
             ORDER BY key
             LIMIT ?8",
        );
        sql::all(sql::bind_list(list, filter, after_key, limit), &self.pool, decode_view).await
    }

    async fn awaiting(&self, principal: &Principal) -> Result<Vec<AlignmentView>, StoreError> {
        let awaiting = sqlx::query(
            "SELECT view FROM alignment
              WHERE EXISTS (SELECT 1 FROM json_each(alignment.awaiting) AS a WHERE a.value = ?1)
              ORDER BY key",
        );
        sql::all(awaiting.bind(principal.as_str()), &self.pool, decode_view).await
    }

    async fn read_stream(
        &self,
        stream_id: Uuid,
        from_version: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let statement = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?1 AND stream_version >= ?2 ORDER BY stream_version LIMIT ?3"
        );
        let stream = sqlx::query(&statement).bind(stream_id.to_string()).bind(from_version).bind(limit);
        sql::all(stream, &self.pool, decode_event).await
    }

    async fn sign_off_events(
        &self,
        stream: InitiativeId,
        decision: DecisionId,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let statement = format!(
            "SELECT {EVENT_COLUMNS} FROM events
              WHERE stream_id = ?1 AND event_type IN ('SignOffRecorded', 'SignOffRevoked')
                AND json_extract(payload, '$.decision_id') = ?2
              ORDER BY stream_version"
        );
        let sign_offs = sqlx::query(&statement).bind(stream.0.to_string()).bind(decision.to_string());
        sql::all(sign_offs, &self.pool, decode_event).await
    }

    /// The global log after `after`, in commit order, with the cursor of each event.
    ///
    /// Ordering by position is commit order here, so this never skips a late commit: a
    /// position is assigned only inside a write transaction, SQLite admits one at a time
    /// (across processes too), and it commits or rolls back before the next one assigns
    /// anything, always above every committed position. So the events a snapshot holds are
    /// a prefix of the log — a writer in flight is not yet in it, and everything it adds
    /// will come after what this read returns.
    async fn read_all(&self, after: GlobalCursor, limit: i64) -> Result<Vec<(GlobalCursor, StoredEvent)>, StoreError> {
        let statement = format!("SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2");
        let page = sqlx::query(&statement).bind(after.position).bind(limit);
        sql::all(page, &self.pool, |row| Ok((position_cursor(row)?, decode_event(row)?))).await
    }
}

/// The cursor of an event's row: its position alone (see `read_all`).
pub(super) fn position_cursor(row: &SqliteRow) -> Result<GlobalCursor, StoreError> {
    Ok(GlobalCursor { tx_id: 0, position: row.read("position")? })
}

/// The id or key a query looks an initiative up by, as stored.
fn target_text(target: &InitiativeRef) -> String {
    match target {
        InitiativeRef::Id(id) => id.0.to_string(),
        InitiativeRef::Key(key) => key.as_str().to_owned(),
    }
}
