//! The PostgreSQL store that several replicas share: tickets and their
//! events, presence, liaisons and the signing key ([`TicketStore`]), the
//! change log replicas catch up from, the roster log they rebuild their
//! indexes from ([`RosterLog`]), versioned migrations from
//! `migrations/postgres/`, and LISTEN/NOTIFY wake-ups.
//!
//! Every write that other replicas must see bumps the one-row `log_head`
//! table and records what changed in `changes`, in the same transaction;
//! the row lock orders those writes, and a ticket write first checks that
//! the head is still the one its replica read (compare and swap).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use tokio::sync::{watch, Semaphore, SemaphorePermit};
use tokio_postgres::{types::ToSql, AsyncMessage, Client, NoTls, Row, Statement};

use crate::{
    error::{Error, Result},
    model::{Corps, Tier},
    roster::log::{RosterLog, RosterOp},
    roster::RosterFormat,
    store::{Change, TicketFilter, TicketStore, Written},
    tickets::{
        liaison::Liaison, now_ms, Actor, Availability, Event, EventKind, Ticket, TicketState,
    },
};

/// Versioned migrations; `xwn_migrations` records which ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_shared.sql"),
    include_str!("../../migrations/postgres/0002_ticket_words.sql"),
];
/// Connections one replica opens at most.
const MAX_CONNECTIONS: usize = 8;
/// Serialises migrations and roster appends across replicas.
const MIGRATION_LOCK: i64 = 0x7877_6e01;
const ROSTER_LOCK: i64 = 0x7877_6e02;
/// Change-log entries older than this are pruned; a replica away longer
/// reloads everything when it starts.
const CHANGE_RETENTION_MS: i64 = 24 * 3600 * 1000;
const CHANGES_CHANNEL: &str = "xwn_changes";
const ROSTER_CHANNEL: &str = "xwn_roster";

fn db(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(d) => Error::Storage(format!("PostgreSQL: {} ({})", d.message(), d.code().code())),
        None => Error::Storage(format!("PostgreSQL: {e}")),
    }
}

fn bad(what: &str, value: &str) -> Error {
    Error::Internal(format!("PostgreSQL holds an unknown {what} {value:?}"))
}

/// A connection with its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    /// Set between BEGIN and COMMIT/ROLLBACK: such a connection is never
    /// reused (dropping it mid-transaction rolls the transaction back).
    in_transaction: bool,
}

impl Conn {
    async fn statement(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await.map_err(db)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    async fn query(&mut self, sql: &'static str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let s = self.statement(sql).await?;
        self.client.query(&s, args).await.map_err(db)
    }

    async fn execute(&mut self, sql: &'static str, args: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let s = self.statement(sql).await?;
        self.client.execute(&s, args).await.map_err(db)
    }

    async fn begin(&mut self) -> Result<()> {
        self.in_transaction = true;
        self.client.batch_execute("BEGIN").await.map_err(db)
    }

    async fn commit(&mut self) -> Result<()> {
        self.client.batch_execute("COMMIT").await.map_err(db)?;
        self.in_transaction = false;
        Ok(())
    }

    async fn rollback(&mut self) -> Result<()> {
        self.client.batch_execute("ROLLBACK").await.map_err(db)?;
        self.in_transaction = false;
        Ok(())
    }
}

/// A few connections, opened on demand and reused.
struct Pool {
    url: String,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

struct Lease<'a> {
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

async fn connect(
    url: &str,
) -> Result<(
    Client,
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
)> {
    tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| Error::Storage(format!("cannot connect to PostgreSQL: {e}")))
}

impl Pool {
    async fn lease(&self) -> Result<Lease<'_>> {
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

pub struct PgStore {
    pool: Pool,
    changes: watch::Sender<u64>,
    roster: watch::Sender<u64>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgStore")
    }
}

impl PgStore {
    /// Connects, runs what migrations the database lacks and starts
    /// listening for other replicas' writes.
    pub async fn connect(url: &str) -> Result<Arc<PgStore>> {
        let store = Arc::new(PgStore {
            pool: Pool {
                url: url.to_string(),
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(MAX_CONNECTIONS),
            },
            changes: watch::channel(0).0,
            roster: watch::channel(0).0,
        });
        store.migrate().await?;
        tokio::spawn(listen(Arc::downgrade(&store)));
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut c = self.pool.lease().await?;
        // One replica at a time, the bookkeeping table included: two
        // concurrent CREATE TABLE IF NOT EXISTS can collide.
        c.begin().await?;
        c.client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db)?;
        c.client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS xwn_migrations (version INTEGER PRIMARY KEY, at_ms BIGINT NOT NULL)",
            )
            .await
            .map_err(db)?;
        let done: i32 = c
            .client
            .query_one("SELECT coalesce(max(version), 0) FROM xwn_migrations", &[])
            .await
            .map_err(db)?
            .get(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done.max(0) as usize) {
            c.client.batch_execute(sql).await.map_err(db)?;
            c.client
                .execute(
                    "INSERT INTO xwn_migrations (version, at_ms) VALUES ($1, $2)",
                    &[&(i as i32 + 1), &now_ms()],
                )
                .await
                .map_err(db)?;
        }
        c.commit().await
    }

    /// Bumps the log head and records a change that does not depend on
    /// what the writer had read (presence, liaisons), with its wake-up.
    /// Runs inside the caller's transaction.
    async fn log(conn: &mut Conn, change: &Change) -> Result<()> {
        let rows = conn
            .query("UPDATE log_head SET id = id + 1 RETURNING id", &[])
            .await?;
        let id: i64 = rows
            .first()
            .ok_or_else(|| Error::Internal("the log_head row is missing".into()))?
            .get(0);
        let (kind, key) = match change {
            Change::Ticket(id) => ("ticket", id.as_str()),
            Change::Presence(id) => ("presence", id.as_str()),
            Change::Liaisons => ("liaisons", ""),
        };
        conn.execute(
            "INSERT INTO changes (id, kind, key, at_ms) VALUES ($1, $2, $3, $4)",
            &[&id, &kind, &key, &now_ms()],
        )
        .await?;
        conn.execute(
            "SELECT pg_notify($1, $2)",
            &[&CHANGES_CHANNEL, &id.to_string()],
        )
        .await?;
        Ok(())
    }

    /// Writes a ticket and its events under the compare and swap: after
    /// BEGIN, the head bump, the log entry, the wake-up, the ticket row and
    /// its events go out pipelined in one round trip; COMMIT only if the
    /// head was still `head`.
    async fn write(
        &self,
        ticket: &Ticket,
        events: &[Event],
        head: u64,
        new: bool,
    ) -> Result<Written> {
        let mut c = self.pool.lease().await?;
        let cas = c
            .statement("UPDATE log_head SET id = id + 1 WHERE id = $1")
            .await?;
        let log = c
            .statement("INSERT INTO changes (id, kind, key, at_ms) VALUES ($1, 'ticket', $2, $3)")
            .await?;
        let notify = c.statement("SELECT pg_notify($1, $2)").await?;
        let row = c.statement(UPSERT_TICKET).await?;
        let history = c.statement(INSERT_EVENTS).await?;
        c.begin().await?;
        let (current, next, now) = (head as i64, head as i64 + 1, now_ms());
        let next_text = next.to_string();
        let location = serde_json::to_string(&ticket.location).expect("locations serialize");
        let t = ticket;
        let (corps, offers) = (t.corps.map(|c| c.chinese()), t.offers_in_tier as i32);
        let (state, tier) = (t.state.key(), t.tier.key());
        let words = (t.words.as_ref()).map(|w| serde_json::to_string(w).expect("words serialize"));
        let e = EventColumns::of(events);
        type Args<'a, const N: usize> = [&'a (dyn ToSql + Sync); N];
        let cas_args: Args<1> = [&current];
        let log_args: Args<3> = [&next, &t.id, &now];
        let notify_args: Args<2> = [&CHANGES_CHANNEL, &next_text];
        let row_args: Args<18> = [
            &t.id,
            &t.text,
            &location,
            &t.division_code,
            &t.subject,
            &corps,
            &t.contact,
            &t.idempotency_key,
            &state,
            &t.assignee,
            &tier,
            &offers,
            &t.offer_deadline_ms,
            &t.answer,
            &t.reason,
            &t.created_at_ms,
            &t.updated_at_ms,
            &words,
        ];
        let history_args: Args<9> = [
            &e.ticket_id,
            &e.seq,
            &e.kind,
            &e.actor,
            &e.at_ms,
            &e.reason,
            &e.state,
            &e.talent_id,
            &e.tier,
        ];
        let client = &c.client;
        let (swapped, logged, notified, written, recorded) = tokio::join!(
            client.execute(&cas, &cas_args),
            client.execute(&log, &log_args),
            client.execute(&notify, &notify_args),
            client.execute(&row, &row_args),
            client.execute(&history, &history_args),
        );
        let swapped = swapped.map_err(db);
        if !matches!(swapped, Ok(1)) {
            c.rollback().await?;
            return swapped.map(|_| Written::Stale);
        }
        if let Err(e) = written {
            c.rollback().await?;
            let taken = e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION);
            if let (true, true, Some(key)) = (new, taken, &ticket.idempotency_key) {
                let rows = c
                    .query("SELECT id FROM tickets WHERE idempotency_key = $1", &[key])
                    .await?;
                if let Some(row) = rows.first() {
                    return Ok(Written::Duplicate(row.get(0)));
                }
            }
            return Err(db(e));
        }
        for outcome in [logged, notified, recorded] {
            if let Err(e) = outcome {
                c.rollback().await?;
                return Err(db(e));
            }
        }
        c.commit().await?;
        Ok(Written::Done { head: next as u64 })
    }

    async fn events_of(c: &mut Conn, id: &str) -> Result<Vec<Event>> {
        c.query(
            "SELECT ticket_id, seq, kind, actor, at_ms, reason, state, talent_id, tier \
             FROM ticket_events WHERE ticket_id = $1 ORDER BY seq",
            &[&id],
        )
        .await?
        .iter()
        .map(event_row)
        .collect()
    }
}

/// The columns of a ticket row, in the order `ticket_row` reads them and
/// `UPSERT_TICKET` binds them.
macro_rules! ticket_columns {
    () => {
        "id, text, location, division_code, subject, corps, contact, idempotency_key, state, \
         assignee, tier, offers_in_tier, offer_deadline_ms, answer, reason, created_at_ms, \
         updated_at_ms, words"
    };
}

const UPSERT_TICKET: &str = concat!(
    "INSERT INTO tickets (",
    ticket_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
     ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, assignee = EXCLUDED.assignee, \
     tier = EXCLUDED.tier, offers_in_tier = EXCLUDED.offers_in_tier, \
     offer_deadline_ms = EXCLUDED.offer_deadline_ms, answer = EXCLUDED.answer, \
     reason = EXCLUDED.reason, updated_at_ms = EXCLUDED.updated_at_ms"
);

/// Every event of one write in one statement, column by column.
const INSERT_EVENTS: &str = "INSERT INTO ticket_events \
     (ticket_id, seq, kind, actor, at_ms, reason, state, talent_id, tier) \
     SELECT * FROM UNNEST($1::TEXT[], $2::INTEGER[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], \
     $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[])";

/// Events as the columns `INSERT_EVENTS` takes.
struct EventColumns {
    ticket_id: Vec<String>,
    seq: Vec<i32>,
    kind: Vec<&'static str>,
    actor: Vec<String>,
    at_ms: Vec<i64>,
    reason: Vec<String>,
    state: Vec<&'static str>,
    talent_id: Vec<Option<String>>,
    tier: Vec<&'static str>,
}

impl EventColumns {
    fn of(events: &[Event]) -> EventColumns {
        EventColumns {
            ticket_id: events.iter().map(|e| e.ticket_id.clone()).collect(),
            seq: events.iter().map(|e| e.seq as i32).collect(),
            kind: events.iter().map(|e| e.kind.key()).collect(),
            actor: events.iter().map(|e| e.actor.to_string()).collect(),
            at_ms: events.iter().map(|e| e.at_ms).collect(),
            reason: events.iter().map(|e| e.reason.clone()).collect(),
            state: events.iter().map(|e| e.state.key()).collect(),
            talent_id: events.iter().map(|e| e.talent_id.clone()).collect(),
            tier: events.iter().map(|e| e.tier.key()).collect(),
        }
    }
}

fn ticket_row(r: &Row) -> Result<Ticket> {
    let location: String = r.get(2);
    let corps: Option<String> = r.get(5);
    let state: String = r.get(8);
    let tier: String = r.get(10);
    let words: Option<String> = r.get(17);
    Ok(Ticket {
        id: r.get(0),
        text: r.get(1),
        location: serde_json::from_str(&location).map_err(|_| bad("location", &location))?,
        division_code: r.get(3),
        subject: r.get(4),
        corps: match corps {
            None => None,
            Some(c) => Some(Corps::parse(&c).ok_or_else(|| bad("corps", &c))?),
        },
        contact: r.get(6),
        idempotency_key: r.get(7),
        state: TicketState::parse(&state).ok_or_else(|| bad("state", &state))?,
        assignee: r.get(9),
        tier: Tier::parse(&tier).ok_or_else(|| bad("tier", &tier))?,
        offers_in_tier: r.get::<_, i32>(11) as u32,
        offer_deadline_ms: r.get(12),
        answer: r.get(13),
        reason: r.get(14),
        created_at_ms: r.get(15),
        updated_at_ms: r.get(16),
        words: match words {
            None => None,
            Some(w) => Some(serde_json::from_str(&w).map_err(|_| bad("words", &w))?),
        },
    })
}

fn event_row(r: &Row) -> Result<Event> {
    let kind: String = r.get(2);
    let actor: String = r.get(3);
    let state: String = r.get(6);
    let tier: String = r.get(8);
    Ok(Event {
        ticket_id: r.get(0),
        seq: r.get::<_, i32>(1) as u64,
        kind: EventKind::parse(&kind).ok_or_else(|| bad("event kind", &kind))?,
        actor: Actor::parse(&actor).ok_or_else(|| bad("actor", &actor))?,
        at_ms: r.get(4),
        reason: r.get(5),
        state: TicketState::parse(&state).ok_or_else(|| bad("state", &state))?,
        talent_id: r.get(7),
        tier: Tier::parse(&tier).ok_or_else(|| bad("tier", &tier))?,
    })
}

#[async_trait]
impl TicketStore for PgStore {
    async fn insert(&self, ticket: &Ticket, events: &[Event], head: u64) -> Result<Written> {
        self.write(ticket, events, head, true).await
    }

    async fn update(&self, ticket: &Ticket, events: &[Event], head: u64) -> Result<Written> {
        self.write(ticket, events, head, false).await
    }

    async fn changes_since(&self, cursor: u64) -> Result<Vec<(u64, Change)>> {
        let mut c = self.pool.lease().await?;
        let rows = c
            .query(
                "SELECT id, kind, key FROM changes WHERE id > $1 ORDER BY id",
                &[&(cursor as i64)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.get(0);
                let kind: String = r.get(1);
                let key: String = r.get(2);
                let change = match kind.as_str() {
                    "ticket" => Change::Ticket(key),
                    "presence" => Change::Presence(key),
                    "liaisons" => Change::Liaisons,
                    other => return Err(bad("change kind", other)),
                };
                Ok((id as u64, change))
            })
            .collect()
    }

    async fn head(&self) -> Result<u64> {
        let mut c = self.pool.lease().await?;
        let rows = c.query("SELECT id FROM log_head", &[]).await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    fn notifications(&self) -> Option<watch::Receiver<u64>> {
        Some(self.changes.subscribe())
    }

    async fn get(&self, id: &str) -> Result<Option<(Ticket, Vec<Event>)>> {
        let mut c = self.pool.lease().await?;
        let rows = c
            .query(
                concat!("SELECT ", ticket_columns!(), " FROM tickets WHERE id = $1"),
                &[&id],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let ticket = ticket_row(row)?;
        let events = PgStore::events_of(&mut c, id).await?;
        Ok(Some((ticket, events)))
    }

    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<String>> {
        let mut c = self.pool.lease().await?;
        let rows = c
            .query("SELECT id FROM tickets WHERE idempotency_key = $1", &[&key])
            .await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    async fn open_tickets(&self) -> Result<Vec<(Ticket, Vec<Event>)>> {
        let mut c = self.pool.lease().await?;
        let rows = c
            .query(
                concat!(
                    "SELECT ",
                    ticket_columns!(),
                    " FROM tickets WHERE state IN ('queued', 'offered', 'accepted') \
                     ORDER BY created_at_ms, id"
                ),
                &[],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let t = ticket_row(row)?;
            let events = PgStore::events_of(&mut c, &t.id).await?;
            out.push((t, events));
        }
        Ok(out)
    }

    async fn list(&self, filter: &TicketFilter) -> Result<Vec<Ticket>> {
        let mut c = self.pool.lease().await?;
        let (after_ms, after_id) = filter.after.clone().unwrap_or((i64::MAX, String::new()));
        let rows = c
            .query(
                concat!(
                    "SELECT ",
                    ticket_columns!(),
                    " FROM tickets \
                 WHERE ($1::TEXT IS NULL OR state = $1) AND ($2::TEXT IS NULL OR assignee = $2) \
                 AND (created_at_ms < $3 OR (created_at_ms = $3 AND id < $4) OR $5) \
                 ORDER BY created_at_ms DESC, id DESC LIMIT $6"
                ),
                &[
                    &filter.state.map(|s| s.key()),
                    &filter.assignee,
                    &after_ms,
                    &after_id,
                    &filter.after.is_none(),
                    &(filter.limit as i64),
                ],
            )
            .await?;
        rows.iter().map(ticket_row).collect()
    }

    async fn set_availability(
        &self,
        talent_id: &str,
        availability: Availability,
        at_ms: i64,
    ) -> Result<()> {
        let mut c = self.pool.lease().await?;
        c.begin().await?;
        PgStore::log(&mut c, &Change::Presence(talent_id.to_string())).await?;
        c.execute(
            "INSERT INTO availability (talent_id, availability, updated_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (talent_id) DO UPDATE SET availability = $2, updated_at_ms = $3",
            &[&talent_id, &availability.key(), &at_ms],
        )
        .await?;
        c.commit().await
    }

    async fn availabilities(&self) -> Result<Vec<(String, Availability)>> {
        let mut c = self.pool.lease().await?;
        let rows = c
            .query("SELECT talent_id, availability FROM availability", &[])
            .await?;
        rows.iter()
            .map(|r| {
                let key: String = r.get(1);
                Ok((
                    r.get(0),
                    Availability::parse(&key).ok_or_else(|| bad("availability", &key))?,
                ))
            })
            .collect()
    }

    async fn availability(&self, talent_id: &str) -> Result<Option<Availability>> {
        let mut c = self.pool.lease().await?;
        let rows = c
            .query(
                "SELECT availability FROM availability WHERE talent_id = $1",
                &[&talent_id],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|r| Availability::parse(&r.get::<_, String>(0))))
    }

    async fn replace_liaisons(&self, liaisons: &[Liaison]) -> Result<()> {
        let mut c = self.pool.lease().await?;
        c.begin().await?;
        PgStore::log(&mut c, &Change::Liaisons).await?;
        c.execute("DELETE FROM liaisons", &[]).await?;
        for l in liaisons {
            c.execute(
                "INSERT INTO liaisons (id, name, phone, villages) VALUES ($1, $2, $3, $4)",
                &[&l.id, &l.name, &l.phone, &l.villages_json()],
            )
            .await?;
        }
        c.commit().await
    }

    async fn liaisons(&self) -> Result<Vec<Liaison>> {
        let mut c = self.pool.lease().await?;
        let rows = c
            .query(
                "SELECT id, name, phone, villages FROM liaisons ORDER BY id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let villages: String = r.get(3);
                Ok(Liaison {
                    id: r.get(0),
                    name: r.get(1),
                    phone: r.get(2),
                    villages: Liaison::villages_from_json(&villages)
                        .ok_or_else(|| bad("villages", &villages))?,
                })
            })
            .collect()
    }

    async fn signing_key(&self) -> Result<Vec<u8>> {
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
        let mut c = self.pool.lease().await?;
        c.execute(
            "INSERT INTO secrets (name, value) VALUES ('token_key', $1) ON CONFLICT (name) DO NOTHING",
            &[&key],
        )
        .await?;
        let rows = c
            .query("SELECT value FROM secrets WHERE name = 'token_key'", &[])
            .await?;
        rows.first()
            .map(|r| r.get(0))
            .ok_or_else(|| Error::Internal("the signing key vanished".into()))
    }
}

fn op_parts(op: &RosterOp) -> (&'static str, &'static str, Vec<u8>) {
    match op {
        RosterOp::Import { format, data } => ("import", format.key(), data.clone()),
        RosterOp::Upsert(talents) => (
            "upsert",
            "json",
            serde_json::to_vec(talents).expect("talents serialize"),
        ),
        RosterOp::Remove(ids) => (
            "remove",
            "json",
            serde_json::to_vec(ids).expect("ids serialize"),
        ),
    }
}

fn op_of(op: &str, format: &str, body: Vec<u8>) -> Result<RosterOp> {
    let json = |what: &str, e: serde_json::Error| bad(what, &e.to_string());
    Ok(match op {
        "import" => RosterOp::Import {
            format: RosterFormat::parse(format).ok_or_else(|| bad("roster format", format))?,
            data: body,
        },
        "upsert" => RosterOp::Upsert(serde_json::from_slice(&body).map_err(|e| json("upsert", e))?),
        "remove" => {
            RosterOp::Remove(serde_json::from_slice(&body).map_err(|e| json("removal", e))?)
        }
        other => return Err(bad("roster operation", other)),
    })
}

#[async_trait]
impl RosterLog for PgStore {
    async fn append(&self, op: &RosterOp, only_if_empty: bool) -> Result<Option<u64>> {
        let (kind, format, body) = op_parts(op);
        let mut c = self.pool.lease().await?;
        c.begin().await?;
        c.execute("SELECT pg_advisory_xact_lock($1)", &[&ROSTER_LOCK])
            .await?;
        let last: i64 = c
            .query("SELECT coalesce(max(version), 0) FROM roster_log", &[])
            .await?[0]
            .get(0);
        if only_if_empty && last > 0 {
            c.rollback().await?;
            return Ok(None);
        }
        let version = last + 1;
        c.execute(
            "INSERT INTO roster_log (version, op, format, body, at_ms) VALUES ($1, $2, $3, $4, $5)",
            &[&version, &kind, &format, &body, &now_ms()],
        )
        .await?;
        c.execute(
            "SELECT pg_notify($1, $2)",
            &[&ROSTER_CHANNEL, &version.to_string()],
        )
        .await?;
        c.commit().await?;
        Ok(Some(version as u64))
    }

    async fn next_after(&self, version: u64) -> Result<Option<(u64, RosterOp)>> {
        let mut c = self.pool.lease().await?;
        let rows = c
            .query(
                "SELECT version, op, format, body FROM roster_log WHERE version > $1 \
                 ORDER BY version LIMIT 1",
                &[&(version as i64)],
            )
            .await?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let v: i64 = r.get(0);
        Ok(Some((v as u64, op_of(r.get(1), r.get(2), r.get(3))?)))
    }

    async fn bounds(&self) -> Result<(u64, u64)> {
        let mut c = self.pool.lease().await?;
        let row = &c
            .query(
                "SELECT coalesce(max(version) FILTER (WHERE op = 'import'), 0), \
                 coalesce(max(version), 0) FROM roster_log",
                &[],
            )
            .await?[0];
        Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
    }

    fn notifications(&self) -> watch::Receiver<u64> {
        self.roster.subscribe()
    }
}

/// Holds a LISTEN connection while the store lives, ticking the change and
/// roster channels on each notification and after each reconnect (anything
/// may have been missed meanwhile); prunes old change-log entries.
async fn listen(weak: std::sync::Weak<PgStore>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(store) = weak.upgrade() else { return };
        let url = store.pool.url.clone();
        drop(store);
        match connect(&url).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    loop {
                        let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
                        match message {
                            Some(Ok(AsyncMessage::Notification(n))) => {
                                if tx.send(n.channel().to_string()).is_err() {
                                    return;
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "PostgreSQL LISTEN connection failed");
                                return;
                            }
                            None => return,
                        }
                    }
                });
                let listening = client
                    .batch_execute(&format!(
                        "LISTEN {CHANGES_CHANNEL}; LISTEN {ROSTER_CHANNEL}"
                    ))
                    .await;
                if let Err(e) = listening {
                    tracing::warn!(error = %e, "cannot LISTEN on PostgreSQL");
                } else {
                    backoff = Duration::from_millis(100);
                    let Some(store) = weak.upgrade() else { return };
                    store.changes.send_modify(|n| *n += 1);
                    store.roster.send_modify(|n| *n += 1);
                    drop(store);
                    let mut prune = tokio::time::interval(Duration::from_secs(600));
                    loop {
                        tokio::select! {
                            channel = rx.recv() => {
                                let Some(channel) = channel else { break };
                                let Some(store) = weak.upgrade() else { return };
                                let tick = if channel == ROSTER_CHANNEL { &store.roster } else { &store.changes };
                                tick.send_modify(|n| *n += 1);
                            }
                            _ = prune.tick() => {
                                let cutoff = now_ms() - CHANGE_RETENTION_MS;
                                if let Err(e) = client.execute("DELETE FROM changes WHERE at_ms < $1", &[&cutoff]).await {
                                    tracing::warn!(error = %e, "cannot prune the change log");
                                }
                            }
                        }
                    }
                }
                driver.abort();
            }
            Err(e) => tracing::warn!(error = %e, "cannot reach PostgreSQL to listen"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
