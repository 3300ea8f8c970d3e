//! The few PostgreSQL connections one replica keeps: opened on demand, each
//! with its prepared statements, reused unless closed or left inside a
//! transaction.
//!
//! This pool is ours rather than `deadpool-postgres` or `bb8-postgres`
//! because of what it must keep doing. A connection whose lease is dropped
//! between BEGIN and COMMIT (a cancelled request) is closed, which rolls
//! its transaction back, and never handed to the next caller; deadpool's
//! recycling only asks `is_closed` (or spends a round trip on a test query)
//! and would return it still inside the transaction unless every
//! transaction moved to `tokio_postgres::Transaction`, including the
//! pipelined ticket write. bb8-postgres keeps no prepared statements, so
//! the per-connection cache would be ours anyway, and it checks each
//! connection with a round trip when it is taken. The crates would replace
//! about a hundred lines here with as much glue and a few more crates.

use std::{collections::HashMap, sync::Mutex};

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{types::ToSql, Client, NoTls, Row, Statement};

use super::db;
use crate::error::{Error, Result};

/// A connection with its prepared statements.
pub(super) struct Conn {
    pub(super) client: Client,
    statements: HashMap<&'static str, Statement>,
    /// Set between BEGIN and COMMIT/ROLLBACK: such a connection is never
    /// reused (dropping it mid-transaction rolls the transaction back).
    in_transaction: bool,
}

impl Conn {
    /// The statement `sql` prepared on this connection, prepared once.
    pub(super) async fn statement(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await.map_err(db)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    pub(super) async fn query(
        &mut self,
        sql: &'static str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let s = self.statement(sql).await?;
        self.client.query(&s, args).await.map_err(db)
    }

    pub(super) async fn execute(
        &mut self,
        sql: &'static str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<u64> {
        let s = self.statement(sql).await?;
        self.client.execute(&s, args).await.map_err(db)
    }

    pub(super) async fn begin(&mut self) -> Result<()> {
        self.in_transaction = true;
        self.client.batch_execute("BEGIN").await.map_err(db)
    }

    /// Begins a read-only transaction whose queries all see one snapshot.
    pub(super) async fn begin_snapshot(&mut self) -> Result<()> {
        self.in_transaction = true;
        (self.client)
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(db)
    }

    pub(super) async fn commit(&mut self) -> Result<()> {
        self.client.batch_execute("COMMIT").await.map_err(db)?;
        self.in_transaction = false;
        Ok(())
    }

    pub(super) async fn rollback(&mut self) -> Result<()> {
        self.client.batch_execute("ROLLBACK").await.map_err(db)?;
        self.in_transaction = false;
        Ok(())
    }
}

/// A few connections, opened on demand and reused.
pub(super) struct Pool {
    url: String,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

/// A connection lent by the pool; it goes back when dropped.
pub(super) struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    _permit: SemaphorePermit<'a>,
}

impl std::ops::Deref for Lease<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("leased")
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("leased")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !conn.in_transaction && !conn.client.is_closed() {
                if let Ok(mut idle) = self.pool.idle.lock() {
                    idle.push(conn);
                }
            }
        }
    }
}

/// Opens one connection; the caller drives it.
pub(super) async fn connect(
    url: &str,
) -> Result<(
    Client,
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
)> {
    tokio_postgres::connect(url, NoTls).await.map_err(|e| {
        // tokio-postgres says only "error connecting to server"; the cause
        // (refused, out of descriptors …) is its source.
        let cause = std::error::Error::source(&e).map_or(String::new(), |c| format!(": {c}"));
        Error::Storage(format!("cannot connect to PostgreSQL: {e}{cause}"))
    })
}

impl Pool {
    /// A pool of at most `size` connections to `url`, none open yet.
    pub(super) fn new(url: &str, size: usize) -> Pool {
        Pool {
            url: url.to_string(),
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size),
        }
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// An idle connection that is still open, or a new one; waits while
    /// every connection is lent.
    pub(super) async fn lease(&self) -> Result<Lease<'_>> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Internal("connection pool closed".into()))?;
        let reused = {
            let mut idle = self
                .idle
                .lock()
                .map_err(|_| Error::Internal("connection pool poisoned".into()))?;
            idle.retain(|c| !c.client.is_closed());
            idle.pop()
        };
        let conn = match reused {
            Some(c) => c,
            None => {
                let (client, connection) = connect(&self.url).await?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %e, "PostgreSQL connection ended");
                    }
                });
                Conn {
                    client,
                    statements: HashMap::new(),
                    in_transaction: false,
                }
            }
        };
        Ok(Lease {
            pool: self,
            conn: Some(conn),
            _permit: permit,
        })
    }
}
