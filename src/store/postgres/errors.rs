//! How PostgreSQL's errors reach callers: a database that cannot serve now is
//! `Unavailable`, the rest internal.

use super::*;

/// Maps a database error: connection trouble, and a database that refuses to serve us
/// now (see `refuses_service`), are `Unavailable`; the rest is internal.
pub fn map_sqlx(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        sqlx::Error::Database(db)
            if db.code().is_some_and(|code| {
                let fatal = db
                    .try_downcast_ref::<PgDatabaseError>()
                    .is_some_and(|pg| matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic));
                refuses_service(&code, db.message(), fatal)
            }) =>
        {
            StoreError::Unavailable(error.to_string())
        }
        _ => {
            warn!(error = %error, "database error");
            StoreError::Database(error)
        }
    }
}

/// Whether a PostgreSQL error (SQLSTATE `code`, its `message`, and whether the server
/// ended the session with it) says the database cannot serve us now — retry later, or
/// elsewhere — rather than that this request is at fault:
/// - class 08, connection exceptions;
/// - 57P01-57P05: shut down by an administrator or a crash, not accepting connections
///   yet (starting up, in recovery), the database dropped, the idle session timed out;
/// - 53300: too many connections;
/// - 25006, a read-only transaction: writes reaching a primary that was demoted to a
///   standby by a failover, or a database set read-only;
/// - 55000 ("object not in prerequisite state", a catch-all) only as the refusal of a
///   connection: the database does not accept connections (`ALLOW_CONNECTIONS false`).
///   That refusal ends the session (FATAL), which no 55000 of a statement does; the
///   message is checked too, in case the severity is not reported.
pub fn refuses_service(code: &str, message: &str, fatal: bool) -> bool {
    match code {
        "53300" | "25006" => true,
        "55000" => fatal || message.contains("not currently accepting connections"),
        _ => code.starts_with("08") || code.starts_with("57P0"),
    }
}

#[cfg(test)]
mod tests {
    use super::refuses_service;

    #[test]
    fn a_read_only_transaction_is_a_refusal_of_service() {
        // What a demoted primary answers an INSERT after a failover.
        assert!(refuses_service("25006", "cannot execute INSERT in a read-only transaction", false));
    }

    #[test]
    fn a_55000_is_a_refusal_only_when_it_refuses_the_connection() {
        let refused = r#"database "accord" is not currently accepting connections"#;
        assert!(refuses_service("55000", refused, true));
        assert!(refuses_service("55000", refused, false), "by the message, without the severity");
        // A localised server: the session was ended all the same.
        assert!(refuses_service("55000", "la base de données « accord » n'accepte plus les connexions", true));
        // The same catch-all code for a statement's own state stays internal.
        let statement = r#"currval of sequence "events_position_seq" is not yet defined in this session"#;
        assert!(!refuses_service("55000", statement, false));
        assert!(!refuses_service("55000", "prepared transactions are disabled", false));
    }

    #[test]
    fn connection_exceptions_shutdowns_and_too_many_connections_are_refusals_and_others_are_not() {
        for code in ["08000", "08006", "08P01", "57P01", "57P02", "57P03", "57P04", "57P05", "53300"] {
            assert!(refuses_service(code, "", false), "{code}");
        }
        for code in ["23505", "40001", "57014", "53100", "42P01", "XX000"] {
            assert!(!refuses_service(code, "", false), "{code}");
        }
    }
}
