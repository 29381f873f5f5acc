//! SQLite's errors: which are worth another attempt (`Retry`, `attempts`), and how the
//! rest reach callers (`map_sqlx`: busy or unusable is `Unavailable`, damaged `Corrupt`).

use super::*;

/// Runs a write until it succeeds, fails for good, or has been tried `ATTEMPTS` times.
pub(super) async fn attempts<T, F, Fut>(mut run: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Retry>>,
{
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        match run().await {
            Ok(done) => return Ok(done),
            Err(Retry::Fail(error)) => return Err(error),
            Err(Retry::Again(error)) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| StoreError::Unavailable("too many conflicting attempts".into())))
}

pub(super) enum Retry {
    /// A transient conflict: run the write again from the start.
    Again(StoreError),
    Fail(StoreError),
}

impl From<StoreError> for Retry {
    fn from(error: StoreError) -> Self {
        Retry::Fail(error)
    }
}

impl Retry {
    /// The error, where the write is not retried.
    pub(super) fn into_error(self) -> StoreError {
        match self {
            Retry::Again(error) | Retry::Fail(error) => error,
        }
    }
}

/// Busy (another process held the write lock past the timeout) and a concurrent first
/// use of a command id are transient; anything else fails the write.
pub(super) fn fail(error: sqlx::Error) -> Retry {
    let transient = matches!(primary_code(&error), Some(SQLITE_BUSY | SQLITE_LOCKED))
        || unique_violation(&error) == Some("commands.command_id");
    if transient { Retry::Again(map_sqlx(error)) } else { Retry::Fail(map_sqlx(error)) }
}

// SQLite's primary result codes (https://www.sqlite.org/rescode.html).
const SQLITE_PERM: i32 = 3;
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_READONLY: i32 = 8;
const SQLITE_IOERR: i32 = 10;
const SQLITE_CORRUPT: i32 = 11;
const SQLITE_FULL: i32 = 13;
const SQLITE_CANTOPEN: i32 = 14;
const SQLITE_NOTADB: i32 = 26;

/// The primary result code of a database error (sqlx reports the extended one).
fn primary_code(error: &sqlx::Error) -> Option<i32> {
    match error {
        sqlx::Error::Database(db) => db.code().and_then(|code| code.parse::<i32>().ok()).map(|code| code & 0xff),
        _ => None,
    }
}

/// The columns of a violated UNIQUE or PRIMARY KEY constraint, as SQLite names them
/// ("streams.key"); SQLite has no constraint names to match on.
pub(super) fn unique_violation(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            db.message().strip_prefix("UNIQUE constraint failed: ")
        }
        _ => None,
    }
}

/// Maps a database error: a busy or unusable database is `Unavailable`, a damaged file
/// `Corrupt`, the rest is internal (logged here in full; callers never see SQL).
pub fn map_sqlx(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable(error.to_string())
        }
        _ => match primary_code(&error) {
            Some(SQLITE_BUSY | SQLITE_LOCKED) => {
                StoreError::Unavailable("the database is busy: another process kept its write lock too long".into())
            }
            Some(SQLITE_PERM | SQLITE_READONLY | SQLITE_IOERR | SQLITE_FULL | SQLITE_CANTOPEN) => {
                StoreError::Unavailable(error.to_string())
            }
            Some(SQLITE_CORRUPT | SQLITE_NOTADB) => {
                StoreError::Corrupt(format!("the database file is damaged: {error}"))
            }
            _ => {
                warn!(error = %error, "database error");
                StoreError::Database(error)
            }
        },
    }
}

/// An error opening the database, with its path and SQLite's own words: what an operator
/// needs to fix it.
pub(super) fn open_error(path: &Path, error: sqlx::Error) -> StoreError {
    let (path, detail) = (path.display(), error.to_string());
    match map_sqlx(error) {
        StoreError::Corrupt(_) => {
            StoreError::Corrupt(format!("{path} is not an SQLite database, or it is damaged: {detail}"))
        }
        StoreError::Unavailable(_) => {
            StoreError::Unavailable(format!("cannot open the SQLite database {path}: {detail}"))
        }
        other => other,
    }
}
