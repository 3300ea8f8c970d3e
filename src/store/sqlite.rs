//! The SQLite ticket store: one connection in WAL mode with full sync, so a
//! committed ticket survives a crash; migrations from `migrations/sqlite/`.

use std::{
    path::Path,
    sync::{Arc, LazyLock, Mutex},
};

use async_trait::async_trait;
use rusqlite::{
    params, params_from_iter,
    types::{ToSqlOutput, ValueRef},
    Connection, OptionalExtension, Row, ToSql,
};

use super::{
    codec::{self, placeholders, Columns, Value, EVENT_COLUMNS, OPEN, TICKET_COLUMNS},
    Change, TicketFilter, TicketStore, Write, Written,
};
use crate::{
    error::{Error, Result},
    tickets::{liaison::Liaison, Availability, Event, Ticket},
};

mod knowledge;
mod outbox;

/// Versioned migrations; the database's `user_version` says how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_tickets.sql"),
    include_str!("../../migrations/sqlite/0002_ticket_words.sql"),
    include_str!("../../migrations/sqlite/0003_outbox.sql"),
    include_str!("../../migrations/sqlite/0004_ratings.sql"),
    include_str!("../../migrations/sqlite/0005_photos.sql"),
    include_str!("../../migrations/sqlite/0006_knowledge.sql"),
];

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error::Storage(format!("ticket database: {e}"))
    }
}

fn bad(what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, format!("{what} {value:?}"), rusqlite::types::Type::Text)
}

impl SqliteStore {
    /// Opens (creating) `<data_dir>/tickets.sqlite3` and runs what
    /// migrations it lacks.
    pub fn open(data_dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::Storage(format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join("tickets.sqlite3");
        let mut conn = Connection::open(&path)
            .map_err(|e| Error::Storage(format!("cannot open {}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let done: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done.max(0) as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        crate::error::blocking("ticket database", move || {
            let mut conn = conn
                .lock()
                .map_err(|_| Error::Internal("ticket database lock poisoned".into()))?;
            work(&mut conn)
        })
        .await
    }
}

/// SQLite rows as the codec reads them.
impl Columns for Row<'_> {
    type Error = rusqlite::Error;
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn maybe_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn maybe_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }
    fn bad(what: &str, value: &str) -> rusqlite::Error {
        bad(what, value)
    }
}

/// Codec values bound as SQLite parameters.
impl ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(n) => ValueRef::Integer(*n),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

fn ticket_row(r: &Row<'_>) -> rusqlite::Result<Ticket> {
    codec::ticket_of(r)
}

fn event_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    codec::event_of(r)
}

/// The statements a commit runs for each change, made once (the
/// connection's statement cache is looked up by their text).
static WRITE_TICKET: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT OR REPLACE INTO tickets ({TICKET_COLUMNS}) VALUES ({})",
        placeholders(TICKET_COLUMNS, '?')
    )
});
static WRITE_EVENT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO ticket_events ({EVENT_COLUMNS}) VALUES ({})",
        placeholders(EVENT_COLUMNS, '?')
    )
});

fn write_ticket(tx: &rusqlite::Transaction<'_>, t: &Ticket) -> rusqlite::Result<()> {
    let values = codec::ticket_values(t);
    tx.prepare_cached(&WRITE_TICKET)?
        .execute(params_from_iter(&values))?;
    Ok(())
}

fn write_events(tx: &rusqlite::Transaction<'_>, events: &[Event]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(&WRITE_EVENT)?;
    for e in events {
        stmt.execute(params_from_iter(&codec::event_values(e)))?;
    }
    Ok(())
}

fn events_of(conn: &Connection, id: &str) -> rusqlite::Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM ticket_events WHERE ticket_id = ?1 ORDER BY seq"
    ))?;
    let rows = stmt.query_map([id], event_row)?;
    rows.collect()
}

#[async_trait]
impl TicketStore for SqliteStore {
    async fn commit(&self, writes: Arc<[Write]>, _head: u64) -> Result<Written> {
        self.with(move |conn| {
            let tx = conn.transaction()?;
            for w in writes.iter() {
                if let (true, Some(key)) = (w.new, &w.ticket.idempotency_key) {
                    let existing: Option<String> = tx
                        .query_row(
                            "SELECT id FROM tickets WHERE idempotency_key = ?1",
                            [key],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if let Some(id) = existing {
                        return Ok(Written::Duplicate(id));
                    }
                }
                write_ticket(&tx, &w.ticket)?;
                write_events(&tx, &w.events)?;
                outbox::write_notes(&tx, &w.notes)?;
            }
            tx.commit()?;
            Ok(Written::Done { head: 0 })
        })
        .await
    }

    /// One process writes: there is nothing to catch up with.
    async fn changes_since(&self, _cursor: u64) -> Result<Vec<(u64, Change)>> {
        Ok(Vec::new())
    }

    async fn head(&self) -> Result<u64> {
        Ok(0)
    }

    async fn events_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Event>> {
        self.with(move |conn| {
            let mut stmt = conn.prepare(&codec::events_between_sql('?'))?;
            let rows = stmt.query_map([from_ms, to_ms], event_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn photo_ids(&self) -> Result<Vec<String>> {
        self.with(|conn| {
            let mut stmt = conn.prepare("SELECT photos FROM tickets WHERE photos IS NOT NULL")?;
            let columns = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(super::photo_ids_of(columns))
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.with(|conn| {
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(())
        })
        .await
    }

    fn notifications(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    async fn get(&self, id: &str) -> Result<Option<(Ticket, Vec<Event>)>> {
        let id = id.to_string();
        self.with(move |conn| {
            let ticket = conn
                .query_row(
                    &format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?1"),
                    [&id],
                    ticket_row,
                )
                .optional()?;
            match ticket {
                None => Ok(None),
                Some(t) => {
                    let events = events_of(conn, &id)?;
                    Ok(Some((t, events)))
                }
            }
        })
        .await
    }

    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_string();
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT id FROM tickets WHERE idempotency_key = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn open_tickets(&self) -> Result<Vec<(Ticket, Vec<Event>)>> {
        self.with(|conn| {
            // Two queries, not one per ticket: start-up with a long queue.
            let tx = conn.transaction()?;
            let tickets: Vec<Ticket> = {
                let mut stmt = tx.prepare(&format!(
                    "SELECT {TICKET_COLUMNS} FROM tickets WHERE {OPEN} ORDER BY created_at_ms, id"
                ))?;
                let rows = stmt.query_map([], ticket_row)?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let events: Vec<Event> = {
                let mut stmt = tx.prepare(&format!(
                    "SELECT {EVENT_COLUMNS} FROM ticket_events \
                     WHERE ticket_id IN (SELECT id FROM tickets WHERE {OPEN}) ORDER BY ticket_id, seq"
                ))?;
                let rows = stmt.query_map([], event_row)?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            tx.commit()?;
            Ok(codec::with_events(tickets, events))
        })
        .await
    }

    async fn list(&self, filter: &TicketFilter) -> Result<Vec<Ticket>> {
        let filter = filter.clone();
        self.with(move |conn| {
            let (after_ms, after_id) = filter.after.clone().unwrap_or((i64::MAX, String::new()));
            let mut stmt = conn.prepare(&format!(
                "SELECT {TICKET_COLUMNS} FROM tickets \
                 WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR assignee = ?2) \
                 AND (created_at_ms < ?3 OR (created_at_ms = ?3 AND id < ?4) OR ?5) \
                 ORDER BY created_at_ms DESC, id DESC LIMIT ?6"
            ))?;
            let rows = stmt.query_map(
                params![
                    filter.state.map(|s| s.key()),
                    filter.assignee,
                    after_ms,
                    after_id,
                    filter.after.is_none(),
                    filter.limit as i64
                ],
                ticket_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn set_availability(
        &self,
        talent_id: &str,
        availability: Availability,
        at_ms: i64,
    ) -> Result<()> {
        let talent_id = talent_id.to_string();
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO availability (talent_id, availability, updated_at_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (talent_id) DO UPDATE SET availability = ?2, updated_at_ms = ?3",
                params![talent_id, availability.key(), at_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn availabilities(&self) -> Result<Vec<(String, Availability)>> {
        self.with(|conn| {
            let mut stmt = conn.prepare("SELECT talent_id, availability FROM availability")?;
            let rows = stmt.query_map([], |r| {
                let key: String = r.get(1)?;
                Ok((
                    r.get(0)?,
                    Availability::parse(&key).ok_or_else(|| bad("availability", &key))?,
                ))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn availability(&self, talent_id: &str) -> Result<Option<Availability>> {
        let talent_id = talent_id.to_string();
        self.with(move |conn| {
            let key: Option<String> = conn
                .query_row(
                    "SELECT availability FROM availability WHERE talent_id = ?1",
                    [&talent_id],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(key.and_then(|k| Availability::parse(&k)))
        })
        .await
    }

    async fn replace_liaisons(&self, liaisons: &[Liaison]) -> Result<()> {
        let liaisons = liaisons.to_vec();
        self.with(move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM liaisons", [])?;
            for l in &liaisons {
                tx.execute(
                    "INSERT INTO liaisons (id, name, phone, villages) VALUES (?1, ?2, ?3, ?4)",
                    params![l.id, l.name, l.phone, l.villages_json()],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn liaisons(&self) -> Result<Vec<Liaison>> {
        self.with(|conn| {
            let mut stmt =
                conn.prepare("SELECT id, name, phone, villages FROM liaisons ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                let villages: String = r.get(3)?;
                Ok(Liaison {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    phone: r.get(2)?,
                    villages: Liaison::villages_from_json(&villages)
                        .ok_or_else(|| bad("villages", &villages))?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn signing_key(&self) -> Result<Vec<u8>> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let existing: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT value FROM secrets WHERE name = 'token_key'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            let key = match existing {
                Some(k) => k,
                None => {
                    let mut key = vec![0u8; 32];
                    getrandom::fill(&mut key)
                        .map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
                    tx.execute(
                        "INSERT INTO secrets (name, value) VALUES ('token_key', ?1)",
                        [&key],
                    )?;
                    key
                }
            };
            tx.commit()?;
            Ok(key)
        })
        .await
    }
}
