//! Where the PostgreSQL store's statements run, so that the same code works on a direct
//! connection and behind a transaction-pooling PgBouncer (`DatabaseRoute::pooled`).
//!
//! Direct: as sqlx runs them, each statement prepared once per connection under a name
//! and cached, and a call's single statement runs on a pooled connection outside any
//! transaction (one round trip once prepared).
//!
//! Pooled: PgBouncer 1.18 gives a client connection whichever server connection is free
//! at each transaction, and keeps no prepared statement across them. So every statement
//! is sent as the *unnamed* statement (nothing is left behind on the server, and two
//! client connections cannot clash over a name such as `sqlx_s_1`), and every call's
//! statements run inside a transaction: sqlx sends Parse/Describe and then Bind/Execute
//! in two round trips, each ended by a Sync, and only an open transaction keeps both on
//! the same server connection. The price is a BEGIN and a COMMIT around each call and a
//! parse and plan of every statement (docs/performance.md, "Behind PgBouncer").

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::error::BoxDynError;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgQueryResult, PgStatement, PgTypeInfo};
use sqlx::{Describe, Either, Execute, Executor};

use super::*;

/// One call's connection: a plain pooled connection, or a transaction.
#[derive(Debug)]
pub(crate) struct Session {
    held: Held,
    /// Statements go unnamed (behind a transaction-pooling PgBouncer).
    unnamed: bool,
}

#[derive(Debug)]
enum Held {
    Connection(PoolConnection<Postgres>),
    Transaction(Transaction<'static, Postgres>),
}

impl PgStore {
    /// A connection for one call's statements: behind a pooler inside a transaction of
    /// their own (see the module comment), else a plain connection of the pool.
    pub(super) async fn session(&self) -> Result<Session, StoreError> {
        if self.pooled {
            return self.begin().await;
        }
        let connection = self.pool.acquire().await.map_err(map_sqlx)?;
        Ok(Session { held: Held::Connection(connection), unnamed: false })
    }

    /// A transaction, for statements that must see or change the database together.
    pub(super) async fn begin(&self) -> Result<Session, StoreError> {
        let tx = self.pool.begin().await.map_err(map_sqlx)?;
        Ok(Session { held: Held::Transaction(tx), unnamed: self.pooled })
    }
}

impl Session {
    /// An executor for one statement on this connection.
    pub(super) fn run(&mut self) -> Run<'_> {
        let conn: &mut PgConnection = match &mut self.held {
            Held::Connection(connection) => connection,
            Held::Transaction(tx) => tx,
        };
        Run { conn, unnamed: self.unnamed }
    }

    /// Ends the call: commits its transaction, if it has one. Dropped instead, a
    /// transaction rolls back.
    pub(super) async fn commit(self) -> Result<(), StoreError> {
        match self.held {
            Held::Connection(_) => Ok(()),
            Held::Transaction(tx) => tx.commit().await.map_err(map_sqlx),
        }
    }
}

impl sql::Statements<Postgres> for Session {
    fn run(&mut self) -> impl Executor<'_, Database = Postgres> {
        Session::run(self)
    }
}

/// An executor on one connection that sends each statement unnamed when `unnamed`, and
/// otherwise exactly as the connection would.
#[derive(Debug)]
pub(crate) struct Run<'c> {
    conn: &'c mut PgConnection,
    unnamed: bool,
}

impl<'c> Executor<'c> for Run<'c> {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if self.unnamed { self.conn.fetch_many(Unnamed(query)) } else { self.conn.fetch_many(query) }
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if self.unnamed { self.conn.fetch_optional(Unnamed(query)) } else { self.conn.fetch_optional(query) }
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.conn.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.conn.describe(sql)
    }
}

/// A statement sent as PostgreSQL's unnamed statement: sqlx then neither names nor
/// caches it, and the next statement replaces it on the server.
struct Unnamed<E>(E);

impl<'q, E: Execute<'q, Postgres>> Execute<'q, Postgres> for Unnamed<E> {
    fn sql(&self) -> &'q str {
        self.0.sql()
    }

    fn statement(&self) -> Option<&PgStatement<'q>> {
        self.0.statement()
    }

    fn take_arguments(&mut self) -> Result<Option<PgArguments>, BoxDynError> {
        self.0.take_arguments()
    }

    fn persistent(&self) -> bool {
        false
    }
}
