//! Loading an export into an empty PostgreSQL store, in one transaction.

use super::*;

#[async_trait]
impl Import for PgStore {
    /// Loads an export into this store if it holds no event (see `Store::import_stream`).
    /// The import takes an EXCLUSIVE lock on `events` (reads go on, appends wait for it),
    /// writes the events with UNNEST in batches with positions 1, 2, … in the file's
    /// order (and moves the position sequence after them), and commits once at the end.
    async fn import(&self, lines: ImportLines) -> Result<ImportReport, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE").execute(tx.run()).await.map_err(map_sqlx)?;
        sql::ensure_empty(tx.run()).await?;
        let mut sink = PgImport { tx };
        let report = audit::run_import(lines, &mut sink).await?;
        let mut tx = sink.tx;
        if report.events > 0 {
            sqlx::query("SELECT setval(pg_get_serial_sequence('events', 'position'), $1)")
                .bind(i64::try_from(report.events).unwrap_or(i64::MAX))
                .execute(tx.run())
                .await
                .map_err(map_sqlx)?;
        }
        tx.commit().await?;
        // Fresh statistics, so that the first as-of reads plan an index scan; best effort:
        // the import has committed whatever happens here.
        let analyze = async {
            let mut session = self.session().await?;
            sql::execute(sqlx::query("ANALYZE events, commands, streams, alignment"), session.run()).await?;
            session.commit().await
        };
        if let Err(error) = analyze.await {
            warn!(%error, "ANALYZE after an import failed");
        }
        Ok(report)
    }
}

/// An import's writes, in its one transaction.
struct PgImport {
    tx: Session,
}

impl ImportSink for PgImport {
    async fn events(&mut self, events: &[StoredEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let insert = sqlx::query(
            "INSERT INTO events (position, stream_id, stream_version, event_id, event_type, schema_version, payload,
                                 actor, command_id, correlation_id, causation_id, recorded_at, prev_hash, hash)
             OVERRIDING SYSTEM VALUE
             SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[], $6::int[],
                                  $7::jsonb[], $8::text[], $9::text[], $10::text[], $11::text[],
                                  $12::timestamptz[], $13::bytea[], $14::bytea[])",
        )
        .bind(events.iter().map(|e| e.position).collect::<Vec<_>>());
        sql::execute(bind_events(insert, events), self.tx.run()).await
    }

    async fn commands(&mut self, commands: &[ImportedCommand]) -> Result<(), StoreError> {
        if commands.is_empty() {
            return Ok(());
        }
        // No fingerprint: the request is not part of the log (see `StoredCommand::replay`).
        let insert = sqlx::query(
            "INSERT INTO commands (command_id, stream_id, fingerprint, stream_version, global_position, created_id,
                                   recorded_at)
             SELECT u.c, u.s, ''::bytea, u.v, u.p, u.id, u.t
               FROM UNNEST($1::text[], $2::uuid[], $3::bigint[], $4::bigint[], $5::uuid[], $6::timestamptz[])
                    AS u(c, s, v, p, id, t)",
        )
        .bind(commands.iter().map(|c| c.command_id.as_str()).collect::<Vec<_>>())
        .bind(commands.iter().map(|c| c.stream_id).collect::<Vec<_>>())
        .bind(commands.iter().map(|c| c.stream_version).collect::<Vec<_>>())
        .bind(commands.iter().map(|c| c.global_position).collect::<Vec<_>>())
        .bind(commands.iter().map(|c| c.created_id).collect::<Vec<_>>())
        .bind(commands.iter().map(|c| c.recorded_at).collect::<Vec<_>>());
        sql::execute(insert, self.tx.run()).await
    }

    async fn streams(&mut self, streams: &[FoldedHead]) -> Result<(), StoreError> {
        for head in streams {
            write_head(&mut self.tx, head).await?;
        }
        Ok(())
    }
}
