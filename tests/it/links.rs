//! Action links and offers through notifications: with a webhook
//! configured, a responder who is not ONLINE (and not AWAY) is offered
//! tickets with the notified timeout, and the link of an offer acts on
//! that one ticket only, until the offer ends.

use std::time::Duration;

use tonic::Code;
use xingweinong::config::{Config, WebhookConfig};

use crate::common::*;
use xingweinong::pb;

/// The same, in a config file: a webhook on port 9 (discard), nobody there.
pub(crate) const WEBHOOK: &str = "[notify]\npublic_base_url = \"https://xwn.example.org\"\n\
    [[notify.webhooks]]\nname = \"sms\"\nurl = \"http://127.0.0.1:9/hook\"\n\
    secret = \"whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\n";

/// A webhook on a port nobody listens on: the dispatcher only needs one
/// configured.
pub(crate) fn with_webhook(mut config: Config, notified_offer_timeout_ms: u64) -> Config {
    config.notify.public_base_url = Some("https://xwn.example.org".into());
    config.notify.webhooks = vec![WebhookConfig {
        name: "sms".into(),
        url: format!("http://127.0.0.1:{}/hook", free_port()),
        secret: "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into(),
        events: Vec::new(),
    }];
    config.tickets.notified_offer_timeout_ms = notified_offer_timeout_ms;
    config
}

/// p1 nearest, p2 a little further, p3 furthest; all apple specialists.
const ROWS: &str = "p1,甲,,village,,苹果,,610527106202,35.00,109.5,5,true\n\
    p2,乙,,village,,苹果,,610527106202,35.02,109.5,5,true\n\
    p3,丙,,village,,苹果,,610527106202,35.04,109.5,5,true\n";

/// An action link for `ticket` through the admin API.
pub(crate) async fn link_for(
    ch: &tonic::transport::Channel,
    ticket: &str,
) -> pb::IssueActionLinkResponse {
    RosterClient::new(ch.clone())
        .issue_action_link(admin(pb::IssueActionLinkRequest {
            ticket_id: ticket.into(),
        }))
        .await
        .unwrap()
        .into_inner()
}

/// A responder client acting with `token`.
fn as_link(ch: &tonic::transport::Channel, id: &str, token: &str) -> Responder {
    Responder {
        id: id.into(),
        token: token.into(),
        client: ResponderClient::new(ch.clone()),
    }
}

async fn submit(ch: &tonic::transport::Channel) -> pb::Ticket {
    let request = submit_request("苹果树腐烂病怎么治", at_point(35.0, 109.5), "");
    TicketClient::new(ch.clone())
        .submit_problem(request)
        .await
        .unwrap()
        .into_inner()
}

fn assignee(t: &pb::Ticket) -> &str {
    t.assignee.as_ref().map_or("", |a| a.id.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_link_acts_on_its_own_ticket_only() {
    let dir = temp_dir("links-scope");
    let server = TestServer::start(with_webhook(config(&dir), 30 * 60 * 1000)).await;
    let ch = server.channel().await;
    import_rows(&ch, ROWS).await;
    // Nobody has ever connected: both go to p1, the nearest, by notification.
    let (a, b) = (submit(&ch).await, submit(&ch).await);
    assert_eq!((assignee(&a), assignee(&b)), ("p1", "p1"));

    let link = link_for(&ch, &a.id).await;
    assert_eq!(link.talent_id, "p1");
    assert_eq!(link.expires_at_ms, a.offer_deadline_ms);
    assert_eq!(
        link.action_url,
        format!("https://xwn.example.org/expert#action={}", link.token)
    );
    let mut p1 = as_link(&ch, "p1", &link.token);

    // Another ticket of the same responder, or anything but a ticket: refused.
    let other = p1.accept(&b.id).await.unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied, "{other:?}");
    assert!(other.message().contains(&a.id), "{other:?}");
    let availability = p1.try_set(pb::Availability::Online).await.unwrap_err();
    assert_eq!(availability.code(), Code::PermissionDenied);

    // Tampered: the payload moved to the other ticket, or the MAC changed.
    let parts: Vec<&str> = link.token.split('.').collect();
    let claims = String::from_utf8(hex::decode(parts[1]).unwrap()).unwrap();
    let moved = hex::encode(claims.replace(&a.id, &b.id));
    let mut last = parts[2].to_string();
    let flipped = if last.ends_with('0') { '1' } else { '0' };
    last.replace_range(last.len() - 1.., &flipped.to_string());
    for forged in [
        format!("{}.{moved}.{}", parts[0], parts[2]),
        format!("{}.{}.{last}", parts[0], parts[1]),
    ] {
        let refused = as_link(&ch, "p1", &forged).accept(&b.id).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
        assert!(refused.message().contains("not valid"), "{refused:?}");
    }

    // The link watches its own ticket only, then acts on it.
    let mut stream = p1.watch().await;
    let first = next(&mut stream).await;
    assert_eq!(first.ticket.as_ref().unwrap().id, a.id);
    let accepted = p1.accept(&a.id).await.unwrap();
    assert_eq!(accepted.state, pb::TicketState::Accepted as i32);
    let pushed = next(&mut stream).await;
    assert_eq!(pushed.ticket.as_ref().unwrap().id, a.id);
    assert!(!pushed.replay);
    // The contact shows to the accepting responder, through the link too.
    assert_eq!(pushed.ticket.as_ref().unwrap().contact, "13700000000");
    let resolved = p1.resolve(&a.id, "剪除病斑，涂药保护。").await.unwrap();
    assert_eq!(resolved.state, pb::TicketState::Resolved as i32);
    // b was not touched, and the link cannot reach it.
    let b_now = fetch(&mut TicketClient::new(ch.clone()), &b).await;
    assert_eq!(b_now.state, pb::TicketState::Offered as i32);
    assert_eq!(
        p1.decline(&b.id).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    // Its own ticket closed, the link has nothing left to watch.
    let over = p1
        .client
        .watch_assignments(with_token(pb::WatchAssignmentsRequest {}, &link.token))
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::FailedPrecondition, "{over:?}");
    server.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_expert_gets_a_notified_offer_that_lapses_to_the_next() {
    let dir = temp_dir("links-lapse");
    let notified = 1_500;
    let server = TestServer::start(with_webhook(config(&dir), notified)).await;
    let ch = server.channel().await;
    import_rows(&ch, ROWS).await;
    // p1 never connected (OFFLINE); p2 AWAY; p3 ONLINE and watching.
    let mut p2 = Responder::new(&ch, "p2").await;
    p2.set(pb::Availability::Away).await;
    let mut p3 = Responder::new(&ch, "p3").await;
    p3.online().await;
    let mut p3_stream = p3.watch().await;

    let t = submit(&ch).await;
    assert_eq!(assignee(&t), "p1", "the nearest, though not on the console");
    let offered = t.history.last().unwrap();
    assert_eq!(offered.kind, pb::TicketEventKind::Offered as i32);
    let offered_at = offered.at_ms;
    assert_eq!(t.offer_deadline_ms - offered_at, notified as i64);
    let link = link_for(&ch, &t.id).await;

    // It lapses after the notified timeout; AWAY p2 is passed over, ONLINE
    // p3 gets it on the stream at once, with the usual timeout.
    let pushed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let push = next(&mut p3_stream).await;
            let kind = push.event.as_ref().map(|e| e.kind);
            if kind == Some(pb::TicketEventKind::Offered as i32) {
                return push;
            }
        }
    })
    .await
    .expect("p3 is offered the ticket after p1's offer lapsed");
    let (now, event) = (pushed.ticket.unwrap(), pushed.event.unwrap());
    assert_eq!((now.id.as_str(), assignee(&now)), (t.id.as_str(), "p3"));
    assert!(event.at_ms >= offered_at + notified as i64);
    let usual = Config::default().tickets.offer_timeout_ms as i64;
    assert_eq!(now.offer_deadline_ms - event.at_ms, usual);

    let history = fetch(&mut TicketClient::new(ch.clone()), &t).await.history;
    let kinds: Vec<(i32, String)> = history
        .iter()
        .map(|e| {
            (
                e.kind,
                e.talent.as_ref().map_or(String::new(), |x| x.id.clone()),
            )
        })
        .collect();
    assert!(
        kinds.contains(&(pb::TicketEventKind::OfferTimedOut as i32, "p1".into())),
        "{kinds:?}"
    );
    assert!(
        !kinds.iter().any(|(_, who)| who == "p2"),
        "AWAY p2 got nothing: {kinds:?}"
    );

    // p1's link ended with its offer.
    let expired = as_link(&ch, "p1", &link.token)
        .accept(&t.id)
        .await
        .unwrap_err();
    assert_eq!(expired.code(), Code::Unauthenticated, "{expired:?}");
    assert!(expired.message().contains("expired"), "{expired:?}");
    server.stop_and_clean().await;
}
