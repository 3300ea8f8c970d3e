//! The state machine's tests: every state × command in one table, then the
//! routing outcomes (busy, nobody left at a tier, nobody qualified at all).

use super::*;
use crate::model::Location;
use EventKind as E;
use TicketState as S;

const NOW: i64 = 10_000;

fn ticket(state: TicketState) -> Ticket {
    let assignee = matches!(state, S::Offered | S::Accepted | S::Resolved).then(|| "a".into());
    Ticket {
        id: "tk-1".into(),
        text: "苹果树腐烂病".into(),
        location: Location::Division("610527106202".into()),
        division_code: Some("610527106202".into()),
        subject: Some("苹果".into()),
        corps: None,
        words: Some(vec!["苹果".into(), "腐烂病".into()]),
        photos: Vec::new(),
        contact: String::new(),
        idempotency_key: None,
        state,
        assignee,
        tier: Tier::Village,
        offers_in_tier: 1,
        offer_deadline_ms: (state == S::Offered).then_some(NOW - 1),
        answer: String::new(),
        reason: String::new(),
        created_at_ms: 1_000,
        updated_at_ms: 2_000,
        rating: None,
    }
}

fn by(id: &str) -> TalentId {
    TalentId::new(id)
}

fn commands() -> [Command; 8] {
    [
        Command::Accept { by: by("a") },
        Command::Decline {
            by: by("a"),
            reason: "忙".into(),
        },
        Command::Resolve {
            by: by("a"),
            answer: "剪除病枝".into(),
        },
        Command::Escalate {
            by: by("a"),
            reason: "太难".into(),
        },
        Command::Cancel,
        Command::OfferTimedOut,
        Command::HolderDeparted,
        Command::Drain,
    ]
}

/// Responder `c` is free at every tier.
fn offer_c() -> Routes {
    let tiers = [Tier::Village, Tier::CountyTown, Tier::City];
    Routes {
        unqualified: None,
        picks: tiers.map(|t| (t, Pick::Offer(by("c")))).to_vec(),
    }
}

fn run(ticket: &Ticket, command: &Command, routes: &Routes) -> Result<Transition> {
    let config = DispatchConfig {
        escalate_after: 3,
        ..DispatchConfig::default()
    };
    let cx = Context {
        now_ms: NOW,
        last_seq: 4,
        routes,
        config: &config,
    };
    step(ticket, command, &cx)
}

fn kind_of(e: &Error) -> &'static str {
    match e {
        Error::PermissionDenied(_) => "permission",
        Error::FailedPrecondition(_) => "precondition",
        _ => "other",
    }
}

#[derive(Debug)]
enum Expect {
    Moves(TicketState, &'static [EventKind]),
    Refused(&'static str),
}
use Expect::{Moves, Refused};

/// What each command of [`commands`] does in each state: commands by `a`,
/// who holds offered, accepted and resolved tickets, with `c` free to take
/// any re-route.
const TABLE: [(TicketState, [Expect; 8]); 6] = [
    (
        S::Queued,
        [
            Refused("permission"),
            Refused("permission"),
            Refused("permission"),
            Refused("permission"),
            Moves(S::Cancelled, &[E::Cancelled]),
            Moves(S::Queued, &[]),
            Moves(S::Queued, &[]),
            Moves(S::Offered, &[E::Offered]),
        ],
    ),
    (
        S::Offered,
        [
            Moves(S::Accepted, &[E::Accepted]),
            Moves(S::Offered, &[E::Declined, E::Offered]),
            Refused("permission"),
            Moves(S::Offered, &[E::Escalated, E::Offered]),
            Moves(S::Cancelled, &[E::Cancelled]),
            Moves(S::Offered, &[E::OfferTimedOut, E::Offered]),
            Moves(S::Offered, &[E::Rerouted, E::Offered]),
            Moves(S::Offered, &[]),
        ],
    ),
    (
        S::Accepted,
        [
            Refused("precondition"),
            Refused("permission"),
            Moves(S::Resolved, &[E::Resolved]),
            Moves(S::Offered, &[E::Escalated, E::Offered]),
            Moves(S::Cancelled, &[E::Cancelled]),
            Moves(S::Accepted, &[]),
            Moves(S::Offered, &[E::Rerouted, E::Offered]),
            Moves(S::Accepted, &[]),
        ],
    ),
    (
        S::Resolved,
        [
            Refused("precondition"),
            Refused("precondition"),
            Refused("precondition"),
            Refused("precondition"),
            Refused("precondition"),
            Refused("precondition"),
            Refused("precondition"),
            Refused("precondition"),
        ],
    ),
    (
        S::Unroutable,
        [
            Refused("permission"),
            Refused("permission"),
            Refused("permission"),
            Refused("permission"),
            Refused("precondition"),
            Refused("precondition"),
            Refused("precondition"),
            Refused("precondition"),
        ],
    ),
    (
        S::Cancelled,
        [
            Refused("permission"),
            Refused("permission"),
            Refused("permission"),
            Refused("permission"),
            Refused("precondition"),
            Refused("precondition"),
            Refused("precondition"),
            Refused("precondition"),
        ],
    ),
];

#[test]
fn every_state_and_command() {
    let routes = offer_c();
    for (state, row) in TABLE {
        for (command, expect) in commands().iter().zip(row) {
            let before = ticket(state);
            let got = run(&before, command, &routes);
            let case = format!("{state:?} × {command:?}: expected {expect:?}, got {got:?}");
            match (expect, got) {
                (Moves(after, kinds), Ok(t)) => {
                    assert_eq!(t.ticket.state, after, "{case}");
                    let got: Vec<EventKind> = t.events.iter().map(|e| e.kind).collect();
                    assert_eq!(got, kinds, "{case}");
                    let seqs: Vec<u64> = t.events.iter().map(|e| e.seq).collect();
                    assert_eq!(seqs, (5..5 + kinds.len() as u64).collect::<Vec<_>>());
                    if after == S::Offered && !kinds.is_empty() {
                        assert_eq!(t.ticket.assignee.as_deref(), Some("c"), "{case}");
                    }
                }
                (Refused(kind), Err(e)) => assert_eq!(kind_of(&e), kind, "{case}: {e}"),
                _ => panic!("{case}"),
            }
        }
    }
}

#[test]
fn another_responders_commands_are_refused() {
    let routes = offer_c();
    for state in [S::Offered, S::Accepted, S::Resolved] {
        for by_b in [
            Command::Accept { by: by("b") },
            Command::Resolve {
                by: by("b"),
                answer: "x".into(),
            },
            Command::Escalate {
                by: by("b"),
                reason: String::new(),
            },
        ] {
            let e = run(&ticket(state), &by_b, &routes).unwrap_err();
            assert_eq!(kind_of(&e), "permission", "{state:?} {by_b:?}: {e}");
        }
    }
}

#[test]
fn an_accepted_offer_names_the_responder_and_clears_the_deadline() {
    let t = run(
        &ticket(S::Offered),
        &Command::Accept { by: by("a") },
        &Routes::default(),
    )
    .unwrap();
    assert_eq!(t.ticket.offer_deadline_ms, None);
    assert_eq!(t.ticket.updated_at_ms, NOW);
    let e = &t.events[0];
    assert_eq!(e.actor, Actor::Responder(by("a")));
    assert_eq!(e.talent_id.as_deref(), Some("a"));
    assert_eq!((e.at_ms, e.state), (NOW, S::Accepted));
}

#[test]
fn a_submission_is_offered_with_a_deadline() {
    let mut new = ticket(S::Queued);
    new.offers_in_tier = 0;
    let t = run(&new, &Command::Submit, &offer_c()).unwrap();
    let kinds: Vec<EventKind> = t.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [E::Submitted, E::Offered]);
    assert_eq!(t.events[0].actor, Actor::Farmer);
    assert_eq!(t.ticket.offers_in_tier, 1);
    assert_eq!(t.ticket.offer_deadline_ms, Some(NOW + 600_000));
}

#[test]
fn busy_responders_queue_the_ticket_once() {
    let busy = Routes {
        unqualified: None,
        picks: vec![(Tier::Village, Pick::Busy)],
    };
    let declined = Command::Decline {
        by: by("a"),
        reason: String::new(),
    };
    let t = run(&ticket(S::Offered), &declined, &busy).unwrap();
    assert_eq!(t.ticket.state, S::Queued);
    assert_eq!(t.ticket.assignee, None);
    let kinds: Vec<EventKind> = t.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [E::Declined, E::Queued]);
    // Draining a still-busy queue records nothing.
    let again = run(&t.ticket, &Command::Drain, &busy).unwrap();
    assert!(again.events.is_empty());
    assert_eq!(again.ticket.state, S::Queued);
}

#[test]
fn nobody_left_at_a_tier_escalates_until_someone_or_unroutable() {
    let picks = |city: Pick| Routes {
        unqualified: None,
        picks: vec![
            (Tier::Village, Pick::Nobody),
            (Tier::CountyTown, Pick::Nobody),
            (Tier::City, city),
        ],
    };
    let lapsed = run(
        &ticket(S::Offered),
        &Command::OfferTimedOut,
        &picks(Pick::Offer(by("d"))),
    )
    .unwrap();
    let kinds: Vec<EventKind> = lapsed.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [E::OfferTimedOut, E::Escalated, E::Escalated, E::Offered]
    );
    assert_eq!(lapsed.ticket.tier, Tier::City);
    assert_eq!(lapsed.ticket.assignee.as_deref(), Some("d"));

    let gone = run(
        &ticket(S::Offered),
        &Command::OfferTimedOut,
        &picks(Pick::Nobody),
    )
    .unwrap();
    assert_eq!(gone.ticket.state, S::Unroutable);
    assert_eq!(gone.ticket.reason, "所有合格专家均已谢绝或未在时限内接单");
}

#[test]
fn a_tier_that_had_its_offers_escalates_before_rerouting() {
    let mut offered = ticket(S::Offered);
    offered.offers_in_tier = 3;
    let command = Command::Decline {
        by: by("a"),
        reason: String::new(),
    };
    let config = DispatchConfig::default();
    assert_eq!(
        routing_from(&offered, &command, NOW, &config),
        Some(Tier::CountyTown)
    );
    let routes = Routes {
        unqualified: None,
        picks: vec![(Tier::CountyTown, Pick::Offer(by("c")))],
    };
    let t = run(&offered, &command, &routes).unwrap();
    let kinds: Vec<EventKind> = t.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [E::Declined, E::Escalated, E::Offered]);
    assert_eq!(
        (t.ticket.tier, t.ticket.offers_in_tier),
        (Tier::CountyTown, 1)
    );
}

#[test]
fn unqualified_routing_makes_the_ticket_unroutable() {
    let routes = Routes::unqualified("花名册中没有苹果方面的专长人员".into());
    let t = run(&ticket(S::Queued), &Command::Submit, &routes).unwrap();
    assert_eq!(t.ticket.state, S::Unroutable);
    assert_eq!(
        t.events.last().unwrap().reason,
        "花名册中没有苹果方面的专长人员"
    );
}

#[test]
fn escalating_from_the_city_tier_is_refused() {
    let mut top = ticket(S::Accepted);
    top.tier = Tier::City;
    let command = Command::Escalate {
        by: by("a"),
        reason: String::new(),
    };
    let e = run(&top, &command, &offer_c()).unwrap_err();
    assert_eq!(kind_of(&e), "precondition");
    assert_eq!(
        routing_from(&top, &command, NOW, &DispatchConfig::default()),
        None
    );
}

#[test]
fn an_offer_not_yet_due_does_not_lapse() {
    let mut offered = ticket(S::Offered);
    offered.offer_deadline_ms = Some(NOW + 1);
    let t = run(&offered, &Command::OfferTimedOut, &Routes::default()).unwrap();
    assert!(t.events.is_empty());
    assert_eq!(t.ticket.assignee.as_deref(), Some("a"));
}

#[test]
fn a_notified_offer_waits_its_own_timeout() {
    let config = DispatchConfig {
        notified_offer_timeout: Some(Duration::from_secs(1800)),
        ..DispatchConfig::default()
    };
    let offer = |pick: Pick, now_ms: i64, ticket: &Ticket, command: &Command| {
        let routes = Routes {
            unqualified: None,
            picks: vec![(Tier::Village, pick)],
        };
        let cx = Context {
            now_ms,
            last_seq: 4,
            routes: &routes,
            config: &config,
        };
        step(ticket, command, &cx).unwrap()
    };
    let queued = ticket(S::Queued);
    let notified = offer(Pick::Notify(by("c")), NOW, &queued, &Command::Drain).ticket;
    assert_eq!(notified.offer_deadline_ms, Some(NOW + 1_800_000));
    let online = offer(Pick::Offer(by("c")), NOW, &queued, &Command::Drain).ticket;
    let usual = config.offer_timeout.as_millis() as i64;
    assert_eq!(online.offer_deadline_ms, Some(NOW + usual));
    // It lapses at its own deadline, saying how long it waited.
    let at = NOW + 1_800_000;
    let lapsed = offer(Pick::Offer(by("d")), at, &notified, &Command::OfferTimedOut);
    assert_eq!(lapsed.events[0].kind, E::OfferTimedOut);
    assert_eq!(lapsed.events[0].reason, "1800秒内未接单");
    assert_eq!(lapsed.ticket.assignee.as_deref(), Some("d"));
}

#[test]
fn only_a_resolved_ticket_is_rated_and_only_once() {
    let (routes, config) = (Routes::default(), DispatchConfig::default());
    let cx = Context {
        now_ms: NOW,
        last_seq: 4,
        routes: &routes,
        config: &config,
    };
    let rating = Rating {
        stars: 4,
        comment: "管用".into(),
    };
    for state in S::ALL.into_iter().filter(|s| *s != S::Resolved) {
        let refused = rate(&ticket(state), rating.clone(), &cx);
        assert!(
            matches!(refused, Err(Error::FailedPrecondition(_))),
            "{state:?}: {refused:?}"
        );
    }
    let rated = rate(&ticket(S::Resolved), rating.clone(), &cx).unwrap();
    assert_eq!(rated.ticket.rating, Some(rating.clone()));
    assert_eq!(rated.ticket.state, S::Resolved);
    assert_eq!(rated.ticket.updated_at_ms, NOW);
    let [e] = &rated.events[..] else {
        panic!("one event: {:?}", rated.events)
    };
    assert_eq!((e.kind, e.seq, e.at_ms), (E::Rated, 5, NOW));
    assert_eq!(
        (&e.actor, e.talent_id.as_deref()),
        (&Actor::Farmer, Some("a"))
    );
    assert_eq!((e.stars, e.reason.as_str()), (Some(4), "管用"));
    let again = rate(&rated.ticket, rating, &cx);
    assert!(matches!(again, Err(Error::AlreadyExists(_))), "{again:?}");
}
