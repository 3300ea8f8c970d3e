//! Property tests of the dispatcher, driven through its domain API with
//! random sequences of submissions, presence changes and responder actions:
//! a ticket is never offered again to a responder who declined it or let it
//! lapse, offers go only to ONLINE responders, and no responder ever holds
//! more tickets than its capacity.

use std::{collections::HashMap, sync::Arc, time::Duration};

use proptest::prelude::*;
use xingweinong::{
    config::MatchConfig,
    matching::Matcher,
    model::divisions::Divisions,
    model::ids::{TalentId, TicketId},
    model::Location,
    reading::lexicon::Lexicon,
    roster::store::RosterStore,
    roster::{self, RosterFormat},
    store::sqlite::SqliteStore,
    tickets::{Availability, DispatchConfig, Dispatcher, EventKind, Submission, TicketState},
};

/// Three apple responders of small capacity on three tiers, and a pig one.
const ROSTER: &str = "id,name,tier,specialties,division_code,lat,lon,capacity\n\
    a,甲,village,苹果,610527106202,35.00,109.5,1\n\
    b,乙,village,苹果,610527106202,35.01,109.5,2\n\
    c,丙,county_town,苹果,610527106000,35.05,109.5,1\n\
    d,丁,city,苹果,610500000000,35.10,109.5,1\n\
    p,戊,village,猪,610527106202,35.00,109.5,1\n";
const TALENTS: [&str; 5] = ["a", "b", "c", "d", "p"];
const TEXTS: [&str; 3] = ["苹果树腐烂病", "苹果叶子发黄", "猪不吃食发烧"];

#[derive(Debug, Clone)]
enum Action {
    Submit(usize),
    Presence(usize, bool),
    Accept(usize, usize),
    Decline(usize, usize),
    Resolve(usize, usize),
    Escalate(usize, usize),
    Expire,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..TEXTS.len()).prop_map(Action::Submit),
        2 => (0..TALENTS.len(), any::<bool>()).prop_map(|(t, on)| Action::Presence(t, on)),
        2 => (0..TALENTS.len(), 0..8usize).prop_map(|(t, k)| Action::Accept(t, k)),
        2 => (0..TALENTS.len(), 0..8usize).prop_map(|(t, k)| Action::Decline(t, k)),
        1 => (0..TALENTS.len(), 0..8usize).prop_map(|(t, k)| Action::Resolve(t, k)),
        1 => (0..TALENTS.len(), 0..8usize).prop_map(|(t, k)| Action::Escalate(t, k)),
        1 => Just(Action::Expire),
    ]
}

async fn run(actions: Vec<Action>) -> Result<(), TestCaseError> {
    let dir = std::env::temp_dir().join(format!(
        "xwn-prop-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let dispatcher = start_dispatcher(&dir).await;
    let mut submitted: Vec<(String, String)> = Vec::new();
    let mut online: HashMap<&str, bool> = HashMap::new();
    // Events of each ticket already checked.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for a in actions {
        // Offers also lapse and move on in the background, so an offer seen
        // after this step may have been made just before it: whoever was
        // online before or after the step may hold it.
        let before = online.clone();
        apply(&dispatcher, a, &mut submitted, &mut online).await;
        let may_hold = |who: &str| before.get(who) == Some(&true) || online.get(who) == Some(&true);
        invariants_hold(&dispatcher, &submitted, &may_hold, &mut seen).await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A dispatcher on the roster above, with SQLite tickets in `dir`.
async fn start_dispatcher(dir: &std::path::Path) -> Arc<Dispatcher> {
    let (lex, div) = (Lexicon::embedded(), Divisions::embedded());
    let talents = roster::parse_roster(RosterFormat::Csv, ROSTER.as_bytes(), lex, div).unwrap();
    let store = RosterStore::open(dir, lex, || Ok(talents)).unwrap();
    let matcher = Arc::new(Matcher::new(Arc::new(store), MatchConfig::default()));
    let tickets = Arc::new(SqliteStore::open(dir).unwrap());
    // Offers lapse only when the test says so (Expire waits past them).
    let config = DispatchConfig {
        offer_timeout: Duration::from_millis(40),
        escalate_after: 2,
        ..DispatchConfig::default()
    };
    Dispatcher::start(tickets, matcher, config).await.unwrap()
}

/// Plays one action; errors of responder actions (not yours, wrong state)
/// are part of the game.
async fn apply(
    dispatcher: &Dispatcher,
    a: Action,
    submitted: &mut Vec<(String, String)>,
    online: &mut HashMap<&str, bool>,
) {
    match a {
        Action::Submit(i) => {
            let s = Submission {
                text: TEXTS[i].into(),
                location: Some(Location::Point {
                    lat: 35.0,
                    lon: 109.5,
                }),
                ..Submission::default()
            };
            let (t, _, secret) = dispatcher.submit(s).await.unwrap();
            submitted.push((t.id, secret));
        }
        Action::Presence(t, on) => {
            let a = if on {
                Availability::Online
            } else {
                Availability::Offline
            };
            dispatcher
                .set_availability(&TalentId::new(TALENTS[t]), a)
                .await
                .unwrap();
            online.insert(TALENTS[t], on);
        }
        Action::Accept(t, k)
        | Action::Decline(t, k)
        | Action::Resolve(t, k)
        | Action::Escalate(t, k)
            if !submitted.is_empty() =>
        {
            let id = &TicketId::new(submitted[k % submitted.len()].0.as_str());
            let who = &TalentId::new(TALENTS[t]);
            // Errors (not yours, wrong state) are part of the game.
            let _ = match a {
                Action::Accept(..) => dispatcher.accept(who, id).await,
                Action::Decline(..) => dispatcher.decline(who, id, "").await,
                Action::Resolve(..) => dispatcher.resolve(who, id, "答复").await,
                _ => dispatcher.escalate(who, id, "").await,
            };
        }
        Action::Expire => {
            tokio::time::sleep(Duration::from_millis(60)).await;
            dispatcher.expire_offers().await.unwrap();
        }
        _ => {}
    }
}

/// The invariants, checked on the stored tickets after every step: offers
/// only to online responders, never again to one who refused, the holder
/// of an offer is the last one offered; loads and capacity agree.
async fn invariants_hold(
    dispatcher: &Dispatcher,
    submitted: &[(String, String)],
    may_hold: &dyn Fn(&str) -> bool,
    seen: &mut HashMap<String, usize>,
) -> Result<(), TestCaseError> {
    for (id, secret) in submitted {
        let (ticket, history) = dispatcher
            .get_ticket(&TicketId::new(id.as_str()), secret)
            .await
            .unwrap();
        let from = seen.insert(id.clone(), history.len()).unwrap_or(0);
        for e in &history[from..] {
            if e.kind == EventKind::Offered {
                let who = e.talent_id.as_deref().unwrap();
                prop_assert!(may_hold(who), "{id} offered to {who}, who was not online");
            }
        }
        let mut refused: Vec<&str> = Vec::new();
        for e in &history {
            let who = e.talent_id.as_deref().unwrap_or("");
            match e.kind {
                EventKind::Declined | EventKind::OfferTimedOut => refused.push(who),
                EventKind::Offered => {
                    prop_assert!(
                        !refused.contains(&who),
                        "{id} offered again to {who}: {history:?}"
                    );
                }
                _ => {}
            }
        }
        if ticket.state == TicketState::Offered {
            let holder = ticket.assignee.as_deref().unwrap();
            let last_offer = history
                .iter()
                .rev()
                .find(|e| e.kind == EventKind::Offered)
                .unwrap();
            prop_assert_eq!(last_offer.talent_id.as_deref(), Some(holder));
        }
    }
    // Offers lapse in the background too, so loads and capacity are
    // checked under the dispatcher's lock.
    if let Err(e) = dispatcher.self_check().await {
        return Err(TestCaseError::fail(format!(
            "memory and store disagree: {e}"
        )));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn dispatch_invariants_hold(actions in proptest::collection::vec(action(), 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(actions))?;
    }
}
