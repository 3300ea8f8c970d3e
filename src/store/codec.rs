//! One row codec for both ticket stores: how a [`Ticket`] and an [`Event`]
//! map to the columns of `tickets` and `ticket_events`, written once.
//!
//! Writing, a ticket or an event becomes a list of neutral [`Value`]s in
//! column order, which each store binds its own way. Reading, each store
//! lends its rows through [`Columns`] and the codec builds the ticket or the
//! event. How one field type becomes a column and back is its [`Column`]
//! impl: a field whose type changes (say, an event's actor becoming an
//! enum) changes one impl here, and neither store.

use std::borrow::Cow;

use crate::{
    model::Location,
    model::{Corps, Tier},
    tickets::{Actor, Event, EventKind, Rating, Ticket, TicketState},
};

/// The columns of a ticket row, in the order of [`ticket_values`] and
/// [`ticket_of`].
pub(crate) const TICKET_COLUMNS: &str =
    "id, text, location, division_code, subject, corps, contact, \
     idempotency_key, state, assignee, tier, offers_in_tier, offer_deadline_ms, answer, reason, \
     created_at_ms, updated_at_ms, words, rating_stars, rating_comment, photos";

/// The columns of an event row, in the order of [`event_values`] and
/// [`event_of`].
pub(crate) const EVENT_COLUMNS: &str =
    "ticket_id, seq, kind, actor, at_ms, reason, state, talent_id, tier, stars";

/// The events of every ticket with an event in a window (`$1`/`?1` ≤
/// `at_ms` < `$2`/`?2`), by ticket and sequence; the same SQL for both
/// stores but for the marks.
pub(crate) fn events_between_sql(mark: char) -> String {
    format!(
        "SELECT {EVENT_COLUMNS} FROM ticket_events WHERE ticket_id IN \
         (SELECT DISTINCT ticket_id FROM ticket_events WHERE at_ms >= {mark}1 AND at_ms < {mark}2) \
         ORDER BY ticket_id, seq"
    )
}

/// Where the open tickets' rows are: queued, offered or accepted.
pub(crate) const OPEN: &str = "state IN ('queued', 'offered', 'accepted')";

/// Pairs each ticket with its events: `events` of the tickets, in any
/// ticket order, each ticket's in `seq` order (what one query for all the
/// open tickets' events gives). Tickets keep their order.
pub(crate) fn with_events(tickets: Vec<Ticket>, events: Vec<Event>) -> Vec<(Ticket, Vec<Event>)> {
    let mut by_ticket: std::collections::HashMap<String, Vec<Event>> =
        std::collections::HashMap::with_capacity(tickets.len());
    for event in events {
        by_ticket
            .entry(event.ticket_id.clone())
            .or_default()
            .push(event);
    }
    tickets
        .into_iter()
        .map(|t| {
            let events = by_ticket.remove(&t.id).unwrap_or_default();
            (t, events)
        })
        .collect()
}

/// Parameter marks for a list of columns: `?1, ?2, …` for SQLite (`mark`
/// `'?'`) and `$1, $2, …` for PostgreSQL (`'$'`).
pub(crate) fn placeholders(columns: &str, mark: char) -> String {
    let marks: Vec<String> = (1..=columns.split(',').count())
        .map(|i| format!("{mark}{i}"))
        .collect();
    marks.join(", ")
}

/// One column's value, as both databases take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Null,
    /// Any integer column; PostgreSQL's `INTEGER` columns take the low 32
    /// bits.
    Int(i64),
    Text(Cow<'a, str>),
}

/// A row of either store, read by column position.
pub(crate) trait Columns {
    type Error;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn maybe_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    fn maybe_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    /// The store's error for a stored `what` the codec does not know.
    fn bad(what: &str, value: &str) -> Self::Error;
}

/// How a field type is kept in one column.
pub(crate) trait Column: Sized {
    fn put(&self) -> Value<'_>;
    fn take<R: Columns>(r: &R, i: usize) -> Result<Self, R::Error>;
}

/// Reads a column holding a key, such as a state or a tier; an unknown key
/// is a `what` the store does not know.
fn keyed<R: Columns, T>(
    r: &R,
    i: usize,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, R::Error> {
    let key = r.text(i)?;
    parse(&key).ok_or_else(|| R::bad(what, &key))
}

impl Column for String {
    fn put(&self) -> Value<'_> {
        Value::Text(Cow::Borrowed(self))
    }
    fn take<R: Columns>(r: &R, i: usize) -> Result<Self, R::Error> {
        r.text(i)
    }
}

impl Column for Option<String> {
    fn put(&self) -> Value<'_> {
        self.as_deref()
            .map_or(Value::Null, |s| Value::Text(s.into()))
    }
    fn take<R: Columns>(r: &R, i: usize) -> Result<Self, R::Error> {
        r.maybe_text(i)
    }
}

impl Column for i64 {
    fn put(&self) -> Value<'_> {
        Value::Int(*self)
    }
    fn take<R: Columns>(r: &R, i: usize) -> Result<Self, R::Error> {
        r.int(i)
    }
}

impl Column for Option<i64> {
    fn put(&self) -> Value<'_> {
        self.map_or(Value::Null, Value::Int)
    }
    fn take<R: Columns>(r: &R, i: usize) -> Result<Self, R::Error> {
        r.maybe_int(i)
    }
}

/// A count such as `offers_in_tier`.
impl Column for u32 {
    fn put(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
    fn take<R: Columns>(r: &R, i: usize) -> Result<Self, R::Error> {
        let n = r.int(i)?;
        u32::try_from(n).map_err(|_| R::bad("count", &n.to_string()))
    }
}

/// An event's sequence number.
impl Column for u64 {
    fn put(&self) -> Value<'_> {
        Value::Int(*self as i64)
    }
    fn take<R: Columns>(r: &R, i: usize) -> Result<Self, R::Error> {
        let n = r.int(i)?;
        u64::try_from(n).map_err(|_| R::bad("sequence number", &n.to_string()))
    }
}

impl Column for TicketState {
    fn put(&self) -> Value<'_> {
        Value::Text(self.key().into())
    }
    fn take<R: Columns>(r: &R, i: usize) -> Result<Self, R::Error> {
        keyed(r, i, "state", TicketState::parse)
    }
}

impl Column for Tier {
    fn put(&self) -> Value<'_> {
        Value::Text(self.key().into())
    }
    fn take<R: Columns>(r: &R, i: usize) -> Result<Self, R::Error> {
        keyed(r, i, "tier", Tier::parse)
    }
}

impl Column for EventKind {
    fn put(&self) -> Value<'_> {
        Value::Text(self.key().into())
    }
    fn take<R: Columns>(r: &R, i: usize) -> Result<Self, R::Error> {
        keyed(r, i, "event kind", EventKind::parse)
    }
}

/// A corps is kept by its Chinese name.
impl Column for Option<Corps> {
    fn put(&self) -> Value<'_> {
        self.map_or(Value::Null, |c| Value::Text(c.chinese().into()))
    }
    fn take<R: Columns>(r: &R, i: usize) -> Result<Self, R::Error> {
        match r.maybe_text(i)? {
            None => Ok(None),
            Some(c) => Corps::parse(&c)
                .map(Some)
                .ok_or_else(|| R::bad("corps", &c)),
        }
    }
}

/// A location is kept as JSON.
impl Column for Location {
    fn put(&self) -> Value<'_> {
        Value::Text(
            serde_json::to_string(self)
                .expect("locations serialize")
                .into(),
        )
    }
    fn take<R: Columns>(r: &R, i: usize) -> Result<Self, R::Error> {
        let json = r.text(i)?;
        serde_json::from_str(&json).map_err(|_| R::bad("location", &json))
    }
}

/// An event's actor, by its stored spelling (`farmer`, `responder:<id>` …).
impl Column for Actor {
    fn put(&self) -> Value<'_> {
        Value::Text(self.to_string().into())
    }
    fn take<R: Columns>(r: &R, i: usize) -> Result<Self, R::Error> {
        keyed(r, i, "actor", Actor::parse)
    }
}

/// The words a ticket was analysed with, as a JSON array; NULL for tickets
/// stored before they were kept.
impl Column for Option<Vec<String>> {
    fn put(&self) -> Value<'_> {
        self.as_ref().map_or(Value::Null, |words| {
            Value::Text(
                serde_json::to_string(words)
                    .expect("words serialize")
                    .into(),
            )
        })
    }
    fn take<R: Columns>(r: &R, i: usize) -> Result<Self, R::Error> {
        match r.maybe_text(i)? {
            None => Ok(None),
            Some(json) => serde_json::from_str(&json)
                .map(Some)
                .map_err(|_| R::bad("words", &json)),
        }
    }
}

/// A rating's stars, 1 to 5; NULL when there is none.
impl Column for Option<u8> {
    fn put(&self) -> Value<'_> {
        self.map_or(Value::Null, |n| Value::Int(i64::from(n)))
    }
    fn take<R: Columns>(r: &R, i: usize) -> Result<Self, R::Error> {
        match r.maybe_int(i)? {
            None => Ok(None),
            Some(n) => u8::try_from(n)
                .ok()
                .filter(|n| (1..=5).contains(n))
                .map(Some)
                .ok_or_else(|| R::bad("stars", &n.to_string())),
        }
    }
}

/// A ticket's rating from its stars at `i` and its comment at `i + 1`;
/// None for a ticket not rated (NULL stars).
fn rating_of<R: Columns>(r: &R, i: usize) -> Result<Option<Rating>, R::Error> {
    let stars: Option<u8> = Column::take(r, i)?;
    let comment: Option<String> = Column::take(r, i + 1)?;
    Ok(stars.map(|stars| Rating {
        stars,
        comment: comment.unwrap_or_default(),
    }))
}

/// A ticket's photo ids, as a JSON array; NULL for none.
fn photo_ids_value(ids: &[String]) -> Value<'static> {
    if ids.is_empty() {
        return Value::Null;
    }
    Value::Text(serde_json::to_string(ids).expect("ids serialize").into())
}

fn photo_ids<R: Columns>(r: &R, i: usize) -> Result<Vec<String>, R::Error> {
    match r.maybe_text(i)? {
        None => Ok(Vec::new()),
        Some(json) => serde_json::from_str(&json).map_err(|_| R::bad("photos", &json)),
    }
}

/// A ticket's columns, in [`TICKET_COLUMNS`] order.
pub(crate) fn ticket_values(t: &Ticket) -> Vec<Value<'_>> {
    vec![
        t.id.put(),
        t.text.put(),
        t.location.put(),
        t.division_code.put(),
        t.subject.put(),
        t.corps.put(),
        t.contact.put(),
        t.idempotency_key.put(),
        t.state.put(),
        t.assignee.put(),
        t.tier.put(),
        t.offers_in_tier.put(),
        t.offer_deadline_ms.put(),
        t.answer.put(),
        t.reason.put(),
        t.created_at_ms.put(),
        t.updated_at_ms.put(),
        t.words.put(),
        t.rating
            .as_ref()
            .map_or(Value::Null, |r| Value::Int(i64::from(r.stars))),
        t.rating
            .as_ref()
            .map_or(Value::Null, |r| Value::Text(r.comment.as_str().into())),
        photo_ids_value(&t.photos),
    ]
}

/// The ticket a row of [`TICKET_COLUMNS`] holds.
pub(crate) fn ticket_of<R: Columns>(r: &R) -> Result<Ticket, R::Error> {
    Ok(Ticket {
        id: Column::take(r, 0)?,
        text: Column::take(r, 1)?,
        location: Column::take(r, 2)?,
        division_code: Column::take(r, 3)?,
        subject: Column::take(r, 4)?,
        corps: Column::take(r, 5)?,
        contact: Column::take(r, 6)?,
        idempotency_key: Column::take(r, 7)?,
        state: Column::take(r, 8)?,
        assignee: Column::take(r, 9)?,
        tier: Column::take(r, 10)?,
        offers_in_tier: Column::take(r, 11)?,
        offer_deadline_ms: Column::take(r, 12)?,
        answer: Column::take(r, 13)?,
        reason: Column::take(r, 14)?,
        created_at_ms: Column::take(r, 15)?,
        updated_at_ms: Column::take(r, 16)?,
        words: Column::take(r, 17)?,
        rating: rating_of(r, 18)?,
        photos: photo_ids(r, 20)?,
    })
}

/// An event's columns, in [`EVENT_COLUMNS`] order.
pub(crate) fn event_values(e: &Event) -> Vec<Value<'_>> {
    vec![
        e.ticket_id.put(),
        e.seq.put(),
        e.kind.put(),
        e.actor.put(),
        e.at_ms.put(),
        e.reason.put(),
        e.state.put(),
        e.talent_id.put(),
        e.tier.put(),
        e.stars.put(),
    ]
}

/// The event a row of [`EVENT_COLUMNS`] holds.
pub(crate) fn event_of<R: Columns>(r: &R) -> Result<Event, R::Error> {
    Ok(Event {
        ticket_id: Column::take(r, 0)?,
        seq: Column::take(r, 1)?,
        kind: Column::take(r, 2)?,
        actor: Column::take(r, 3)?,
        at_ms: Column::take(r, 4)?,
        reason: Column::take(r, 5)?,
        state: Column::take(r, 6)?,
        talent_id: Column::take(r, 7)?,
        tier: Column::take(r, 8)?,
        stars: Column::take(r, 9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row held in memory, as a store would return it.
    struct Held(Vec<Value<'static>>);

    impl Columns for Held {
        type Error = String;
        fn text(&self, i: usize) -> Result<String, String> {
            match &self.0[i] {
                Value::Text(s) => Ok(s.to_string()),
                other => Err(format!("column {i} holds {other:?}")),
            }
        }
        fn maybe_text(&self, i: usize) -> Result<Option<String>, String> {
            match &self.0[i] {
                Value::Null => Ok(None),
                _ => self.text(i).map(Some),
            }
        }
        fn int(&self, i: usize) -> Result<i64, String> {
            match &self.0[i] {
                Value::Int(n) => Ok(*n),
                other => Err(format!("column {i} holds {other:?}")),
            }
        }
        fn maybe_int(&self, i: usize) -> Result<Option<i64>, String> {
            match &self.0[i] {
                Value::Null => Ok(None),
                _ => self.int(i).map(Some),
            }
        }
        fn bad(what: &str, value: &str) -> String {
            format!("unknown {what} {value:?}")
        }
    }

    fn held(values: Vec<Value<'_>>) -> Held {
        let owned = values.into_iter().map(|v| match v {
            Value::Text(s) => Value::Text(Cow::Owned(s.into_owned())),
            Value::Int(n) => Value::Int(n),
            Value::Null => Value::Null,
        });
        Held(owned.collect())
    }

    fn ticket() -> Ticket {
        Ticket {
            id: "tk-1".into(),
            text: "苹果树叶子发黄".into(),
            location: Location::Division("610527107202".into()),
            division_code: Some("610527107202".into()),
            subject: None,
            corps: Some(Corps::Fruit),
            contact: "13700000000".into(),
            idempotency_key: Some("key-1".into()),
            state: TicketState::Offered,
            assignee: Some("t1".into()),
            tier: Tier::CountyTown,
            offers_in_tier: 2,
            offer_deadline_ms: Some(61_000),
            answer: String::new(),
            reason: "无人接单".into(),
            created_at_ms: 1_000,
            updated_at_ms: 2_000,
            rating: None,
            words: Some(vec!["苹果".into(), "叶子".into()]),
            photos: vec!["ab".repeat(32)],
        }
    }

    #[test]
    fn tickets_and_events_come_back_as_they_went() {
        let t = ticket();
        let values = ticket_values(&t);
        assert_eq!(values.len(), TICKET_COLUMNS.split(',').count());
        assert!(placeholders(TICKET_COLUMNS, '$').ends_with(", $20, $21"));
        assert_eq!(values[5], Value::Text(Corps::Fruit.chinese().into()));
        assert_eq!(values[4], Value::Null);
        assert_eq!(ticket_of(&held(values)), Ok(t.clone()));

        let e = Event {
            ticket_id: t.id.clone(),
            seq: 3,
            kind: EventKind::Offered,
            actor: Actor::System,
            at_ms: 2_000,
            reason: String::new(),
            state: t.state,
            talent_id: None,
            tier: t.tier,
            stars: None,
        };
        let values = event_values(&e);
        assert_eq!(values.len(), EVENT_COLUMNS.split(',').count());
        assert_eq!(values[1], Value::Int(3));
        assert_eq!(event_of(&held(values)), Ok(e));
    }

    #[test]
    fn unknown_keys_are_named() {
        let t = ticket();
        let mut values = ticket_values(&t);
        values[8] = Value::Text("lost".into());
        assert_eq!(
            ticket_of(&held(values)),
            Err("unknown state \"lost\"".to_string())
        );
        let mut values = ticket_values(&t);
        values[5] = Value::Text("海军".into());
        assert_eq!(
            ticket_of(&held(values)),
            Err("unknown corps \"海军\"".to_string())
        );
    }

    #[test]
    fn counts_out_of_range_are_refused_not_wrapped() {
        let t = ticket();
        let mut values = ticket_values(&t);
        values[11] = Value::Int(-1);
        assert_eq!(
            ticket_of(&held(values)),
            Err("unknown count \"-1\"".to_string())
        );
    }
}
