//! Loading an export into an empty SQLite store, in one write transaction.

use super::*;

#[async_trait]
impl Import for SqliteStore {
    /// Loads an export into this store if it holds no event (see `Store::import_stream`),
    /// in one write transaction on the single writer: positions 1, 2, … in the file's
    /// order, committed once at the end.
    async fn import(&self, lines: ImportLines) -> Result<ImportReport, StoreError> {
        self.write(move |pool| async move {
            let tx = pool.begin_with(BEGIN_WRITE).await.map_err(map_sqlx)?;
            let mut sink = SqliteImport { tx };
            sql::ensure_empty(&mut *sink.tx).await?;
            let report = audit::run_import(lines, &mut sink).await?;
            sink.tx.commit().await.map_err(map_sqlx)?;
            Ok(report)
        })
        .await
    }
}

/// Rows per multi-row INSERT of an import (SQLite allows 32,766 parameters a statement).
const IMPORT_ROWS: usize = 500;

/// An import's writes, in its one write transaction.
struct SqliteImport {
    tx: Transaction<'static, Sqlite>,
}

impl ImportSink for SqliteImport {
    async fn events(&mut self, events: &[StoredEvent]) -> Result<(), StoreError> {
        for chunk in events.chunks(IMPORT_ROWS) {
            let payloads = chunk.iter().map(|e| encode_json(&e.payload)).collect::<Result<Vec<_>, _>>()?;
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO events (position, stream_id, stream_version, event_id, event_type, schema_version, \
                 payload, actor, command_id, correlation_id, causation_id, recorded_at, prev_hash, hash) ",
            );
            insert.push_values(chunk.iter().zip(payloads), |mut row, (event, payload)| {
                row.push_bind(event.position)
                    .push_bind(event.stream_id.to_string())
                    .push_bind(event.stream_version)
                    .push_bind(event.event_id.to_string())
                    .push_bind(event.event_type.as_str())
                    .push_bind(event.schema_version)
                    .push_bind(payload)
                    .push_bind(event.actor.as_str())
                    .push_bind(event.command_id.as_str())
                    .push_bind(event.correlation_id.as_str())
                    .push_bind(event.causation_id.as_str())
                    .push_bind(event.recorded_at.timestamp_micros())
                    .push_bind(event.prev_hash.as_slice())
                    .push_bind(event.hash.as_slice());
            });
            insert.build().execute(&mut *self.tx).await.map_err(map_sqlx)?;
        }
        Ok(())
    }

    async fn commands(&mut self, commands: &[ImportedCommand]) -> Result<(), StoreError> {
        for chunk in commands.chunks(IMPORT_ROWS) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO commands (command_id, stream_id, fingerprint, stream_version, global_position, \
                 created_id, recorded_at) ",
            );
            insert.push_values(chunk, |mut row, command| {
                // No fingerprint: the request is not part of the log (`StoredCommand::replay`).
                row.push_bind(command.command_id.as_str())
                    .push_bind(command.stream_id.to_string())
                    .push("X''")
                    .push_bind(command.stream_version)
                    .push_bind(command.global_position)
                    .push_bind(command.created_id.map(|id| id.to_string()))
                    .push_bind(command.recorded_at.timestamp_micros());
            });
            insert.build().execute(&mut *self.tx).await.map_err(map_sqlx)?;
        }
        Ok(())
    }

    async fn streams(&mut self, streams: &[FoldedHead]) -> Result<(), StoreError> {
        for head in streams {
            write_head(&mut self.tx, head).await.map_err(Retry::into_error)?;
        }
        Ok(())
    }
}
