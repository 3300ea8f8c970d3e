//! An expert who is not on the console opens an offer's action link on a
//! phone: `/expert#action=<token>` shows that one offer, already signed in,
//! the token gone from the address bar, and one tap accepts it.

use xingweinong::pb;

use super::{assert_public_api_only, Driver, PHONE};
use crate::common::{
    at_point, config, fetch, import_rows, submit_request, temp_dir, TestServer, TicketClient,
};
use crate::links::{link_for, with_webhook};

const PROBLEM: &str = "苹果树腐烂病，树皮一块块烂了怎么治";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expert_accepts_an_offer_from_its_link_with_one_tap() {
    let Some(mut driver) = Driver::start("link").await else {
        return;
    };
    let dir = temp_dir("browser-link");
    let server = TestServer::start(with_webhook(config(&dir), 30 * 60 * 1000)).await;
    let (addr, channel) = (server.addr, server.channel().await);
    let rows = "p1,王建军,13900001111,village,,苹果,,610527106202,35.0,109.5,3,true\n";
    import_rows(&channel, rows).await;
    // p1 never opened the console: the offer reaches them by notification.
    let mut farmer = TicketClient::new(channel.clone());
    let request = submit_request(PROBLEM, at_point(35.0, 109.5), "");
    let ticket = farmer.submit_problem(request).await.unwrap().into_inner();
    assert_eq!(ticket.assignee.as_ref().unwrap().id, "p1");
    let link = link_for(&channel, &ticket.id).await;
    let fragment = link.action_url.split_once('#').unwrap().1;

    let expert = driver.session("expert").await;
    expert.set_viewport(PHONE).await;
    expert.open(addr, &format!("/expert#{fragment}")).await;
    let offer = expert.wait_text("offer", "苹果树腐烂病").await;
    expert
        .check(offer.contains(PROBLEM), || offer.clone())
        .await;
    let url = expert.js("return location.href;", vec![]).await;
    let url = url.as_str().unwrap_or_default().to_string();
    expert
        .check(!url.contains(&link.token) && !url.contains('#'), || {
            format!("the token is still in the address bar: {url}")
        })
        .await;
    let note = expert.text("link-note").await;
    expert
        .check(note.contains("链接"), || format!("link note: {note}"))
        .await;
    // The console's availability buttons are not offered to a link.
    let hidden = expert
        .js(
            "const b = document.querySelector('[data-testid=availability-online]'); \
             return !b || b.getClientRects().length === 0;",
            vec![],
        )
        .await;
    expert
        .check(hidden == serde_json::json!(true), || {
            "availability buttons shown".into()
        })
        .await;
    expert.mark_document().await;
    expert.shoot("opened", None).await;
    expert.shoot("offer", Some("offer")).await;

    // One tap.
    expert.set_viewport(PHONE).await;
    expert.click("accept").await;
    expert
        .wait_js(
            "the offer to be ACCEPTED",
            "const e = document.querySelector('[data-testid=offer]'); \
             return e && e.dataset.state === 'TICKET_STATE_ACCEPTED';",
            vec![],
        )
        .await;
    expert.wait_text("contact", "13700000000").await;
    expert.assert_not_reloaded().await;
    expert.shoot("accepted", Some("offer")).await;
    let now = fetch(&mut farmer, &ticket).await;
    assert_eq!(now.state(), pb::TicketState::Accepted);
    assert_eq!(now.assignee.as_ref().unwrap().id, "p1");

    // The token travelled only in the authorization header.
    let calls = assert_public_api_only(addr, &expert.requests().await, &[&link.token]);
    for needed in [
        "ResponderService/WatchAssignments",
        "ResponderService/AcceptAssignment",
    ] {
        assert!(calls.iter().any(|c| c == needed), "{needed} in {calls:?}");
    }
    assert!(
        !calls
            .iter()
            .any(|c| c == "ResponderService/SetAvailability"),
        "{calls:?}"
    );
    expert.close().await;
    drop(driver);
    server.stop_and_clean().await;
}
