//! The reads that serve one call on PostgreSQL: alignment views, one stream, the global
//! log in commit order (`commit_order_rows`, which the log tree reads too).

use super::*;

#[async_trait]
impl Reads for PgStore {
    async fn alignment(&self, target: &InitiativeRef) -> Result<Option<AlignmentView>, StoreError> {
        let statement = match target {
            InitiativeRef::Id(_) => "SELECT view FROM alignment WHERE initiative_id = $1",
            InitiativeRef::Key(_) => "SELECT view FROM alignment WHERE key = $2",
        };
        let mut session = self.session().await?;
        let view = sql::optional(bind_target(sqlx::query(statement), target), session.run(), decode_view).await?;
        session.commit().await?;
        Ok(view)
    }

    async fn list(
        &self,
        filter: &ListFilter,
        after_key: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AlignmentView>, StoreError> {
        let list = sqlx::query(
            "SELECT view FROM alignment
             WHERE ($1::text IS NULL OR status = $1)
               AND ($2::text IS NULL OR outstanding_functions @> ARRAY[$2::text])
               AND ($3::text IS NULL OR stage = $3)
               AND ($4::text IS NULL OR owner = $4)
               AND ($5::text IS NULL OR key ILIKE $5 OR title ILIKE $5)
               AND ($6 OR NOT archived)
               AND ($7::text IS NULL OR key > $7)
             ORDER BY key
             LIMIT $8",
        );
        let mut session = self.session().await?;
        let views = sql::all(sql::bind_list(list, filter, after_key, limit), session.run(), decode_view).await?;
        session.commit().await?;
        Ok(views)
    }

    async fn awaiting(&self, principal: &Principal) -> Result<Vec<AlignmentView>, StoreError> {
        let awaiting = sqlx::query("SELECT view FROM alignment WHERE awaiting @> ARRAY[$1::text] ORDER BY key");
        let mut session = self.session().await?;
        let views = sql::all(awaiting.bind(principal.as_str()), session.run(), decode_view).await?;
        session.commit().await?;
        Ok(views)
    }

    async fn read_stream(
        &self,
        stream_id: Uuid,
        from_version: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let statement = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version LIMIT $3"
        );
        let page = sqlx::query(&statement).bind(stream_id).bind(from_version).bind(limit);
        let mut session = self.session().await?;
        let events = sql::all(page, session.run(), decode_event).await?;
        session.commit().await?;
        Ok(events)
    }

    async fn sign_off_events(
        &self,
        stream: InitiativeId,
        decision: DecisionId,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let statement = format!(
            "SELECT {EVENT_COLUMNS} FROM events
              WHERE stream_id = $1 AND event_type IN ('SignOffRecorded', 'SignOffRevoked')
                AND payload->>'decision_id' = $2
              ORDER BY stream_version"
        );
        let sign_offs = sqlx::query(&statement).bind(stream.0).bind(decision.to_string());
        let mut session = self.session().await?;
        let events = sql::all(sign_offs, session.run(), decode_event).await?;
        session.commit().await?;
        Ok(events)
    }

    /// The global log after `after`, in commit order, never skipping a late commit (see
    /// the module comment). Returns the events with the cursor of each.
    async fn read_all(&self, after: GlobalCursor, limit: i64) -> Result<Vec<(GlobalCursor, StoredEvent)>, StoreError> {
        let ordered_after = self.ordered_after().await?;
        let mut session = self.session().await?;
        let decode = |row: &PgRow| Ok((commit_cursor(row)?, decode_event(row)?));
        let events = commit_order_rows(&mut session, EVENT_COLUMNS, ordered_after, after, limit, None, decode).await?;
        session.commit().await?;
        Ok(events)
    }
}

/// The cursor of a row of `in_commit_order`.
pub(super) fn commit_cursor(row: &PgRow) -> Result<GlobalCursor, StoreError> {
    Ok(GlobalCursor { tx_id: tree_tx(row)?, position: row.read("position")? })
}

pub(super) fn tree_tx(row: &PgRow) -> Result<u64, StoreError> {
    let tx: i64 = row.try_get("tx").map_err(map_sqlx)?;
    Ok(u64::try_from(tx).unwrap_or_default())
}

/// The cursor's `tx_id` of every event written since positions follow commit order
/// (after `log_order.ordered_after`): above every transaction id, so those events sort
/// after all older ones and among themselves by position.
pub const POSITION_ORDER: u64 = i64::MAX as u64;

/// A page of the global log in commit order after the cursor `after`, at most `limit`
/// events (and none past `upto`), with `columns` and a `tx` column (the cursor's
/// `tx_id`). Events up to the boundary `ordered_after` (`log_order`) are read in
/// (tx_id, position) order — they were written when positions did not follow commit
/// order, and all of them are committed — then every later event by position: an
/// append holds the commit-order lock (the `events_commit_order` trigger) from before it
/// takes positions until it commits, so a reader that sees a position sees every event
/// below it that will ever commit. Two statements, each an index range scan with no
/// sort: the first only while the cursor is below the boundary, the second for what the
/// page still has room for. Each row is decoded by `decode` as it arrives.
pub(super) async fn commit_order_rows<T>(
    conn: &mut Session,
    columns: &str,
    ordered_after: i64,
    after: GlobalCursor,
    limit: i64,
    upto: Option<i64>,
    mut decode: impl FnMut(&PgRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let upto = upto.unwrap_or(i64::MAX);
    let mut rows = Vec::new();
    if after.tx_id != POSITION_ORDER && ordered_after > 0 {
        let before = format!(
            "SELECT tx_id::text::bigint AS tx, {columns} FROM events
              WHERE position <= $4 AND (tx_id, position) > ($1::text::xid8, $2) AND position <= $5
              ORDER BY tx_id, position LIMIT $3"
        );
        let query = sqlx::query(&before).bind(after.tx_id.to_string()).bind(after.position).bind(limit);
        rows = sql::all(query.bind(ordered_after).bind(upto), conn.run(), &mut decode).await?;
    }
    let room = limit - rows.len() as i64;
    if room > 0 {
        let from = if after.tx_id == POSITION_ORDER { after.position.max(ordered_after) } else { ordered_after };
        let since = format!(
            "SELECT {POSITION_ORDER}::bigint AS tx, {columns} FROM events
              WHERE position > $1 AND position <= $3 ORDER BY position LIMIT $2"
        );
        let query = sqlx::query(&since).bind(from).bind(room).bind(upto);
        rows.extend(sql::all(query, conn.run(), &mut decode).await?);
    }
    Ok(rows)
}

fn bind_target<'q>(query: SqlQuery<'q, Postgres>, target: &InitiativeRef) -> SqlQuery<'q, Postgres> {
    match target {
        InitiativeRef::Id(id) => query.bind(id.0).bind(None::<String>),
        InitiativeRef::Key(key) => query.bind(None::<Uuid>).bind(key.as_str().to_owned()),
    }
}
