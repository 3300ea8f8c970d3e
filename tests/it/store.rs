//! One suite for every ticket store: SQLite (embedded) and PostgreSQL
//! (shared; skipped when no PostgreSQL is configured). Two PostgreSQL
//! stores on one database stand for two replicas.

use std::{sync::Arc, time::Duration};

use xingweinong::{
    model::Location,
    model::{Corps, Tier},
    store::postgres::PgStore,
    store::{
        outbox::{DeliveryFilter, Outcome},
        sqlite::SqliteStore,
        Change, Note, Outbox, TicketFilter, TicketStore, Written,
    },
    tickets::{
        liaison::Liaison, Actor, Availability, Event, EventKind, Rating, Ticket, TicketState,
    },
};

fn ticket(id: &str, key: Option<&str>, created: i64) -> Ticket {
    Ticket {
        id: id.into(),
        text: "苹果树叶子发黄".into(),
        location: Location::Division("610527107202".into()),
        division_code: Some("610527107202".into()),
        subject: Some("苹果".into()),
        corps: None,
        words: Some(vec!["苹果树".into(), "叶子".into(), "发黄".into()]),
        photos: vec!["ab".repeat(32), "cd".repeat(32)],
        contact: "13700000000".into(),
        idempotency_key: key.map(str::to_string),
        state: TicketState::Queued,
        assignee: None,
        tier: Tier::Village,
        offers_in_tier: 0,
        offer_deadline_ms: None,
        answer: String::new(),
        reason: String::new(),
        created_at_ms: created,
        updated_at_ms: created,
        rating: None,
    }
}

fn event(t: &Ticket, seq: u64, kind: EventKind, talent: Option<&str>) -> Event {
    Event {
        ticket_id: t.id.clone(),
        seq,
        kind,
        actor: Actor::System,
        at_ms: t.updated_at_ms,
        reason: String::new(),
        state: t.state,
        talent_id: talent.map(str::to_string),
        tier: t.tier,
        stars: None,
    }
}

fn done(w: Written) -> u64 {
    match w {
        Written::Done { head } => head,
        other => panic!("expected a commit, got {other:?}"),
    }
}

/// What every store must do. `shared`: the store keeps a change log.
async fn suite(store: Arc<dyn TicketStore>, shared: bool) {
    let store = &*store;
    let (mut a, head) = a_ticket_is_stored_once_per_key(store).await;
    let (accepted, head) = an_update_commits_unless_stale(store, &mut a, head, shared).await;
    let head = open_tickets_and_listings(store, &accepted, head).await;
    let head = a_rating_is_stored_with_its_event(store, head).await;
    presence_and_liaisons(store, head, shared).await;
    let key = store.signing_key().await.unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(store.signing_key().await.unwrap(), key, "the key is kept");
}

/// Inserts tk-a (offered to t1) under key-a; the same key under another id
/// writes nothing. Returns tk-a and the head after it.
async fn a_ticket_is_stored_once_per_key(store: &dyn TicketStore) -> (Ticket, u64) {
    let head = store.head().await.unwrap();
    let mut a = ticket("tk-a", Some("key-a"), 1_000);
    a.state = TicketState::Offered;
    a.assignee = Some("t1".into());
    a.offers_in_tier = 1;
    a.offer_deadline_ms = Some(61_000);
    let first = vec![
        event(&a, 1, EventKind::Submitted, None),
        event(&a, 2, EventKind::Offered, Some("t1")),
    ];
    let head = done(store.insert(&a, &first, &[], head).await.unwrap());

    // The same idempotency key under another id writes nothing.
    let b = ticket("tk-b", Some("key-a"), 2_000);
    let dup = store
        .insert(&b, &[event(&b, 1, EventKind::Submitted, None)], &[], head)
        .await
        .unwrap();
    assert_eq!(dup, Written::Duplicate("tk-a".into()));
    assert!(store.get("tk-b").await.unwrap().is_none());
    assert_eq!(
        store.find_by_idempotency_key("key-a").await.unwrap(),
        Some("tk-a".into())
    );

    let (got, events) = store.get("tk-a").await.unwrap().unwrap();
    assert_eq!(got, a);
    assert_eq!(events, first);
    // The photos the sweep must keep: every id a ticket names.
    let mut named = store.photo_ids().await.unwrap();
    named.sort();
    assert_eq!(named, ["ab".repeat(32), "cd".repeat(32)]);
    (a, head)
}

/// Accepts tk-a; on a shared store a replica that has not seen the last
/// commit is refused. Returns the accepted event and the head after it.
async fn an_update_commits_unless_stale(
    store: &dyn TicketStore,
    a: &mut Ticket,
    head: u64,
    shared: bool,
) -> (Event, u64) {
    a.state = TicketState::Accepted;
    a.offer_deadline_ms = None;
    a.updated_at_ms = 3_000;
    let accepted = event(a, 3, EventKind::Accepted, Some("t1"));
    let before = head;
    let head = done(
        store
            .update(a, std::slice::from_ref(&accepted), &[], head)
            .await
            .unwrap(),
    );

    if shared {
        assert_eq!(head, before + 1, "each commit moves the head by one");
        // A replica that has not seen the last commit is refused, and
        // nothing of its write lands.
        let mut stale = a.clone();
        stale.state = TicketState::Resolved;
        let w = store
            .update(
                &stale,
                &[event(&stale, 4, EventKind::Resolved, Some("t1"))],
                &[],
                before,
            )
            .await
            .unwrap();
        assert_eq!(w, Written::Stale);
        let (now, events) = store.get("tk-a").await.unwrap().unwrap();
        assert_eq!(now.state, TicketState::Accepted);
        assert_eq!(events.len(), 3);
        let log = store.changes_since(before - 1).await.unwrap();
        assert_eq!(
            log,
            vec![
                (before, Change::Ticket("tk-a".into())),
                (head, Change::Ticket("tk-a".into()))
            ]
        );
        assert_eq!(store.head().await.unwrap(), head);
    } else {
        assert!(store.changes_since(0).await.unwrap().is_empty());
    }
    (accepted, head)
}

/// Open tickets carry their histories; listings filter and page. Returns
/// the head after tk-c.
async fn open_tickets_and_listings(store: &dyn TicketStore, accepted: &Event, head: u64) -> u64 {
    // A corps and no subject, and no stored words (as stored before they
    // were kept): the other side of each optional column.
    let mut c = ticket("tk-c", None, 4_000);
    c.corps = Some(Corps::Fruit);
    c.subject = None;
    c.words = None;
    let head = done(
        store
            .insert(&c, &[event(&c, 1, EventKind::Submitted, None)], &[], head)
            .await
            .unwrap(),
    );
    assert_eq!(store.get("tk-c").await.unwrap().unwrap().0, c);
    let open = store.open_tickets().await.unwrap();
    let ids: Vec<&str> = open.iter().map(|(t, _)| t.id.as_str()).collect();
    assert_eq!(ids, ["tk-a", "tk-c"]);
    assert_eq!(open[0].1.last(), Some(accepted));
    let queued = store
        .list(&TicketFilter {
            state: Some(TicketState::Queued),
            limit: 10,
            ..TicketFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].id, "tk-c");
    let page = store
        .list(&TicketFilter {
            after: Some((4_000, "tk-c".into())),
            limit: 10,
            ..TicketFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, "tk-a");
    let held = store
        .list(&TicketFilter {
            assignee: Some("t1".into()),
            limit: 10,
            ..TicketFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    head
}

/// A resolved ticket rated: the rating on its row, the stars on its
/// `rated` event; a window of events holds every event of the tickets
/// with one in it, and nothing of the others.
async fn a_rating_is_stored_with_its_event(store: &dyn TicketStore, head: u64) -> u64 {
    let mut r = ticket("tk-r", None, 5_000);
    r.state = TicketState::Resolved;
    r.assignee = Some("t1".into());
    r.answer = "剪除病枝".into();
    let first = event(&r, 1, EventKind::Resolved, Some("t1"));
    let head = done(
        store
            .insert(&r, std::slice::from_ref(&first), &[], head)
            .await
            .unwrap(),
    );
    assert_eq!(store.get("tk-r").await.unwrap().unwrap().0.rating, None);
    r.updated_at_ms = 6_000;
    r.rating = Some(Rating {
        stars: 4,
        comment: "很管用，谢谢".into(),
    });
    let mut rated = event(&r, 2, EventKind::Rated, Some("t1"));
    rated.actor = Actor::Farmer;
    rated.reason = "很管用，谢谢".into();
    rated.stars = Some(4);
    let head = done(
        store
            .update(&r, std::slice::from_ref(&rated), &[], head)
            .await
            .unwrap(),
    );
    let (stored, events) = store.get("tk-r").await.unwrap().unwrap();
    assert_eq!(stored, r);
    assert_eq!(events, [first.clone(), rated.clone()]);
    assert_eq!(
        store.events_between(5_500, 7_000).await.unwrap(),
        [first, rated],
        "the whole history of tk-r, whose rating is in the window"
    );
    assert!(store.events_between(7_000, 8_000).await.unwrap().is_empty());
    head
}

/// Presence and liaisons are stored, and logged on a shared store.
async fn presence_and_liaisons(store: &dyn TicketStore, head: u64, shared: bool) {
    store
        .set_availability("t1", Availability::Online, 5_000)
        .await
        .unwrap();
    store
        .set_availability("t1", Availability::Away, 6_000)
        .await
        .unwrap();
    assert_eq!(
        store.availability("t1").await.unwrap(),
        Some(Availability::Away)
    );
    assert_eq!(store.availability("nobody").await.unwrap(), None);
    assert_eq!(
        store.availabilities().await.unwrap(),
        vec![("t1".to_string(), Availability::Away)]
    );
    let liaison = Liaison {
        id: "dy-1".into(),
        name: "王党员".into(),
        phone: "13800000000".into(),
        villages: vec!["610527107202".into()],
    };
    store
        .replace_liaisons(std::slice::from_ref(&liaison))
        .await
        .unwrap();
    assert_eq!(store.liaisons().await.unwrap(), vec![liaison]);
    if shared {
        let log = store.changes_since(head).await.unwrap();
        let kinds: Vec<&Change> = log.iter().map(|(_, c)| c).collect();
        assert_eq!(
            kinds,
            [
                &Change::Presence("t1".into()),
                &Change::Presence("t1".into()),
                &Change::Liaisons
            ]
        );
    }
}

#[tokio::test]
async fn sqlite_store() {
    let dir = crate::common::temp_dir("store");
    let store = Arc::new(SqliteStore::open(&dir).unwrap());
    assert!(store.notifications().is_none());
    suite(store, false).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Commits `t` with its first event.
async fn submitted(store: &dyn TicketStore, t: &Ticket) {
    let head = store.head().await.unwrap();
    done(
        store
            .insert(t, &[event(t, 1, EventKind::Submitted, None)], &[], head)
            .await
            .unwrap(),
    );
}

/// A stored value the store does not know is an error that names it, worded
/// as the store always has.
#[tokio::test]
async fn sqlite_store_names_a_value_it_cannot_read() {
    let dir = crate::common::temp_dir("store-unknown");
    let store = SqliteStore::open(&dir).unwrap();
    submitted(&store, &ticket("tk-x", None, 1_000)).await;
    let conn = rusqlite::Connection::open(dir.join("tickets.sqlite3")).unwrap();
    conn.execute("UPDATE tickets SET state = 'lost' WHERE id = 'tk-x'", [])
        .unwrap();
    let e = store.get("tk-x").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "storage: ticket database: Invalid column type Text at index: 0, name: state \"lost\""
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn postgres_store_names_a_value_it_cannot_read() {
    let Some(url) = crate::common::postgres_db("unknown").await else {
        return;
    };
    let store = PgStore::connect(&url).await.unwrap();
    submitted(store.as_ref(), &ticket("tk-x", None, 1_000)).await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .execute("UPDATE tickets SET corps = '海军' WHERE id = 'tk-x'", &[])
        .await
        .unwrap();
    let e = store.get("tk-x").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "internal error: PostgreSQL holds an unknown corps \"海军\""
    );
}

/// A database made before tickets kept their words: the migration adds the
/// column, and the old row reads back without words.
#[tokio::test]
async fn sqlite_rows_from_before_the_words_column_read_without_words() {
    let dir = crate::common::temp_dir("store-words");
    {
        let conn = rusqlite::Connection::open(dir.join("tickets.sqlite3")).unwrap();
        conn.execute_batch(include_str!("../../migrations/sqlite/0001_tickets.sql"))
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO tickets VALUES ('tk-1', '苹果树叶子发黄', '{\"division\":\"610527107202\"}', \
             '610527107202', '苹果', NULL, '', NULL, 'queued', NULL, 'village', 0, NULL, '', '', 1, 1)",
            [],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&dir).unwrap();
    let (old, _) = store.get("tk-1").await.unwrap().unwrap();
    assert_eq!(old.words, None);
    assert_eq!(old.subject.as_deref(), Some("苹果"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn postgres_store() {
    let Some(url) = crate::common::postgres_db("store").await else {
        return;
    };
    let store = PgStore::connect(&url).await.unwrap();
    suite(store, true).await;
}

#[tokio::test]
async fn postgres_replicas_share_key_log_and_wake_ups() {
    let Some(url) = crate::common::postgres_db("replicas").await else {
        return;
    };
    let a = PgStore::connect(&url).await.unwrap();
    // The second replica migrates nothing twice and shares the key.
    let b = PgStore::connect(&url).await.unwrap();
    assert_eq!(
        a.signing_key().await.unwrap(),
        b.signing_key().await.unwrap()
    );
    let mut wake = b.notifications().unwrap();
    // Each commit on one replica wakes the other: three in a row (so it is
    // not the one tick the listener gives when it connects).
    let mut head = a.head().await.unwrap();
    let mut woken = 0;
    for i in 0..50 {
        let t = ticket(&format!("tk-{i}"), None, 1_000 + i);
        head = done(
            a.insert(&t, &[event(&t, 1, EventKind::Submitted, None)], &[], head)
                .await
                .unwrap(),
        );
        match tokio::time::timeout(Duration::from_secs(2), wake.changed()).await {
            Ok(changed) => {
                changed.unwrap();
                woken += 1;
            }
            Err(_) => woken = 0,
        }
        if woken == 4 {
            break;
        }
    }
    assert_eq!(woken, 4, "commits on one replica do not wake the other");
    assert_eq!(b.head().await.unwrap(), head);
    let t = match b.changes_since(head - 1).await.unwrap().as_slice() {
        [(h, Change::Ticket(id))] if *h == head => a.get(id).await.unwrap().unwrap().0,
        other => panic!("unexpected log tail {other:?}"),
    };
    // Two replicas deciding from the same head: exactly one wins.
    let mut offered = t.clone();
    offered.state = TicketState::Offered;
    offered.assignee = Some("t1".into());
    let mut other = t.clone();
    other.state = TicketState::Offered;
    other.assignee = Some("t2".into());
    let to_t1 = [event(&offered, 2, EventKind::Offered, Some("t1"))];
    let to_t2 = [event(&other, 2, EventKind::Offered, Some("t2"))];
    let (wa, wb) = tokio::join!(
        a.update(&offered, &to_t1, &[], head),
        b.update(&other, &to_t2, &[], head),
    );
    let outcomes = [wa.unwrap(), wb.unwrap()];
    assert_eq!(
        outcomes.iter().filter(|w| **w == Written::Stale).count(),
        1,
        "{outcomes:?}"
    );
    let (_, events) = a.get(&t.id).await.unwrap().unwrap();
    assert_eq!(events.len(), 2);
}

/// Connections PostgreSQL drops (a restart, a failover, an administrator)
/// are replaced: the pool opens new ones and prepares its statements on
/// them again, and the listener reconnects and wakes the replica.
#[tokio::test]
async fn postgres_store_recovers_when_its_connections_drop() {
    let Some(url) = crate::common::postgres_db("dropped").await else {
        return;
    };
    let store = PgStore::connect(&url).await.unwrap();
    let t = ticket("tk-before", None, 1_000);
    submitted(store.as_ref(), &t).await;
    let mut wake = store.notifications().unwrap();
    // Past the ticks for the listener's first connection and for that
    // commit, only a reconnection ticks.
    tokio::time::sleep(Duration::from_millis(500)).await;
    wake.borrow_and_update();
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed >= 2, "the pool's and the listener's: {killed}");
    // The listener's new connection ticks the watchers.
    tokio::time::timeout(Duration::from_secs(10), wake.changed())
        .await
        .expect("the listener reconnects")
        .unwrap();
    // A lease may still find a connection whose end the pool has not yet
    // seen; the next ones are new.
    let mut written = None;
    for i in 0..50 {
        let t = ticket(&format!("tk-after-{i}"), None, 2_000);
        let Ok(head) = store.head().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        match store
            .insert(&t, &[event(&t, 1, EventKind::Submitted, None)], &[], head)
            .await
        {
            Ok(w) => {
                written = Some((t, done(w)));
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let (t, head) = written.expect("the store writes again");
    assert_eq!(store.get(&t.id).await.unwrap().unwrap().0, t);
    assert_eq!(store.head().await.unwrap(), head);
}

/// A ticket of its own for each notification (so none waits behind
/// another), committed with it, created at 1 s, for endpoint "gw".
async fn noted(store: &dyn TicketStore, id: &str) {
    let t = ticket(&format!("tk-{id}"), None, 1_000);
    let note = Note {
        id: id.into(),
        ticket_id: t.id.clone(),
        seq: 256,
        kind: "ticket.queued".into(),
        body: "{}".into(),
        endpoints: vec!["gw".into()],
        created_at_ms: 1_000,
        deadline_ms: 1_000_000,
    };
    let head = store.head().await.unwrap();
    let first = [event(&t, 1, EventKind::Submitted, None)];
    done(store.insert(&t, &first, &[note], head).await.unwrap());
}

/// Old delivered rows are pruned a batch at a time with their attempts;
/// recent delivered rows, pending rows and failed (given up) rows stay.
async fn pruning<S: TicketStore + Outbox>(store: &S, other: &S) {
    for id in ["old-1", "old-2", "old-3", "recent", "failed", "pending"] {
        noted(store, id).await;
    }
    let claimed = store
        .claim("w", &["gw".into()], 2_000, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 6);
    for c in &claimed {
        let (outcome, at_ms) = match c.id.as_str() {
            "recent" => (Outcome::Delivered { status: 200 }, 90_000),
            "failed" => (
                Outcome::GiveUp {
                    status: Some(500),
                    error: "HTTP 500".into(),
                },
                3_000,
            ),
            "pending" => (
                Outcome::Retry {
                    status: None,
                    error: "cannot connect".into(),
                    next_at_ms: 4_000,
                },
                3_000,
            ),
            _ => (Outcome::Delivered { status: 204 }, 3_000),
        };
        assert!(store.finish("w", c, &outcome, at_ms).await.unwrap());
    }
    // Finished before 50 s: the three old delivered rows, one at a time.
    assert_eq!(store.prune_delivered(50_000, 1).await.unwrap(), 1);
    // Two prunes at once (two replicas): each row goes once.
    let (a, b) = tokio::join!(
        store.prune_delivered(50_000, 1),
        other.prune_delivered(50_000, 1)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a + b <= 2, "{a} + {b}");
    while store.prune_delivered(50_000, 1).await.unwrap() == 1 {}
    let mut left: Vec<String> = store
        .deliveries(&DeliveryFilter {
            limit: 100,
            ..DeliveryFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    left.sort();
    assert_eq!(left, ["failed", "pending", "recent"]);
    assert!(store.attempts("old-1", "gw").await.unwrap().is_empty());
    assert_eq!(store.attempts("recent", "gw").await.unwrap().len(), 1);
    assert_eq!(store.prune_delivered(50_000, 100).await.unwrap(), 0);
    // Once it is old enough, the recent one goes too; the others never.
    assert_eq!(store.prune_delivered(i64::MAX, 100).await.unwrap(), 1);
    let counts = store.endpoint_counts().await.unwrap();
    assert_eq!(
        (counts[0].pending, counts[0].failed, counts[0].delivered),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn sqlite_prunes_old_delivered_notifications_only() {
    let dir = crate::common::temp_dir("store-prune");
    let store = SqliteStore::open(&dir).unwrap();
    pruning(&store, &store).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn postgres_prunes_old_delivered_notifications_only() {
    let Some(url) = crate::common::postgres_db("prune").await else {
        return;
    };
    let a = PgStore::connect(&url).await.unwrap();
    let b = PgStore::connect(&url).await.unwrap();
    pruning(a.as_ref(), b.as_ref()).await;
}
