//! The queue's cap (`tickets.max_queued`, issue 13 item 6): past it a
//! submission that would wait is refused with RESOURCE_EXHAUSTED, in words
//! a farmer's front end can show; one offered at once or UNROUTABLE still
//! goes through, a resubmission of a stored ticket still gets it, and a
//! place freed in the queue takes a new submission again.

use crate::common::*;
use tonic::Code;
use xingweinong::pb;

/// Apple people (never online here) and one wheat responder.
const ROSTER: &str = "\
v1,村一,13900000011,village,,苹果,苹果腐烂病,610527106202,35.000,109.500,2,true
w1,麦一,13900000041,village,,小麦,,610527106202,35.000,109.500,2,true
";

#[tokio::test]
async fn a_full_queue_refuses_only_what_would_wait() {
    let dir = temp_dir("queuecap");
    let mut cfg = config(&dir);
    cfg.tickets.max_queued = 3;
    let server = TestServer::start(cfg).await;
    let channel = server.channel().await;
    import_rows(&channel, ROSTER).await;
    // Only the wheat responder is online: apple problems wait.
    let mut w1 = Responder::new(&channel, "w1").await;
    w1.online().await;
    let at = || at_point(35.0, 109.5);
    let mut farmer = TicketClient::new(channel.clone());

    let mut queued = Vec::new();
    for (i, text) in ["苹果树腐烂病", "苹果落果严重", "苹果裂果"]
        .iter()
        .enumerate()
    {
        let t = farmer
            .submit_problem(submit_request(text, at(), &format!("key-{i}")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(t.state(), pb::TicketState::Queued, "{t:?}");
        queued.push(t);
    }

    let refused = farmer
        .submit_problem(submit_request("苹果树流胶", at(), "key-3"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("tickets.max_queued") && refused.message().contains("(3,"),
        "names the limit: {}",
        refused.message()
    );
    assert!(
        refused.message().contains("try again in a little while"),
        "{}",
        refused.message()
    );

    // The same key as a stored ticket: that ticket, even past the cap.
    let again = farmer
        .submit_problem(submit_request("苹果树腐烂病", at(), "key-0"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.id, queued[0].id);
    assert_eq!(again.ticket_secret, queued[0].ticket_secret);

    // Offered at once (w1 is free) or UNROUTABLE: not refused by the cap.
    let wheat = farmer
        .submit_problem(submit_request("小麦条锈病", at(), ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(wheat.state(), pb::TicketState::Offered, "{wheat:?}");
    let donkey = farmer
        .submit_problem(submit_request("驴不吃草还拉稀", at(), ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(donkey.state(), pb::TicketState::Unroutable, "{donkey:?}");

    // A cancelled queued ticket frees its place.
    farmer
        .cancel_ticket(pb::CancelTicketRequest {
            ticket_id: queued[1].id.clone(),
            ticket_secret: queued[1].ticket_secret.clone(),
        })
        .await
        .unwrap();
    let fourth = farmer
        .submit_problem(submit_request("苹果树流胶", at(), "key-3"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fourth.state(), pb::TicketState::Queued);
    let full = farmer
        .submit_problem(submit_request("苹果树叶发黄", at(), "key-4"))
        .await
        .unwrap_err();
    assert_eq!(full.code(), Code::ResourceExhausted);
    server.stop_and_clean().await;
}
