//! The dispatcher with a real roster and an SQLite store: a re-route ranks
//! with the need the ticket was submitted with; a drain routes only the
//! queued tickets a freed responder could take, oldest first; decisions
//! made during a commit share the next one, and a failed commit's
//! decisions are neither acknowledged nor kept in memory.

use std::sync::atomic::Ordering;

use super::*;
use crate::{
    config::MatchConfig,
    model::divisions::Divisions,
    reading::lexicon::Lexicon,
    roster::{self, store::RosterStore, RosterFormat},
    search::{tokenizer, Ranking},
    store::sqlite::SqliteStore,
    tickets::Principal,
};

/// `a` is nearest; `x` and `y` are equally far, so the report's words
/// decide between them: `x` knows the compound the analysis keeps whole,
/// `y` the pieces search mode cuts it into.
const ROSTER: &str = "id,name,tier,specialties,skills,division_code,lat,lon,capacity\n\
    a,甲,village,苹果,,610527106202,35.00,109.5,1\n\
    x,乙,village,苹果,怎么治,610527106202,35.05,109.5,1\n\
    y,丙,village,苹果,果树腐烂 腐烂病 苹果,610527106202,35.05,109.5,1\n";
const TEXT: &str = "苹果树腐烂病怎么治";

#[tokio::test]
async fn a_rerouted_ticket_is_ranked_with_its_submitted_need() {
    let dir = std::env::temp_dir().join(format!("xwn-reroute-need-{}", random_hex(8)));
    let lex = Lexicon::embedded();
    let d = start_in(&dir, None).await;
    let matcher = d.matcher.clone();
    for t in ["a", "x", "y"] {
        let online = Availability::Online;
        d.set_availability(&TalentId::new(t), online).await.unwrap();
    }

    let location = Location::Point {
        lat: 35.0,
        lon: 109.5,
    };
    let origin = matcher
        .resolve_location(Some(&location), "location")
        .unwrap();
    let submitted = Need::of(&matcher.analyze(TEXT, origin));
    let derived: Vec<String> = tokenizer::terms(lex, TEXT)
        .into_iter()
        .map(|(_, _, w)| w)
        .collect();
    // The two readings rank x and y differently, so the test can tell them apart.
    let snapshot = matcher.snapshot();
    let pool = matcher
        .qualified_pool(&snapshot, &submitted, origin)
        .unwrap();
    let second = |words: &[String]| {
        let hits = snapshot
            .top(&pool, origin, words, Ranking::Nearest, 3)
            .unwrap();
        hits[1].talent.id.clone()
    };
    assert_eq!(second(&submitted.words), "x");
    assert_eq!(second(&derived), "y");

    let submission = Submission {
        text: TEXT.into(),
        location: Some(location),
        ..Submission::default()
    };
    let (ticket, _, _) = d.submit(submission).await.unwrap();
    assert_eq!(ticket.assignee.as_deref(), Some("a"));
    assert_eq!(ticket.words.as_ref(), Some(&submitted.words));
    let id = TicketId::new(ticket.id.as_str());
    let rerouted = d.decline(&TalentId::new("a"), &id, "").await.unwrap();
    assert_eq!(rerouted.state, TicketState::Offered);
    assert_eq!(rerouted.assignee.as_deref(), Some("x"));

    // The stored ticket keeps the submitted need; a row stored before
    // words were kept falls back to the search terms of its text.
    let (stored, _) = d.store.get(&ticket.id).await.unwrap().unwrap();
    assert_eq!(stored.need(lex), submitted);
    let legacy = Ticket {
        words: None,
        photos: Vec::new(),
        ..stored
    };
    assert_eq!(legacy.need(lex).words, derived);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A dispatcher on [`ROSTER`] in a fresh directory; offers through
/// notifications lapse after `notified` when given.
async fn start_in(dir: &std::path::Path, notified: Option<Duration>) -> Arc<Dispatcher> {
    let (lex, div) = (Lexicon::embedded(), Divisions::embedded());
    let talents = roster::parse_roster(RosterFormat::Csv, ROSTER.as_bytes(), lex, div).unwrap();
    let roster = RosterStore::open(dir, lex, || Ok(talents)).unwrap();
    let matcher = Arc::new(Matcher::new(Arc::new(roster), MatchConfig::default()));
    let store = Arc::new(SqliteStore::open(dir).unwrap());
    let config = DispatchConfig {
        notified_offer_timeout: notified,
        ..DispatchConfig::default()
    };
    Dispatcher::start(store, matcher, config).await.unwrap()
}

fn apple_submission() -> Submission {
    Submission {
        text: TEXT.into(),
        location: Some(Location::Point {
            lat: 35.0,
            lon: 109.5,
        }),
        ..Submission::default()
    }
}

#[tokio::test]
async fn without_a_webhook_only_online_responders_are_offered_tickets() {
    let dir = std::env::temp_dir().join(format!("xwn-no-notify-{}", random_hex(8)));
    let d = start_in(&dir, None).await;
    let (ticket, _, _) = d.submit(apple_submission()).await.unwrap();
    assert_eq!(ticket.state, TicketState::Queued, "nobody is ONLINE");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn notified_offers_skip_the_away_and_their_deadline_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("xwn-notify-{}", random_hex(8)));
    let notified = Duration::from_millis(400);
    let d = start_in(&dir, Some(notified)).await;
    // a: never seen; x: AWAY; y: OFFLINE. Nearest first: a, then x and y.
    d.set_availability(&TalentId::new("x"), Availability::Away)
        .await
        .unwrap();
    d.set_availability(&TalentId::new("y"), Availability::Offline)
        .await
        .unwrap();
    let (ticket, _, _) = d.submit(apple_submission()).await.unwrap();
    assert_eq!(ticket.state, TicketState::Offered);
    assert_eq!(ticket.assignee.as_deref(), Some("a"));
    let deadline = ticket.offer_deadline_ms.unwrap();
    assert_eq!(deadline - ticket.updated_at_ms, notified.as_millis() as i64);
    // The offer's action link names a and this ticket, for this ticket only.
    let url = d
        .offer_action_url("https://xwn.example.org/", &ticket)
        .unwrap();
    let token = url
        .strip_prefix("https://xwn.example.org/expert#action=")
        .unwrap();
    let link = Principal::Action {
        talent: TalentId::new("a"),
        ticket: TicketId::new(ticket.id.as_str()),
    };
    assert_eq!(d.authenticate(token).await.unwrap(), link);

    // A restart before the deadline: the stored deadline lapses the offer.
    drop(d);
    let d = start_in(&dir, Some(notified)).await;
    let id = TicketId::new(ticket.id.as_str());
    let lapsed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (t, events) = d.store.get(id.as_str()).await.unwrap().unwrap();
            if t.assignee.as_deref() != Some("a") {
                return (t, events);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the offer lapsed after the restart");
    let (now, events) = lapsed;
    assert_eq!(now.state, TicketState::Offered);
    assert_eq!(now.assignee.as_deref(), Some("y"), "AWAY x is passed over");
    assert!(events.iter().any(|e| e.kind == EventKind::OfferTimedOut
        && e.talent_id.as_deref() == Some("a")
        && e.at_ms >= deadline));
    assert!(!events.iter().any(|e| e.talent_id.as_deref() == Some("x")));
    // The link ended with its offer.
    let expired = d.authenticate(token).await.unwrap_err().to_string();
    assert!(expired.contains("has expired"), "{expired}");
    assert_eq!(
        d.offer_action_url("https://xwn.example.org", &now)
            .map(|u| u.contains("expert#action=")),
        Some(true)
    );
}

/// An apple expert `a` (two tickets at a time) and a wheat expert `w` (one).
const QUEUE_ROSTER: &str = "id,name,tier,specialties,skills,division_code,lat,lon,capacity\n\
    a,甲,village,苹果,,610527106202,35.00,109.5,2\n\
    w,乙,village,小麦,,610527106202,35.00,109.5,1\n";

/// A matcher over `roster`, kept in `dir`.
fn matcher_on(dir: &std::path::Path, roster: &str) -> Arc<Matcher> {
    let lex = Lexicon::embedded();
    let talents = roster::parse_roster(
        RosterFormat::Csv,
        roster.as_bytes(),
        lex,
        Divisions::embedded(),
    )
    .unwrap();
    let roster = RosterStore::open(dir, lex, || Ok(talents)).unwrap();
    Arc::new(Matcher::new(Arc::new(roster), MatchConfig::default()))
}

/// A dispatcher started on the SQLite store in `dir`.
async fn dispatcher_on(dir: &std::path::Path, matcher: &Arc<Matcher>) -> Arc<Dispatcher> {
    let store = Arc::new(SqliteStore::open(dir).unwrap());
    Dispatcher::start(store, matcher.clone(), DispatchConfig::default())
        .await
        .unwrap()
}

/// Routing attempts made while `work` runs.
async fn routings_during<T>(d: &Dispatcher, work: impl std::future::Future<Output = T>) -> u64 {
    let before = d.routings.load(Ordering::Relaxed);
    work.await;
    d.routings.load(Ordering::Relaxed) - before
}

#[tokio::test]
async fn a_drain_routes_only_what_the_freed_responder_could_take_oldest_first() {
    let dir = std::env::temp_dir().join(format!("xwn-drain-{}", random_hex(8)));
    let matcher = matcher_on(&dir, QUEUE_ROSTER);
    let d = dispatcher_on(&dir, &matcher).await;
    let submit = |text: &str| {
        let s = Submission {
            text: text.into(),
            location: Some(Location::Point {
                lat: 35.0,
                lon: 109.5,
            }),
            ..Submission::default()
        };
        let d = d.clone();
        async move { d.submit(s).await.unwrap().0 }
    };
    // Nobody is online: 40 apple problems, then 2 wheat ones, all wait.
    let mut apples = Vec::new();
    for _ in 0..40 {
        apples.push(submit("苹果树腐烂病").await);
    }
    let wheat = [submit("小麦条锈病").await, submit("小麦条锈病").await];
    assert!(apples
        .iter()
        .chain(&wheat)
        .all(|t| t.state == TicketState::Queued));
    assert_eq!(d.state.lock().await.queue.len(), 42);
    let open = |id: &str| {
        let d = d.clone();
        let id = id.to_string();
        async move { d.state.lock().await.open[&id].clone() }
    };
    let offered_to = |t: Ticket, who: &str| {
        assert_eq!(t.state, TicketState::Offered, "{t:?}");
        assert_eq!(t.assignee.as_deref(), Some(who), "{t:?}");
    };
    let (a, w) = (TalentId::new("a"), TalentId::new("w"));

    // The wheat expert can take no apple ticket: those 40 are passed over
    // unrouted, and the oldest wheat ticket is offered.
    let n = routings_during(&d, d.set_availability(&w, Availability::Online)).await;
    assert_eq!(n, 1, "routing attempts when w came online");
    offered_to(open(&wheat[0].id).await, "w");
    assert_eq!(open(&wheat[1].id).await.state, TicketState::Queued);

    // The apple expert takes the two oldest apple tickets: two routings.
    let n = routings_during(&d, d.set_availability(&a, Availability::Online)).await;
    assert_eq!(n, 2, "routing attempts when a came online");
    offered_to(open(&apples[0].id).await, "a");
    offered_to(open(&apples[1].id).await, "a");
    assert_eq!(open(&apples[2].id).await.state, TicketState::Queued);

    // A resolved ticket frees a place: the next apple ticket, one routing.
    let first = TicketId::new(apples[0].id.as_str());
    d.accept(&a, &first).await.unwrap();
    let n = routings_during(&d, d.resolve(&a, &first, "剪除病枝")).await;
    assert_eq!(n, 1, "routing attempts after a resolved");
    offered_to(open(&apples[2].id).await, "a");

    // A decline re-routes the declined ticket (nobody else grows wheat)
    // and offers the decliner the next wheat ticket: two routings.
    let declined = TicketId::new(wheat[0].id.as_str());
    let n = routings_during(&d, d.decline(&w, &declined, "")).await;
    assert_eq!(n, 2, "routing attempts after w declined");
    offered_to(open(&wheat[1].id).await, "w");

    // A restart with everyone online at capacity routes nothing.
    assert_eq!(d.state.lock().await.queue.len(), 37);
    let again = dispatcher_on(&dir, &matcher).await;
    assert_eq!(again.routings.load(Ordering::Relaxed), 0);
    assert_eq!(again.state.lock().await.queue.len(), 37);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An SQLite store whose commits can be held (the first waits until
/// released) and made to fail once, and which records each commit's size,
/// counts its change-log queries and, with `told`, sends change
/// notifications (as PostgreSQL's does) when the test says so.
struct Gated {
    inner: SqliteStore,
    held: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
    entered: Notify,
    fail_next: std::sync::atomic::AtomicBool,
    sizes: std::sync::Mutex<Vec<usize>>,
    catch_ups: std::sync::atomic::AtomicUsize,
    told: Option<tokio::sync::watch::Sender<u64>>,
}

#[async_trait::async_trait]
impl TicketStore for Gated {
    async fn commit(&self, writes: Arc<[Write]>, head: u64) -> Result<crate::store::Written> {
        self.entered.notify_one();
        let held = self.held.lock().await.take();
        if let Some(release) = held {
            let _ = release.await;
        }
        self.sizes.lock().unwrap().push(writes.len());
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(Error::Storage("the disk is full".into()));
        }
        self.inner.commit(writes, head).await
    }
    async fn changes_since(&self, cursor: u64) -> Result<Vec<(u64, Change)>> {
        self.catch_ups.fetch_add(1, Ordering::SeqCst);
        self.inner.changes_since(cursor).await
    }
    async fn head(&self) -> Result<u64> {
        self.inner.head().await
    }
    async fn events_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Event>> {
        self.inner.events_between(from_ms, to_ms).await
    }
    async fn photo_ids(&self) -> Result<Vec<String>> {
        self.inner.photo_ids().await
    }
    fn notifications(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.told.as_ref().map(|t| t.subscribe())
    }
    async fn get(&self, id: &str) -> Result<Option<(Ticket, Vec<Event>)>> {
        self.inner.get(id).await
    }
    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<String>> {
        self.inner.find_by_idempotency_key(key).await
    }
    async fn open_tickets(&self) -> Result<Vec<(Ticket, Vec<Event>)>> {
        self.inner.open_tickets().await
    }
    async fn list(&self, filter: &crate::store::TicketFilter) -> Result<Vec<Ticket>> {
        self.inner.list(filter).await
    }
    async fn set_availability(&self, talent: &str, a: Availability, at_ms: i64) -> Result<()> {
        self.inner.set_availability(talent, a, at_ms).await
    }
    async fn availabilities(&self) -> Result<Vec<(String, Availability)>> {
        self.inner.availabilities().await
    }
    async fn availability(&self, talent: &str) -> Result<Option<Availability>> {
        self.inner.availability(talent).await
    }
    async fn replace_liaisons(&self, liaisons: &[super::super::liaison::Liaison]) -> Result<()> {
        self.inner.replace_liaisons(liaisons).await
    }
    async fn liaisons(&self) -> Result<Vec<super::super::liaison::Liaison>> {
        self.inner.liaisons().await
    }
    async fn signing_key(&self) -> Result<Vec<u8>> {
        self.inner.signing_key().await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}

/// A dispatcher on a [`Gated`] store whose first commit waits for the
/// returned sender.
async fn gated_in(dir: &std::path::Path) -> (Arc<Dispatcher>, Arc<Gated>, oneshot::Sender<()>) {
    gated_telling(dir, None).await
}

/// [`gated_in`], the store's notifications sent by `told`.
async fn gated_telling(
    dir: &std::path::Path,
    told: Option<tokio::sync::watch::Sender<u64>>,
) -> (Arc<Dispatcher>, Arc<Gated>, oneshot::Sender<()>) {
    let (release, held) = oneshot::channel();
    let store = Arc::new(Gated {
        inner: SqliteStore::open(dir).unwrap(),
        held: tokio::sync::Mutex::new(Some(held)),
        entered: Notify::new(),
        fail_next: false.into(),
        sizes: Default::default(),
        catch_ups: Default::default(),
        told,
    });
    let matcher = matcher_on(dir, ROSTER);
    let d = Dispatcher::start(store.clone(), matcher, DispatchConfig::default())
        .await
        .unwrap();
    (d, store, release)
}

/// Submits `n` problems at once; returns once all `n` wait for a commit.
async fn submit_behind(
    d: &Arc<Dispatcher>,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<Ticket>>> {
    let before = d.state.lock().await.pending.len();
    let handles = (0..n)
        .map(|_| {
            let d = d.clone();
            tokio::spawn(async move { Ok(d.submit(apple_submission()).await?.0) })
        })
        .collect();
    while d.state.lock().await.pending.len() < before + n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handles
}

#[tokio::test]
async fn decisions_made_during_a_commit_share_the_next_and_are_acknowledged_after_it() {
    let dir = std::env::temp_dir().join(format!("xwn-group-commit-{}", random_hex(8)));
    let (d, store, release) = gated_in(&dir).await;
    let first = submit_behind(&d, 1).await;
    store.entered.notified().await;
    let rest = submit_behind(&d, 20).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        first.iter().chain(&rest).all(|h| !h.is_finished()),
        "nothing is acknowledged before its commit"
    );
    // Decided on top of each other: all 21 wait in memory, in the queue.
    assert_eq!(d.state.lock().await.queue.len(), 21);
    release.send(()).unwrap();
    for h in first.into_iter().chain(rest) {
        let ticket = h.await.unwrap().unwrap();
        assert!(d.store.get(&ticket.id).await.unwrap().is_some());
    }
    assert_eq!(*store.sizes.lock().unwrap(), [1, 20]);
    d.self_check().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_failed_commit_acknowledges_none_of_its_decisions_and_memory_follows_the_store() {
    let dir = std::env::temp_dir().join(format!("xwn-failed-commit-{}", random_hex(8)));
    let (d, store, release) = gated_in(&dir).await;
    store.fail_next.store(true, Ordering::SeqCst);
    let failing = submit_behind(&d, 1).await;
    store.entered.notified().await;
    // Decided on top of the failing one, before it fails.
    let behind = submit_behind(&d, 3).await;
    release.send(()).unwrap();
    for h in failing {
        let e = h.await.unwrap().unwrap_err();
        assert!(matches!(e, Error::Storage(_)), "{e:?}");
    }
    // Decided again on what is durable, and committed.
    let mut ids = Vec::new();
    for h in behind {
        ids.push(h.await.unwrap().unwrap().id);
    }
    // The failed commit of one; the three again, in however many commits.
    let sizes = store.sizes.lock().unwrap().clone();
    assert_eq!(
        (sizes[0], sizes[1..].iter().sum::<usize>()),
        (1, 3),
        "{sizes:?}"
    );
    let stored = d.store.open_tickets().await.unwrap();
    assert_eq!(stored.len(), 3);
    assert!(stored.iter().all(|(t, _)| ids.contains(&t.id)));
    d.self_check().await.unwrap();
    let state = d.state.lock().await;
    assert_eq!(state.open.len(), 3, "the failed ticket left memory");
    assert_eq!(state.queue.len(), 3);
    drop(state);
    // And the dispatcher goes on.
    d.submit(apple_submission()).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_submission_queries_the_change_log_only_when_told_of_a_change_or_refused() {
    let dir = std::env::temp_dir().join(format!("xwn-told-catch-up-{}", random_hex(8)));
    let (told, _) = tokio::sync::watch::channel(0);
    let (d, store, release) = gated_telling(&dir, Some(told.clone())).await;
    release.send(()).unwrap();
    let queries = || store.catch_ups.load(Ordering::SeqCst);
    let (before, started) = (queries(), std::time::Instant::now());
    for _ in 0..20 {
        d.submit(apple_submission()).await.unwrap();
    }
    // Only the dispatcher's once-a-second sync may have queried meanwhile.
    let untold = queries() - before;
    assert!(
        untold <= 1 + started.elapsed().as_secs() as usize,
        "{untold} change-log queries for 20 submissions nobody told of a change"
    );
    // Told of a change: the next submission catches up first.
    let seen = queries();
    told.send_modify(|n| *n += 1);
    d.submit(apple_submission()).await.unwrap();
    assert!(queries() > seen);
    // A refused commit: the next submission catches up, told or not.
    store.fail_next.store(true, Ordering::SeqCst);
    d.submit(apple_submission()).await.unwrap_err();
    assert!(d.state.lock().await.behind);
    let seen = queries();
    d.submit(apple_submission()).await.unwrap();
    assert!(queries() > seen);
    assert!(!d.state.lock().await.behind);
    d.self_check().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
