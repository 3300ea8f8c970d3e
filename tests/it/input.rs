//! Hostile input (issue 13, items 4, 5 and 9): huge ids are refused naming
//! the field with a short message, controls are refused where they have no
//! business, blank reports are refused however they are blank, secrets are
//! compared exactly and a deactivated talent cannot go ONLINE.

use crate::common::*;
use tonic::Code;
use xingweinong::pb;

const ROSTER: &str = "\
v1,村一,13900000011,village,,苹果,,610527106202,35.000,109.500,2,true
v9,村九,13900000019,village,,苹果,,610527106202,35.000,109.500,2,false
";

async fn start(tag: &str) -> (TestServer, tonic::transport::Channel) {
    let server = TestServer::start(config(&temp_dir(tag))).await;
    let channel = server.channel().await;
    import_rows(&channel, ROSTER).await;
    (server, channel)
}

fn invalid(status: tonic::Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with(&format!("{field}: ")),
        "{}",
        status.message()
    );
    assert!(status.message().len() < 200, "{}", status.message().len());
}

#[tokio::test]
async fn huge_ids_are_refused_naming_the_field_with_a_short_message() {
    let (server, channel) = start("input-huge").await;
    let (mut matcher, mut farmer) = (
        MatchClient::new(channel.clone()),
        TicketClient::new(channel.clone()),
    );
    let huge = "6".repeat(1 << 20);
    let status = matcher
        .match_problem(at_division("苹果树烂皮", &huge))
        .await
        .unwrap_err();
    invalid(status, "location.division_code");
    let mut r = submit_request("苹果树烂皮", None, "");
    r.location = at_division("x", &huge).location;
    invalid(
        farmer.submit_problem(r).await.unwrap_err(),
        "location.division_code",
    );
    let get = pb::GetTicketRequest {
        ticket_id: "t".repeat(1 << 20),
        ticket_secret: "s".into(),
    };
    invalid(farmer.get_ticket(get).await.unwrap_err(), "ticket_id");
    server.stop_and_clean().await;
}

#[tokio::test]
async fn controls_and_blank_reports_are_refused() {
    let (server, channel) = start("input-controls").await;
    let (mut matcher, mut farmer) = (
        MatchClient::new(channel.clone()),
        TicketClient::new(channel.clone()),
    );
    let mut r = submit_request("苹果树烂皮", at_point(35.0, 109.5), "");
    r.contact = "137\u{1b}]0;pwned\u{7}".into();
    invalid(farmer.submit_problem(r).await.unwrap_err(), "contact");
    let r = submit_request("苹果\u{1b}]0;pwned\u{7}树烂皮", at_point(35.0, 109.5), "");
    invalid(farmer.submit_problem(r).await.unwrap_err(), "text");
    for blank in [
        "\u{200b}\u{200c}\u{200d}\u{2060}\u{feff}",
        "\0\0\0",
        " \u{200b}\0 ",
    ] {
        let r = submit_request(blank, at_point(35.0, 109.5), "");
        invalid(farmer.submit_problem(r).await.unwrap_err(), "text");
        let mut m = at_division(blank, "610527106202");
        m.location = at_point(35.0, 109.5);
        invalid(matcher.match_problem(m).await.unwrap_err(), "text");
    }
    // Line breaks and tabs are fine in a report.
    let r = submit_request("苹果树\n烂皮\t了", at_point(35.0, 109.5), "");
    farmer.submit_problem(r).await.unwrap();
    server.stop_and_clean().await;
}

#[tokio::test]
async fn secrets_are_compared_exactly() {
    let (server, channel) = start("input-secret").await;
    let mut farmer = TicketClient::new(channel.clone());
    let t = farmer
        .submit_problem(submit_request("苹果树烂皮", at_point(35.0, 109.5), ""))
        .await
        .unwrap()
        .into_inner();
    for secret in [
        format!("{} ", t.ticket_secret),
        format!(" {}", t.ticket_secret),
    ] {
        let get = pb::GetTicketRequest {
            ticket_id: t.id.clone(),
            ticket_secret: secret,
        };
        let status = farmer.get_ticket(get).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }
    let get = pb::GetTicketRequest {
        ticket_id: t.id.clone(),
        ticket_secret: t.ticket_secret.clone(),
    };
    farmer.get_ticket(get).await.unwrap();
    server.stop_and_clean().await;
}

#[tokio::test]
async fn a_deactivated_talent_cannot_go_online() {
    let (server, channel) = start("input-inactive").await;
    let mut v9 = Responder::new(&channel, "v9").await;
    let status = v9.try_set(pb::Availability::Online).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("active=true"), "{status:?}");
    // Going away or offline stays possible; an active talent goes online.
    v9.set(pb::Availability::Offline).await;
    Responder::new(&channel, "v1").await.online().await;
    server.stop_and_clean().await;
}
