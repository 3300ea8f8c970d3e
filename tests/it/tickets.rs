//! Tickets and live routing over gRPC: offers, declines, acceptance and
//! answers as the farmer and the responders see them live; timeouts and
//! escalation; capacity and the queue; idempotency; permissions; liaisons;
//! re-routing after a roster change; restarts.

use crate::common::*;
use tonic::Code;
use xingweinong::pb;

/// Apple people at growing distance from (35.0, 109.5), one per tier above.
const ROSTER: &str = "\
v1,村一,13900000011,village,,苹果,苹果腐烂病,610527106202,35.000,109.500,2,true
v2,村二,13900000012,village,,苹果,,610527106203,35.010,109.500,2,true
v3,村三,13900000013,village,,苹果,,610527106203,35.020,109.500,1,true
t1,县一,13900000021,county_town,果树,苹果,,610527106000,35.050,109.500,3,true
c1,市一,13900000031,city,果树,苹果,,610500000000,35.100,109.500,3,true
w1,麦一,13900000041,village,,小麦,,610527106202,35.000,109.500,2,true
";

fn farmer_at() -> Option<pb::Location> {
    at_point(35.0, 109.5)
}

async fn start(
    tag: &str,
    tweak: impl FnOnce(&mut xingweinong::config::Config),
) -> (TestServer, tonic::transport::Channel) {
    let dir = temp_dir(tag);
    let mut cfg = config(&dir);
    tweak(&mut cfg);
    let server = TestServer::start(cfg).await;
    let channel = server.channel().await;
    import_rows(&channel, ROSTER).await;
    (server, channel)
}

fn kinds(events: &[pb::TicketEvent]) -> Vec<pb::TicketEventKind> {
    events.iter().map(|e| e.kind()).collect()
}

#[tokio::test]
async fn submit_offer_decline_accept_resolve_seen_live() {
    use pb::TicketEventKind as K;
    let (server, channel) = start("flow", |_| {}).await;
    let mut v1 = Responder::new(&channel, "v1").await;
    let mut v2 = Responder::new(&channel, "v2").await;
    v1.online().await;
    v2.online().await;
    let mut v1_stream = v1.watch().await;
    let mut v2_stream = v2.watch().await;
    let mut farmer = TicketClient::new(channel.clone());
    let (ticket, mut watch) = the_nearest_is_offered_and_the_farmer_watches(&mut farmer).await;
    let offer = next(&mut v1_stream).await;
    assert_eq!(offer.event.as_ref().unwrap().kind(), K::Offered);
    assert_eq!(offer.ticket.as_ref().unwrap().id, ticket.id);
    assert!(
        offer.ticket.as_ref().unwrap().contact.is_empty(),
        "contact only after acceptance"
    );
    a_decline_moves_the_offer_on(&mut v1, &mut v2, &mut v1_stream, &mut v2_stream, &ticket).await;
    the_acceptor_sees_the_contact_and_answers(&mut v2, &ticket).await;
    the_farmer_saw_every_step(&mut farmer, &mut watch, &ticket).await;
    a_wrong_secret_never_reads_the_ticket(&mut farmer, &ticket).await;
    server.stop_and_clean().await;
}

/// Submits the apple ticket: it is offered to v1 (no phone shown) and the
/// farmer's watch starts with Submitted and Offered.
async fn the_nearest_is_offered_and_the_farmer_watches(
    farmer: &mut TicketClient,
) -> (pb::Ticket, tonic::Streaming<pb::TicketEvent>) {
    use pb::TicketEventKind as K;
    let ticket = farmer
        .submit_problem(submit_request("苹果树腐烂病又犯了", farmer_at(), ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ticket.state(), pb::TicketState::Offered);
    assert_eq!(ticket.assignee.as_ref().unwrap().id, "v1");
    assert!(ticket.assignee.as_ref().unwrap().phone.is_empty());
    assert!(!ticket.ticket_secret.is_empty());
    let mut watch = farmer
        .watch_ticket(pb::WatchTicketRequest {
            ticket_id: ticket.id.clone(),
            ticket_secret: ticket.ticket_secret.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut watch).await.kind(), K::Submitted);
    assert_eq!(next(&mut watch).await.kind(), K::Offered);
    (ticket, watch)
}

/// v2 may not act on a ticket offered to v1; v1 declines, the offer moves
/// to v2, and v1 can never take this ticket again.
async fn a_decline_moves_the_offer_on(
    v1: &mut Responder,
    v2: &mut Responder,
    v1_stream: &mut tonic::Streaming<pb::AssignmentEvent>,
    v2_stream: &mut tonic::Streaming<pb::AssignmentEvent>,
    ticket: &pb::Ticket,
) {
    use pb::TicketEventKind as K;
    assert_eq!(
        v2.accept(&ticket.id).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    v1.decline(&ticket.id).await.unwrap();
    let declined = next(v1_stream).await;
    assert_eq!(declined.event.unwrap().kind(), K::Declined);
    let offer = next(v2_stream).await;
    assert_eq!(offer.event.as_ref().unwrap().kind(), K::Offered);
    // v1 declined: it can never take this ticket again.
    assert_eq!(
        v1.accept(&ticket.id).await.unwrap_err().code(),
        Code::PermissionDenied
    );
}

/// v2 accepts and sees the contact; it cannot accept twice nor resolve
/// with a blank answer, then resolves.
async fn the_acceptor_sees_the_contact_and_answers(v2: &mut Responder, ticket: &pb::Ticket) {
    let accepted = v2.accept(&ticket.id).await.unwrap();
    assert_eq!(accepted.state(), pb::TicketState::Accepted);
    assert_eq!(
        accepted.contact, "13700000000",
        "the accepting responder sees the contact"
    );
    assert_eq!(
        v2.accept(&ticket.id).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    assert_eq!(
        v2.resolve(&ticket.id, " ").await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let resolved = v2
        .resolve(&ticket.id, "刮除病斑后涂甲硫萘乙酸")
        .await
        .unwrap();
    assert_eq!(resolved.state(), pb::TicketState::Resolved);
}

/// The farmer's watch and the stored ticket show every step, numbered.
async fn the_farmer_saw_every_step(
    farmer: &mut TicketClient,
    watch: &mut tonic::Streaming<pb::TicketEvent>,
    ticket: &pb::Ticket,
) {
    use pb::TicketEventKind as K;
    for want in [K::Declined, K::Offered, K::Accepted, K::Resolved] {
        assert_eq!(next(watch).await.kind(), want);
    }
    let got = fetch(farmer, ticket).await;
    assert_eq!(got.answer, "刮除病斑后涂甲硫萘乙酸");
    assert_eq!(
        kinds(&got.history),
        [
            K::Submitted,
            K::Offered,
            K::Declined,
            K::Offered,
            K::Accepted,
            K::Resolved
        ]
    );
    let (created, updated) = (got.created_at.unwrap(), got.updated_at.unwrap());
    assert!(
        created.seconds > 1_700_000_000 && updated.seconds >= created.seconds,
        "{created:?} {updated:?}"
    );
    let seqs: Vec<u64> = got.history.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
}

/// A wrong secret never reads the ticket; an unknown ticket is not found.
async fn a_wrong_secret_never_reads_the_ticket(farmer: &mut TicketClient, ticket: &pb::Ticket) {
    for secret in [
        "",
        "0000",
        &ticket.ticket_secret[..ticket.ticket_secret.len() - 1],
    ] {
        let err = farmer
            .get_ticket(pb::GetTicketRequest {
                ticket_id: ticket.id.clone(),
                ticket_secret: secret.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    let err = farmer
        .watch_ticket(pb::WatchTicketRequest {
            ticket_id: ticket.id.clone(),
            ticket_secret: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = farmer
        .get_ticket(pb::GetTicketRequest {
            ticket_id: "tk-none".into(),
            ticket_secret: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn offers_time_out_and_escalate_through_the_tiers() {
    use pb::TicketEventKind as K;
    let (server, channel) = start("timeout", |c| {
        c.tickets.offer_timeout_ms = 300;
        c.tickets.escalate_after = 2;
    })
    .await;
    for id in ["v1", "v2", "v3", "t1", "c1"] {
        Responder::new(&channel, id).await.online().await;
    }
    let mut t1 = Responder::new(&channel, "t1").await;
    let mut t1_stream = t1.watch().await;
    let mut farmer = TicketClient::new(channel.clone());
    let ticket = farmer
        .submit_problem(submit_request("苹果树叶子发黄", farmer_at(), ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ticket.assignee.as_ref().unwrap().id, "v1");

    // v1 and v2 let the offer lapse: two offers at the village tier, so the
    // ticket moves up to county/town (v3 is skipped) and t1 gets it.
    let offer = next(&mut t1_stream).await;
    assert_eq!(offer.event.as_ref().unwrap().kind(), K::Offered);
    assert_eq!(offer.ticket.as_ref().unwrap().tier(), pb::Tier::CountyTown);
    let got = fetch(&mut farmer, &ticket).await;
    assert_eq!(
        kinds(&got.history),
        [
            K::Submitted,
            K::Offered,
            K::OfferTimedOut,
            K::Offered,
            K::OfferTimedOut,
            K::Escalated,
            K::Offered
        ]
    );
    let offered: Vec<String> = got
        .history
        .iter()
        .filter(|e| e.kind() == K::Offered)
        .map(|e| e.talent.clone().unwrap().id)
        .collect();
    assert_eq!(offered, ["v1", "v2", "t1"]);

    // t1 accepts, then escalates by hand: the city tier takes over.
    t1.accept(&ticket.id).await.unwrap();
    let up = t1.escalate(&ticket.id).await.unwrap();
    assert_eq!(up.tier(), pb::Tier::City);
    assert_eq!(up.assignee.unwrap().id, "c1");
    let mut c1 = Responder::new(&channel, "c1").await;
    c1.accept(&ticket.id).await.unwrap();
    assert_eq!(
        c1.escalate(&ticket.id).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    server.stop_and_clean().await;
}

#[tokio::test]
async fn full_capacity_queues_and_freed_capacity_offers_the_oldest() {
    let (server, channel) = start("queue", |_| {}).await;
    let mut v3 = Responder::new(&channel, "v3").await; // capacity 1
    v3.online().await;
    let mut stream = v3.watch().await;
    let mut farmer = TicketClient::new(channel.clone());
    let a = farmer
        .submit_problem(submit_request("苹果树流胶", farmer_at(), ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.assignee.unwrap().id, "v3");
    let b = farmer
        .submit_problem(submit_request("苹果落果严重", farmer_at(), ""))
        .await
        .unwrap()
        .into_inner();
    let c = farmer
        .submit_problem(submit_request("苹果裂果", farmer_at(), ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b.state(), pb::TicketState::Queued);
    assert_eq!(c.state(), pb::TicketState::Queued);
    assert!(!b.reason.is_empty());
    next(&mut stream).await; // the offer of a
    v3.accept(&a.id).await.unwrap();
    next(&mut stream).await; // accepted
    v3.resolve(&a.id, "疏果").await.unwrap();
    next(&mut stream).await; // resolved
    let offer = next(&mut stream).await;
    assert_eq!(
        offer.ticket.unwrap().id,
        b.id,
        "the oldest queued ticket comes first"
    );

    // A responder coming online takes the next one.
    let mut v1 = Responder::new(&channel, "v1").await;
    let mut v1_stream = v1.watch().await;
    v1.online().await;
    let offer = next(&mut v1_stream).await;
    assert_eq!(offer.ticket.unwrap().id, c.id);
    server.stop_and_clean().await;
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_ticket() {
    let (server, channel) = start("idem", |_| {}).await;
    let mut farmer = TicketClient::new(channel.clone());
    let one = farmer
        .submit_problem(submit_request("苹果树腐烂病", farmer_at(), "key-1"))
        .await
        .unwrap()
        .into_inner();
    let two = farmer
        .submit_problem(submit_request("苹果树腐烂病", farmer_at(), "key-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.id, two.id);
    assert_eq!(one.ticket_secret, two.ticket_secret);
    let three = farmer
        .submit_problem(submit_request("苹果树腐烂病", farmer_at(), "key-2"))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(one.id, three.id);
    let mut roster = RosterClient::new(channel.clone());
    let list = roster
        .list_tickets(admin(pb::ListTicketsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.tickets.len(), 2);
    server.stop_and_clean().await;
}

#[tokio::test]
async fn unroutable_tickets_are_visible_to_admins() {
    let (server, channel) = start("unroutable", |_| {}).await;
    let mut farmer = TicketClient::new(channel.clone());
    // Nobody in this roster covers livestock.
    let t = farmer
        .submit_problem(submit_request("驴不吃草还拉稀", farmer_at(), ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.state(), pb::TicketState::Unroutable);
    assert!(t.reason.contains("没有"), "{}", t.reason);
    let not_agri = farmer
        .submit_problem(submit_request("你好在吗", farmer_at(), ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(not_agri.state(), pb::TicketState::Unroutable);
    let mut roster = RosterClient::new(channel.clone());
    let list = roster
        .list_tickets(admin(pb::ListTicketsRequest {
            state: pb::TicketState::Unroutable as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = list.tickets.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, [not_agri.id.as_str(), t.id.as_str()], "newest first");
    let err = roster
        .list_tickets(pb::ListTicketsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    server.stop_and_clean().await;
}

#[tokio::test]
async fn a_report_that_names_nothing_asks_for_it_and_goes_to_triage() {
    let (server, channel) = start("triage", |_| {}).await;
    let text = "这是什么病？叶子发黄是咋回事";
    let matched = MatchClient::new(channel.clone())
        .match_problem(pb::MatchProblemRequest {
            text: text.into(),
            location: farmer_at(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let analysis = matched.analysis.unwrap();
    let missing = analysis.missing.expect("the reply says what is missing");
    assert_eq!(
        (missing.what.as_str(), missing.prompt.as_str()),
        ("crop_or_animal", "请说明是什么作物或牲畜")
    );
    assert!(analysis.agricultural && matched.candidates.is_empty());
    // The village people are nearer and online, but triage starts with the
    // county/town backbone staff.
    let mut v1 = Responder::new(&channel, "v1").await;
    let mut t1 = Responder::new(&channel, "t1").await;
    v1.online().await;
    t1.online().await;
    let mut farmer = TicketClient::new(channel.clone());
    let t = farmer
        .submit_problem(submit_request(text, farmer_at(), ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.state(), pb::TicketState::Offered, "{}", t.reason);
    assert_eq!(t.assignee.map(|a| a.id).as_deref(), Some("t1"));
    server.stop_and_clean().await;
}

#[tokio::test]
async fn responder_calls_need_a_valid_token_of_the_right_kind() {
    let (server, channel) = start("respauth", |_| {}).await;
    let mut client = ResponderClient::new(channel.clone());
    let err = client
        .set_availability(pb::SetAvailabilityRequest { availability: 1 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = client
        .set_availability(with_token(
            pb::SetAvailabilityRequest { availability: 1 },
            "xwn1.00.00",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // The admin token is no responder token.
    let err = client
        .set_availability(admin(pb::SetAvailabilityRequest { availability: 1 }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut roster = RosterClient::new(channel.clone());
    let err = roster
        .issue_responder_token(admin(pb::IssueResponderTokenRequest {
            talent_id: "nobody".into(),
            ttl_seconds: 0,
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    server.stop_and_clean().await;
}

#[tokio::test]
async fn liaisons_see_read_only_copies_of_their_villages_tickets() {
    use pb::TicketEventKind as K;
    let (server, channel) = start("liaison", |_| {}).await;
    let mut roster = RosterClient::new(channel.clone());
    let list = "id,name,phone,villages\nlz1,党员甲,13600000001,610527106202\n";
    roster
        .import_liaisons(admin(tokio_stream::iter(vec![csv_chunk(list)])))
        .await
        .unwrap();
    let mut liaison = Responder::new(&channel, "lz1").await;
    let mut stream = liaison.watch().await;
    let mut v1 = Responder::new(&channel, "v1").await;
    v1.online().await;

    let mut farmer = TicketClient::new(channel.clone());
    let here = Some(pb::Location {
        kind: Some(pb::location::Kind::DivisionCode("610527106202".into())),
    });
    let elsewhere = Some(pb::Location {
        kind: Some(pb::location::Kind::DivisionCode("610527106203".into())),
    });
    farmer
        .submit_problem(submit_request("苹果树叶子黄", elsewhere, ""))
        .await
        .unwrap();
    let t = farmer
        .submit_problem(submit_request("苹果腐烂病", here, ""))
        .await
        .unwrap()
        .into_inner();
    let copy = next(&mut stream).await;
    assert!(copy.read_only);
    assert_eq!(
        copy.ticket.as_ref().unwrap().id,
        t.id,
        "only tickets from its villages"
    );
    assert_eq!(copy.event.as_ref().unwrap().kind(), K::Submitted);
    assert_eq!(next(&mut stream).await.event.unwrap().kind(), K::Offered);
    v1.accept(&t.id).await.unwrap();
    let copy = next(&mut stream).await;
    assert_eq!(copy.event.unwrap().kind(), K::Accepted);
    assert!(copy.ticket.unwrap().contact.is_empty());
    assert_eq!(
        liaison.accept(&t.id).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(
        liaison
            .client
            .set_availability(with_token(
                pb::SetAvailabilityRequest { availability: 1 },
                &liaison.token
            ))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    server.stop_and_clean().await;
}

#[tokio::test]
async fn removing_a_responder_reroutes_its_open_tickets() {
    use pb::TicketEventKind as K;
    let (server, channel) = start("reroute", |_| {}).await;
    let mut v1 = Responder::new(&channel, "v1").await;
    let mut v2 = Responder::new(&channel, "v2").await;
    v1.online().await;
    v2.online().await;
    let mut v2_stream = v2.watch().await;
    let mut farmer = TicketClient::new(channel.clone());
    let t = farmer
        .submit_problem(submit_request("苹果腐烂病", farmer_at(), ""))
        .await
        .unwrap()
        .into_inner();
    v1.accept(&t.id).await.unwrap();
    let mut roster = RosterClient::new(channel.clone());
    roster
        .remove_talents(admin(pb::RemoveTalentsRequest {
            ids: vec!["v1".into()],
        }))
        .await
        .unwrap();
    let offer = next(&mut v2_stream).await;
    assert_eq!(offer.ticket.as_ref().unwrap().id, t.id);
    let got = fetch(&mut farmer, &t).await;
    assert_eq!(
        kinds(&got.history),
        [
            K::Submitted,
            K::Offered,
            K::Accepted,
            K::Rerouted,
            K::Offered
        ]
    );
    server.stop_and_clean().await;
}

#[tokio::test]
async fn a_restart_keeps_tickets_and_resumes_offer_timers() {
    use pb::TicketEventKind as K;
    let dir = temp_dir("restart");
    let mut cfg = config(&dir);
    cfg.tickets.offer_timeout_ms = 1500;
    let server = TestServer::start(cfg.clone()).await;
    let channel = server.channel().await;
    import_rows(&channel, ROSTER).await;
    for id in ["v1", "v2"] {
        Responder::new(&channel, id).await.online().await;
    }
    let v2_token = token_for(&channel, "v2").await;
    let mut farmer = TicketClient::new(channel.clone());
    let t = farmer
        .submit_problem(submit_request("苹果腐烂病", farmer_at(), ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.assignee.as_ref().unwrap().id, "v1");
    server.stop().await;

    let server = TestServer::start(cfg).await;
    let channel = server.channel().await;
    let mut v2 = Responder {
        id: "v2".into(),
        token: v2_token,
        client: ResponderClient::new(channel.clone()),
    };
    let mut stream = v2.watch().await;
    // The stored deadline fires after the restart: the offer moves to v2.
    let offer = next(&mut stream).await;
    assert_eq!(offer.ticket.as_ref().unwrap().id, t.id);
    let mut farmer = TicketClient::new(channel.clone());
    let got = fetch(&mut farmer, &t).await;
    assert_eq!(
        kinds(&got.history),
        [K::Submitted, K::Offered, K::OfferTimedOut, K::Offered]
    );
    server.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}
