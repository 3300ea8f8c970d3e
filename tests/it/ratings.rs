//! Ratings and responder figures over gRPC and Connect JSON: a farmer
//! rates a resolved answer once (refused before it is resolved, twice,
//! with bad stars or comment, with a wrong secret), the rating is the last
//! event of the ticket's history, seen by the farmer's watch and by the
//! responder who answered; an admin's `ResponderFigures` gives the counts,
//! medians, shares and means the tickets' own event times make.

use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;
use xingweinong::pb;

use crate::common::*;

/// Two apple responders near (35.0, 109.5), v1 the nearer.
pub(crate) const ROSTER: &str = "\
v1,村一,13900000011,village,,苹果,苹果腐烂病,610527106202,35.000,109.500,2,true
v2,村二,13900000012,village,,苹果,,610527106203,35.010,109.500,2,true
";

async fn start(tag: &str) -> (TestServer, tonic::transport::Channel) {
    let server = TestServer::start(config(&temp_dir(tag))).await;
    let channel = server.channel().await;
    import_rows(&channel, ROSTER).await;
    (server, channel)
}

pub(crate) fn rate(ticket: &pb::Ticket, stars: u32, comment: &str) -> pb::RateAnswerRequest {
    pb::RateAnswerRequest {
        ticket_id: ticket.id.clone(),
        ticket_secret: ticket.ticket_secret.clone(),
        stars,
        comment: comment.into(),
    }
}

/// The field a refusal's `BadRequest` names.
fn field_of(status: &tonic::Status) -> String {
    let details = status.get_error_details();
    let violations = details
        .bad_request()
        .expect("a BadRequest")
        .field_violations
        .clone();
    violations[0].field.clone()
}

/// Submits an apple problem; it is offered to `by`, who accepts and
/// (when `answer`) resolves it. Returns the ticket as submitted.
pub(crate) async fn answered(
    farmer: &mut TicketClient,
    by: &mut Responder,
    answer: bool,
) -> pb::Ticket {
    let ticket = farmer
        .submit_problem(submit_request(
            "苹果树腐烂病又犯了",
            at_point(35.0, 109.5),
            "",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ticket.assignee.as_ref().unwrap().id, by.id);
    by.accept(&ticket.id).await.unwrap();
    if answer {
        by.resolve(&ticket.id, "刮除病斑后涂药").await.unwrap();
    }
    ticket
}

#[tokio::test]
async fn a_resolved_answer_is_rated_once_over_grpc() {
    use pb::TicketEventKind as K;
    let (server, channel) = start("rate-grpc").await;
    let mut v1 = Responder::new(&channel, "v1").await;
    v1.online().await;
    let mut v1_stream = v1.watch().await;
    let mut farmer = TicketClient::new(channel.clone());
    let ticket = answered(&mut farmer, &mut v1, false).await;

    let early = farmer.rate_answer(rate(&ticket, 5, "")).await.unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition, "{early:?}");
    assert!(early.message().contains("尚未解答"), "{}", early.message());
    v1.resolve(&ticket.id, "刮除病斑后涂药").await.unwrap();

    for stars in [0, 6, 100] {
        let bad = farmer
            .rate_answer(rate(&ticket, stars, ""))
            .await
            .unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument, "{stars}: {bad:?}");
        assert_eq!(field_of(&bad), "stars");
    }
    let controls = farmer
        .rate_answer(rate(&ticket, 4, "好\u{1b}[31m"))
        .await
        .unwrap_err();
    assert_eq!(controls.code(), Code::InvalidArgument);
    assert_eq!(field_of(&controls), "comment");
    let long = farmer
        .rate_answer(rate(&ticket, 4, &"好".repeat(501)))
        .await
        .unwrap_err();
    assert_eq!(field_of(&long), "comment");
    let mut wrong = rate(&ticket, 4, "");
    wrong.ticket_secret = "0".repeat(ticket.ticket_secret.len());
    let wrong = farmer.rate_answer(wrong).await.unwrap_err();
    let got = farmer
        .get_ticket(pb::GetTicketRequest {
            ticket_id: ticket.id.clone(),
            ticket_secret: "0".repeat(ticket.ticket_secret.len()),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), got.code(), "as GetTicket refuses");
    assert_eq!(wrong.code(), Code::PermissionDenied);

    let rated = farmer
        .rate_answer(rate(&ticket, 4, " 很管用，谢谢 "))
        .await
        .unwrap()
        .into_inner();
    let rating = rated.rating.clone().expect("the rating on the ticket");
    assert_eq!((rating.stars, rating.comment.as_str()), (4, "很管用，谢谢"));
    let last = rated.history.last().unwrap();
    assert_eq!(last.kind(), K::Rated);
    assert_eq!((last.stars, last.reason.as_str()), (4, "很管用，谢谢"));
    assert_eq!(last.actor, "farmer");
    assert_eq!(last.talent.as_ref().unwrap().id, "v1");
    assert_eq!(last.state(), pb::TicketState::Resolved);

    let twice = farmer.rate_answer(rate(&ticket, 1, "")).await.unwrap_err();
    assert_eq!(twice.code(), Code::AlreadyExists, "{twice:?}");
    assert!(twice.message().contains("已评价"), "{}", twice.message());

    let seen = fetch(&mut farmer, &ticket).await;
    assert_eq!(seen.rating, Some(rating.clone()), "once, the first rating");
    assert_eq!(seen.history.last(), Some(last));
    let ratings = seen.history.iter().filter(|e| e.kind() == K::Rated);
    assert_eq!(ratings.count(), 1);

    // The responder who answered sees the rating on their ticket.
    let pushed = loop {
        let push = next(&mut v1_stream).await;
        if push.event.as_ref().unwrap().kind() == K::Rated {
            break push;
        }
    };
    assert_eq!(pushed.ticket.unwrap().rating, Some(rating));
    assert_eq!(pushed.event.unwrap().stars, 4);
    server.stop_and_clean().await;
}

#[tokio::test]
async fn rating_over_connect_json() {
    let (server, channel) = start("rate-connect").await;
    let mut v1 = Responder::new(&channel, "v1").await;
    v1.online().await;
    let mut farmer = TicketClient::new(channel.clone());
    let ticket = answered(&mut farmer, &mut v1, true).await;
    let body = |stars: u32| json!({"ticketId": ticket.id, "ticketSecret": ticket.ticket_secret, "stars": stars, "comment": "有用"});
    let bad = connect_json(server.addr, "TicketService/RateAnswer", body(9), false).await;
    assert_eq!(bad.0, 400, "{}", bad.1);
    assert_eq!(bad.1["code"], "invalid_argument");
    assert!(
        bad.1["message"].as_str().unwrap().starts_with("stars:"),
        "{}",
        bad.1
    );
    let ok = connect_json(server.addr, "TicketService/RateAnswer", body(5), false).await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    assert_eq!(ok.1["rating"], json!({"stars": 5, "comment": "有用"}));
    let history = ok.1["history"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["kind"], "TICKET_EVENT_KIND_RATED");
    assert_eq!(history.last().unwrap()["stars"], 5);
    let twice = connect_json(server.addr, "TicketService/RateAnswer", body(3), false).await;
    assert_eq!(
        (twice.0, twice.1["code"].as_str()),
        (409, Some("already_exists"))
    );

    let figures = connect_json(
        server.addr,
        "RosterService/ResponderFigures",
        json!({}),
        true,
    )
    .await;
    assert_eq!(figures.0, 200, "{}", figures.1);
    assert_eq!(figures.1["figures"][0]["talentId"], "v1");
    assert_eq!(figures.1["figures"][0]["meanRating"], 5.0);
    let anonymous = connect_json(
        server.addr,
        "RosterService/ResponderFigures",
        json!({}),
        false,
    )
    .await;
    assert_eq!(anonymous.0, 401, "admins only: {}", anonymous.1);
    server.stop_and_clean().await;
}

#[tokio::test]
async fn rating_over_grpc_web() {
    let (server, channel) = start("rate-grpc-web").await;
    let mut v1 = Responder::new(&channel, "v1").await;
    v1.online().await;
    let mut farmer = TicketClient::new(channel.clone());
    let ticket = answered(&mut farmer, &mut v1, true).await;
    let addr = server.addr;
    let call = |r: pb::RateAnswerRequest| async move {
        crate::web::grpc_web(addr, "TicketService/RateAnswer", &r).await
    };

    let (messages, status, message) = call(rate(&ticket, 0, "")).await;
    assert!(messages.is_empty());
    assert_eq!(
        status,
        (Code::InvalidArgument as i32).to_string(),
        "{message}"
    );
    assert!(message.starts_with("stars"), "{message}");
    let mut wrong = rate(&ticket, 4, "");
    wrong.ticket_secret = "0".repeat(ticket.ticket_secret.len());
    let (_, status, _) = call(wrong).await;
    assert_eq!(status, (Code::PermissionDenied as i32).to_string());

    let (messages, status, message) = call(rate(&ticket, 4, "管用")).await;
    assert_eq!(status, "0", "{message}");
    assert_eq!(messages.len(), 1);
    let rated: pb::Ticket = prost::Message::decode(messages[0].clone()).unwrap();
    assert_eq!(
        rated.rating,
        Some(pb::Rating {
            stars: 4,
            comment: "管用".into()
        })
    );
    let last = rated.history.last().unwrap();
    assert_eq!((last.kind(), last.stars), (pb::TicketEventKind::Rated, 4));

    let (_, status, _) = call(rate(&ticket, 2, "")).await;
    assert_eq!(status, (Code::AlreadyExists as i32).to_string());
    assert_eq!(fetch(&mut farmer, &ticket).await.rating, rated.rating);
    server.stop_and_clean().await;
}

/// The milliseconds between the first events of `ticket`'s history of
/// kinds `from` and `to` about `talent`.
fn between(
    ticket: &pb::Ticket,
    talent: &str,
    from: pb::TicketEventKind,
    to: pb::TicketEventKind,
) -> i64 {
    let at = |kind| {
        ticket
            .history
            .iter()
            .rfind(|e| e.kind() == kind && e.talent.as_ref().is_some_and(|t| t.id == talent))
            .unwrap_or_else(|| panic!("no {kind:?} of {talent} in {ticket:?}"))
            .at_ms
    };
    at(to) - at(from)
}

fn median(mut v: Vec<i64>) -> i64 {
    v.sort_unstable();
    let n = v.len();
    match n % 2 {
        1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]).div_euclid(2),
    }
}

#[tokio::test]
async fn responder_figures_follow_the_tickets_history() {
    use pb::TicketEventKind as K;
    let (server, channel) = start("figures").await;
    let mut v1 = Responder::new(&channel, "v1").await;
    let mut v2 = Responder::new(&channel, "v2").await;
    v1.online().await;
    v2.online().await;
    let mut farmer = TicketClient::new(channel.clone());
    // Three tickets answered by v1, rated 5, 2 and not at all; a fourth
    // declined by v1 and answered by v2, rated 3.
    let mut by_v1 = Vec::new();
    for _ in 0..3 {
        by_v1.push(answered(&mut farmer, &mut v1, true).await);
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    }
    for (t, stars) in by_v1.iter().zip([5, 2]) {
        farmer.rate_answer(rate(t, stars, "")).await.unwrap();
    }
    let fourth = farmer
        .submit_problem(submit_request("苹果树腐烂病", at_point(35.0, 109.5), ""))
        .await
        .unwrap()
        .into_inner();
    v1.decline(&fourth.id).await.unwrap();
    v2.accept(&fourth.id).await.unwrap();
    v2.resolve(&fourth.id, "换药").await.unwrap();
    farmer.rate_answer(rate(&fourth, 3, "")).await.unwrap();

    let mut roster = RosterClient::new(channel.clone());
    let reply = roster
        .responder_figures(admin(pb::ResponderFiguresRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = reply.figures.iter().map(|f| f.talent_id.as_str()).collect();
    assert_eq!(ids, ["v1", "v2"], "most answered first");
    let mut histories = Vec::new();
    for t in &by_v1 {
        histories.push(fetch(&mut farmer, t).await);
    }
    let f1 = &reply.figures[0];
    assert_eq!((f1.name.as_str(), f1.tier()), ("村一", pb::Tier::Village));
    assert_eq!(
        (f1.county_code.as_str(), f1.county.as_str()),
        ("610527000000", "白水县")
    );
    assert_eq!(
        (f1.offers, f1.accepted, f1.declined, f1.lapsed),
        (4, 3, 1, 0)
    );
    assert_eq!(f1.answered, 3);
    assert_eq!(f1.declined_or_lapsed_share, 1.0 / 4.0);
    let accepts = histories
        .iter()
        .map(|t| between(t, "v1", K::Offered, K::Accepted));
    assert_eq!(f1.median_accept_ms, median(accepts.collect()));
    let resolves = histories
        .iter()
        .map(|t| between(t, "v1", K::Accepted, K::Resolved));
    assert_eq!(f1.median_resolve_ms, median(resolves.collect()));
    assert_eq!((f1.ratings, f1.mean_rating), (2, f64::from(5 + 2) / 2.0));
    let f2 = &reply.figures[1];
    assert_eq!(
        (f2.offers, f2.accepted, f2.answered, f2.ratings),
        (1, 1, 1, 1)
    );
    assert_eq!((f2.mean_rating, f2.declined_or_lapsed_share), (3.0, 0.0));

    // Subtotals: both are village responders of 白水县, so one row per
    // tier and one per county, over all five offers, four acceptances and
    // four answers — medians of the group's own times, not of the two
    // responders' medians — and the three ratings.
    let fourth = fetch(&mut farmer, &fourth).await;
    let accepts: Vec<i64> = (histories.iter())
        .map(|t| between(t, "v1", K::Offered, K::Accepted))
        .chain([between(&fourth, "v2", K::Offered, K::Accepted)])
        .collect();
    let resolves: Vec<i64> = (histories.iter())
        .map(|t| between(t, "v1", K::Accepted, K::Resolved))
        .chain([between(&fourth, "v2", K::Accepted, K::Resolved)])
        .collect();
    assert_eq!(reply.by_tier.len(), 1, "{:?}", reply.by_tier);
    assert_eq!(reply.by_county.len(), 1, "{:?}", reply.by_county);
    let (tier, county) = (&reply.by_tier[0], &reply.by_county[0]);
    assert_eq!((tier.tier(), tier.county.as_str()), (pb::Tier::Village, ""));
    assert_eq!(
        (
            county.tier(),
            county.county_code.as_str(),
            county.county.as_str()
        ),
        (pb::Tier::Unspecified, "610527000000", "白水县")
    );
    for sub in [tier, county] {
        assert_eq!((sub.talent_id.as_str(), sub.name.as_str()), ("", ""));
        assert_eq!(sub.responders, 2);
        assert_eq!(
            (sub.offers, sub.accepted, sub.declined, sub.lapsed),
            (5, 4, 1, 0)
        );
        assert_eq!(sub.answered, 4);
        assert_eq!(sub.declined_or_lapsed_share, 1.0 / 5.0);
        assert_eq!(sub.median_accept_ms, median(accepts.clone()));
        assert_eq!(sub.median_resolve_ms, median(resolves.clone()));
        assert_eq!(
            (sub.ratings, sub.mean_rating),
            (3, f64::from(5 + 2 + 3) / 3.0)
        );
    }
    assert_eq!((f1.responders, f2.responders), (1, 1));

    // Filters: a tier nobody here is of, a county by name, a window
    // before everything; a county that is not one is refused by name.
    let ask = |tier: pb::Tier, county: &str, to_ms: i64| pb::ResponderFiguresRequest {
        tier: tier as i32,
        county: county.into(),
        from_ms: 0,
        to_ms,
    };
    let figures = |r: pb::ResponderFiguresRequest| {
        let mut roster = roster.clone();
        async move { roster.responder_figures(admin(r)).await }
    };
    let city = figures(ask(pb::Tier::City, "", 0))
        .await
        .unwrap()
        .into_inner();
    assert!(city.figures.is_empty());
    assert!(city.by_tier.is_empty() && city.by_county.is_empty());
    let baishui = figures(ask(pb::Tier::Village, "白水县", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(baishui.figures.len(), 2);
    let by_code = figures(ask(pb::Tier::Unspecified, "610527", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_code.figures.len(), 2);
    let before = figures(ask(pb::Tier::Unspecified, "", 1))
        .await
        .unwrap()
        .into_inner();
    assert!(before.figures.is_empty());
    let nowhere = figures(ask(pb::Tier::Unspecified, "火星县", 0))
        .await
        .unwrap_err();
    assert_eq!(nowhere.code(), Code::InvalidArgument);
    assert_eq!(field_of(&nowhere), "county");
    let unauthenticated = RosterClient::new(channel.clone())
        .responder_figures(pb::ResponderFiguresRequest::default())
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    server.stop_and_clean().await;
}

/// A Connect unary call in JSON (with the admin token when `admin`): the
/// HTTP status and the JSON body.
async fn connect_json(
    addr: std::net::SocketAddr,
    method: &str,
    body: serde_json::Value,
    admin: bool,
) -> (u16, serde_json::Value) {
    let reply = match admin {
        true => crate::web::connect_admin(addr, method, body).await,
        false => crate::web::connect(addr, method, body).await,
    };
    (reply.status.as_u16(), reply.json())
}

/// Milliseconds as `xwn figures` prints them when under a minute.
fn seconds(ms: i64) -> String {
    assert!((1_000..60_000).contains(&ms), "{ms} ms: sleep longer");
    format!("{}s", ms / 1000)
}

/// The real `xwn figures` against a server: each responder's line and the
/// subtotals per tier and per county carry the counts, shares, medians and
/// means the tickets' own event times make. The responders wait over a
/// second before each step, so the medians show in whole seconds.
#[tokio::test]
async fn xwn_figures_prints_what_the_history_makes() {
    use pb::TicketEventKind as K;
    use std::time::Duration;
    let (server, channel) = start("figures-cli").await;
    let mut v1 = Responder::new(&channel, "v1").await;
    let mut v2 = Responder::new(&channel, "v2").await;
    v1.online().await;
    v2.online().await;
    let mut farmer = TicketClient::new(channel.clone());
    let report = || submit_request("苹果树腐烂病", at_point(35.0, 109.5), "");
    let wait = |ms| tokio::time::sleep(Duration::from_millis(ms));
    // v1 answers the first, rated 5; declines the second, which v2
    // answers, rated 2.
    let first = farmer.submit_problem(report()).await.unwrap().into_inner();
    wait(1_200).await;
    v1.accept(&first.id).await.unwrap();
    wait(2_100).await;
    v1.resolve(&first.id, "刮除病斑后涂药").await.unwrap();
    farmer.rate_answer(rate(&first, 5, "")).await.unwrap();
    let second = farmer.submit_problem(report()).await.unwrap().into_inner();
    v1.decline(&second.id).await.unwrap();
    wait(1_100).await;
    v2.accept(&second.id).await.unwrap();
    wait(1_100).await;
    v2.resolve(&second.id, "换药").await.unwrap();
    farmer.rate_answer(rate(&second, 2, "")).await.unwrap();
    let (first, second) = (
        fetch(&mut farmer, &first).await,
        fetch(&mut farmer, &second).await,
    );
    let accepts = [
        between(&first, "v1", K::Offered, K::Accepted),
        between(&second, "v2", K::Offered, K::Accepted),
    ];
    let resolves = [
        between(&first, "v1", K::Accepted, K::Resolved),
        between(&second, "v2", K::Accepted, K::Resolved),
    ];

    let out = crate::cli_print::xwn(&server, &["figures"]).await;
    let out = String::from_utf8(out).unwrap();
    let line = |start: &str| -> Vec<String> {
        let line = (out.lines())
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in\n{out}"));
        line.split_whitespace().map(str::to_string).collect()
    };
    let tokens = |fixed: &[&str], numbers: &[String]| -> Vec<String> {
        (fixed.iter().map(|s| s.to_string()))
            .chain(numbers.iter().cloned())
            .collect()
    };
    let ones =
        |accept: i64, resolve: i64, share: &str, offers: &str, declined: &str, mean: &str| {
            [offers, "1", declined, "0", share, "1"]
                .map(str::to_string)
                .into_iter()
                .chain([seconds(accept), seconds(resolve), "1".into(), mean.into()])
                .collect::<Vec<_>>()
        };
    assert_eq!(
        line("v1 "),
        tokens(
            &["v1", "村一", "village", "白水县"],
            &ones(accepts[0], resolves[0], "50%", "2", "1", "5.00")
        ),
        "{out}"
    );
    assert_eq!(
        line("v2 "),
        tokens(
            &["v2", "村二", "village", "白水县"],
            &ones(accepts[1], resolves[1], "0%", "1", "0", "2.00")
        ),
        "{out}"
    );
    // The group's medians: of its two acceptances and two answers.
    let group: Vec<String> = ["3", "2", "1", "0", "33%", "2"]
        .map(str::to_string)
        .into_iter()
        .chain([
            seconds(median(accepts.to_vec())),
            seconds(median(resolves.to_vec())),
            "2".into(),
            "3.50".into(),
        ])
        .collect();
    assert_eq!(
        line("Σ tier"),
        tokens(&["Σ", "tier", "2", "resp.", "village", "—"], &group),
        "{out}"
    );
    assert_eq!(
        line("Σ county"),
        tokens(&["Σ", "county", "2", "resp.", "—", "白水县"], &group),
        "{out}"
    );
    assert!(out.contains("2 responders; window"), "{out}");
    server.stop_and_clean().await;
}
