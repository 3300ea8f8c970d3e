//! Tickets and their events, presence, liaisons and the signing key on
//! PostgreSQL ([`TicketStore`](crate::store::TicketStore)), with the
//! change log every such write extends in the same transaction.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_postgres::{types::ToSql, Statement};

use super::{bad, db, pool::Conn, rows::Args, PgStore, CHANGES_CHANNEL};
use crate::{
    error::{Error, Result},
    store::{
        codec::{self, EVENT_COLUMNS, OPEN, TICKET_COLUMNS},
        Change, Note, TicketFilter, TicketStore, Write, Written,
    },
    tickets::{liaison::Liaison, now_ms, Availability, Event, Ticket},
};

static SELECT_TICKET: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1"));

static SELECT_OPEN: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE {OPEN} ORDER BY created_at_ms, id")
});

/// The events of every open ticket, each ticket's in order.
static SELECT_OPEN_EVENTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {EVENT_COLUMNS} FROM ticket_events \
         WHERE ticket_id IN (SELECT id FROM tickets WHERE {OPEN}) ORDER BY ticket_id, seq"
    )
});

/// One page of an admin listing.
static SELECT_PAGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {TICKET_COLUMNS} FROM tickets \
         WHERE ($1::TEXT IS NULL OR state = $1) AND ($2::TEXT IS NULL OR assignee = $2) \
         AND (created_at_ms < $3 OR (created_at_ms = $3 AND id < $4) OR $5) \
         ORDER BY created_at_ms DESC, id DESC LIMIT $6"
    )
});

static SELECT_EVENTS: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {EVENT_COLUMNS} FROM ticket_events WHERE ticket_id = $1 ORDER BY seq")
});

static EVENTS_BETWEEN: LazyLock<String> = LazyLock::new(|| codec::events_between_sql('$'));

/// Tickets' rows, new or changed, column by column (one row per ticket):
/// what can change after a ticket was submitted is updated.
static UPSERT_TICKETS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO tickets ({TICKET_COLUMNS}) \
         SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], \
         $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], \
         $12::INTEGER[], $13::BIGINT[], $14::TEXT[], $15::TEXT[], $16::BIGINT[], $17::BIGINT[], \
         $18::TEXT[], $19::INTEGER[], $20::TEXT[], $21::TEXT[]) \
         ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, assignee = EXCLUDED.assignee, \
         tier = EXCLUDED.tier, offers_in_tier = EXCLUDED.offers_in_tier, \
         offer_deadline_ms = EXCLUDED.offer_deadline_ms, answer = EXCLUDED.answer, \
         reason = EXCLUDED.reason, updated_at_ms = EXCLUDED.updated_at_ms, \
         rating_stars = EXCLUDED.rating_stars, rating_comment = EXCLUDED.rating_comment"
    )
});

/// Every event of one batch in one statement, column by column: one array
/// of the column's SQL type for each of [`EVENT_COLUMNS`].
static INSERT_EVENTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO ticket_events ({EVENT_COLUMNS}) \
         SELECT * FROM UNNEST($1::TEXT[], $2::INTEGER[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], \
         $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::INTEGER[])"
    )
});

/// A batch's notifications, one row per endpoint, column by column.
const INSERT_NOTES: &str = "INSERT INTO outbox (id, endpoint, ticket_id, seq, kind, body, \
     created_at_ms, state, next_at_ms, deadline_ms) \
     SELECT i, e, t, s, k, b, c, 'pending', c, d FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], \
     $4::BIGINT[], $5::TEXT[], $6::TEXT[], $7::BIGINT[], $8::BIGINT[]) AS x(i, e, t, s, k, b, c, d)";

/// The outbox rows of `notes` as the columns of [`INSERT_NOTES`].
#[derive(Default)]
struct NoteColumns<'a> {
    ids: Vec<&'a str>,
    endpoints: Vec<&'a str>,
    tickets: Vec<&'a str>,
    seqs: Vec<i64>,
    kinds: Vec<&'a str>,
    bodies: Vec<&'a str>,
    created: Vec<i64>,
    deadlines: Vec<i64>,
}

impl<'a> NoteColumns<'a> {
    fn of(notes: impl Iterator<Item = &'a Note>) -> NoteColumns<'a> {
        let mut c = NoteColumns::default();
        for n in notes {
            for e in &n.endpoints {
                c.ids.push(&n.id);
                c.endpoints.push(e);
                c.tickets.push(&n.ticket_id);
                c.seqs.push(n.seq);
                c.kinds.push(&n.kind);
                c.bodies.push(&n.body);
                c.created.push(n.created_at_ms);
                c.deadlines.push(n.deadline_ms);
            }
        }
        c
    }

    fn args(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.ids,
            &self.endpoints,
            &self.tickets,
            &self.seqs,
            &self.kinds,
            &self.bodies,
            &self.created,
            &self.deadlines,
        ]
    }
}

/// The statements of a batch of ticket writes, prepared on its connection.
struct TicketWrite {
    cas: Statement,
    log: Statement,
    notify: Statement,
    row: Statement,
    history: Statement,
    /// Only for a write with notifications.
    notes: Option<Statement>,
}

impl TicketWrite {
    async fn prepare(c: &mut Conn, with_notes: bool) -> Result<TicketWrite> {
        Ok(TicketWrite {
            cas: c
                .statement("UPDATE log_head SET id = id + $2 WHERE id = $1")
                .await?,
            log: c
                .statement(
                    "INSERT INTO changes (id, kind, key, at_ms) \
                     SELECT i, 'ticket', k, $3 FROM UNNEST($1::BIGINT[], $2::TEXT[]) AS x(i, k)",
                )
                .await?,
            notify: c.statement("SELECT pg_notify($1, $2)").await?,
            row: c.statement(&UPSERT_TICKETS).await?,
            history: c.statement(&INSERT_EVENTS).await?,
            notes: match with_notes {
                true => Some(c.statement(INSERT_NOTES).await?),
                false => None,
            },
        })
    }
}

/// What each statement of a pipelined batch did.
struct Outcomes {
    swapped: std::result::Result<u64, tokio_postgres::Error>,
    written: std::result::Result<u64, tokio_postgres::Error>,
    /// The log entry, the wake-up, the events and the notifications.
    rest: [std::result::Result<u64, tokio_postgres::Error>; 4],
}

impl PgStore {
    /// Writes a batch of tickets and their events under the compare and
    /// swap: after BEGIN, the head bump (one log entry per ticket), the log
    /// entries, the wake-up, the tickets' rows, their events and their
    /// outbox rows go out pipelined in one round trip; COMMIT only if the
    /// head was still `head`.
    async fn write(&self, writes: &[Write], head: u64) -> Result<Written> {
        let mut c = self.pool.lease().await?;
        let notes: Vec<&Note> = writes.iter().flat_map(|w| &w.notes).collect();
        let s = TicketWrite::prepare(&mut c, !notes.is_empty()).await?;
        let note_columns = NoteColumns::of(notes.into_iter());
        let note_args = note_columns.args();
        // One row per ticket, its last: a ticket may move twice in a batch.
        let mut seen = std::collections::HashSet::new();
        let mut rows: Vec<&Ticket> = writes
            .iter()
            .rev()
            .map(|w| &w.ticket)
            .filter(|t| seen.insert(t.id.as_str()))
            .collect();
        rows.reverse();
        let ticket_values: Vec<_> = rows.iter().map(|t| codec::ticket_values(t)).collect();
        let event_values: Vec<_> = writes
            .iter()
            .flat_map(|w| &w.events)
            .map(codec::event_values)
            .collect();
        let row_args = Args::columns(&ticket_values, &s.row)?;
        let history_args = Args::columns(&event_values, &s.history)?;
        let (row, history) = (row_args.refs(), history_args.refs());
        let (current, added, now) = (head as i64, rows.len() as i64, now_ms());
        let next = current + added;
        let log_ids: Vec<i64> = (current + 1..=next).collect();
        let log_keys: Vec<&str> = rows.iter().map(|t| t.id.as_str()).collect();
        let next_text = next.to_string();
        let cas_args: [&(dyn ToSql + Sync); 2] = [&current, &added];
        let log_args: [&(dyn ToSql + Sync); 3] = [&log_ids, &log_keys, &now];
        let notify_args: [&(dyn ToSql + Sync); 2] = [&CHANGES_CHANNEL, &next_text];
        c.begin().await?;
        let client = &c.client;
        let outbox = async {
            match &s.notes {
                Some(notes) => client.execute(notes, &note_args).await,
                None => Ok(0),
            }
        };
        let (swapped, logged, notified, written, recorded, queued) = tokio::join!(
            client.execute(&s.cas, &cas_args),
            client.execute(&s.log, &log_args),
            client.execute(&s.notify, &notify_args),
            client.execute(&s.row, &row),
            client.execute(&s.history, &history),
            outbox,
        );
        let outcomes = Outcomes {
            swapped,
            written,
            rest: [logged, notified, recorded, queued],
        };
        let keys: Vec<&str> = writes
            .iter()
            .filter(|w| w.new)
            .filter_map(|w| w.ticket.idempotency_key.as_deref())
            .collect();
        let refused = settle(&mut c, &keys, outcomes).await?;
        Ok(refused.unwrap_or(Written::Done { head: next as u64 }))
    }
}

/// Commits a pipelined ticket write that fully succeeded (`Ok(None)`);
/// otherwise rolls it back and says why: a stale head, an idempotency key
/// (of `keys`, the new tickets') found taken, or an error.
async fn settle(c: &mut Conn, keys: &[&str], outcomes: Outcomes) -> Result<Option<Written>> {
    let swapped = outcomes.swapped.map_err(db);
    if !matches!(swapped, Ok(1)) {
        c.rollback().await?;
        return swapped.map(|_| Some(Written::Stale));
    }
    if let Err(e) = outcomes.written {
        c.rollback().await?;
        let taken = e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION);
        if taken && !keys.is_empty() {
            let rows = c
                .query(
                    "SELECT id FROM tickets WHERE idempotency_key = ANY($1)",
                    &[&keys],
                )
                .await?;
            if let Some(row) = rows.first() {
                return Ok(Some(Written::Duplicate(row.get(0))));
            }
        }
        return Err(db(e));
    }
    for outcome in outcomes.rest {
        if let Err(e) = outcome {
            c.rollback().await?;
            return Err(db(e));
        }
    }
    c.commit().await?;
    Ok(None)
}

/// Bumps the log head and records a change that does not depend on what
/// the writer had read (presence, liaisons), with its wake-up. Runs inside
/// the caller's transaction.
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

async fn events_of(c: &mut Conn, id: &str) -> Result<Vec<Event>> {
    c.query(&SELECT_EVENTS, &[&id])
        .await?
        .iter()
        .map(codec::event_of)
        .collect()
}

#[async_trait]
impl TicketStore for PgStore {
    async fn commit(&self, writes: Arc<[Write]>, head: u64) -> Result<Written> {
        if writes.is_empty() {
            return Ok(Written::Done { head });
        }
        self.write(&writes, head).await
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

    async fn events_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Event>> {
        let mut c = self.pool.lease().await?;
        c.query(&EVENTS_BETWEEN, &[&from_ms, &to_ms])
            .await?
            .iter()
            .map(codec::event_of)
            .collect()
    }

    async fn photo_ids(&self) -> Result<Vec<String>> {
        let mut c = self.pool.lease().await?;
        let rows = c
            .query("SELECT photos FROM tickets WHERE photos IS NOT NULL", &[])
            .await?;
        Ok(crate::store::photo_ids_of(
            rows.iter().map(|r| r.get::<_, String>(0)),
        ))
    }

    async fn ping(&self) -> Result<()> {
        let c = self.pool.lease().await?;
        c.client.batch_execute("SELECT 1").await.map_err(db)
    }

    fn notifications(&self) -> Option<watch::Receiver<u64>> {
        Some(self.changes.subscribe())
    }

    async fn get(&self, id: &str) -> Result<Option<(Ticket, Vec<Event>)>> {
        let mut c = self.pool.lease().await?;
        let rows = c.query(&SELECT_TICKET, &[&id]).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let ticket = codec::ticket_of(row)?;
        let events = events_of(&mut c, id).await?;
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
        // Two queries, not one per ticket (start-up with a long queue), on
        // one snapshot, so that no ticket's events are newer than its row.
        c.begin_snapshot().await?;
        let tickets = c.query(&SELECT_OPEN, &[]).await?;
        let tickets = tickets.iter().map(codec::ticket_of);
        let tickets = tickets.collect::<Result<Vec<_>>>()?;
        let events = c.query(&SELECT_OPEN_EVENTS, &[]).await?;
        let events = events.iter().map(codec::event_of);
        let events = events.collect::<Result<Vec<_>>>()?;
        c.commit().await?;
        Ok(codec::with_events(tickets, events))
    }

    async fn list(&self, filter: &TicketFilter) -> Result<Vec<Ticket>> {
        let mut c = self.pool.lease().await?;
        let (after_ms, after_id) = filter.after.clone().unwrap_or((i64::MAX, String::new()));
        let rows = c
            .query(
                &SELECT_PAGE,
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
        rows.iter().map(codec::ticket_of).collect()
    }

    async fn set_availability(
        &self,
        talent_id: &str,
        availability: Availability,
        at_ms: i64,
    ) -> Result<()> {
        let mut c = self.pool.lease().await?;
        c.begin().await?;
        log(&mut c, &Change::Presence(talent_id.to_string())).await?;
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
        log(&mut c, &Change::Liaisons).await?;
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
