//! Ratings and figures in a browser: a farmer rates a resolved answer on
//! `/` (stars and a comment, once; then the page shows the rating and the
//! server has it), and an admin's figure table on `/admin` changes order
//! when a column header is clicked. Screenshots at 360 px and 1280 px.

use serde_json::json;
use xingweinong::pb;

use super::Driver;
use crate::common::{
    config, fetch, import_rows, temp_dir, Responder, TestServer, TicketClient, ADMIN_TOKEN,
};
use crate::ratings::{answered, rate, ROSTER};

const COMMENT: &str = "照着做了，病斑没再扩大，谢谢！";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_farmer_rates_an_answer_and_an_admin_sorts_the_figures() {
    let Some(mut driver) = Driver::start("ratings").await else {
        return;
    };
    let server = TestServer::start(config(&temp_dir("browser-ratings"))).await;
    let addr = server.addr;
    let channel = server.channel().await;
    import_rows(&channel, ROSTER).await;
    let mut v1 = Responder::new(&channel, "v1").await;
    let mut v2 = Responder::new(&channel, "v2").await;
    v1.online().await;
    v2.online().await;
    // v1 answers two tickets (one rated 2 stars), v2 the third, which v1
    // declined: the figures list v1 first (most answered).
    let mut farmer_api = TicketClient::new(channel.clone());
    let first = answered(&mut farmer_api, &mut v1, true).await;
    farmer_api.rate_answer(rate(&first, 2, "")).await.unwrap();
    answered(&mut farmer_api, &mut v1, true).await;
    let third = farmer_api
        .submit_problem(crate::common::submit_request(
            "苹果树腐烂病",
            crate::common::at_point(35.0, 109.5),
            "",
        ))
        .await
        .unwrap()
        .into_inner();
    v1.decline(&third.id).await.unwrap();
    v2.accept(&third.id).await.unwrap();
    v2.resolve(&third.id, "刮净病斑，涂甲硫萘乙酸")
        .await
        .unwrap();

    // The farmer's phone knows the third ticket (as after submitting it).
    let farmer = driver.session("farmer").await;
    farmer.open(addr, "/").await;
    let mine = json!([{ "id": third.id, "secret": third.ticket_secret, "text": "苹果树腐烂病",
        "at": 0, "state": "TICKET_STATE_RESOLVED" }]);
    farmer
        .js(
            "localStorage.setItem('xwn.tickets', JSON.stringify(arguments[0])); return null;",
            vec![mine],
        )
        .await;
    farmer.open(addr, "/").await;
    farmer.click("open-ticket").await;
    farmer.el("rate-box").await;
    // Submitting without stars says what to do, and sends nothing.
    farmer.click("rate-submit").await;
    farmer.wait_text("rate-error", "请先点星星").await;
    farmer.click("star-5").await;
    farmer.type_into("rate-comment", COMMENT).await;
    farmer.shoot("rate", Some("rate-box")).await;
    farmer.click("rate-submit").await;
    farmer.wait_text("rated-stars", "★★★★★").await;
    farmer.wait_text("rated-comment", COMMENT).await;
    let form_hidden = farmer
        .js(
            "return document.querySelector('[data-testid=rate-box]').hidden;",
            vec![],
        )
        .await;
    farmer
        .check(form_hidden == json!(true), || {
            "the form stays after rating".into()
        })
        .await;
    farmer.shoot("rated", Some("rated")).await;
    let stored = fetch(&mut farmer_api, &third).await;
    assert_eq!(
        stored.rating,
        Some(pb::Rating {
            stars: 5,
            comment: COMMENT.into()
        })
    );

    // The admin's table: v1 first by answers, v2 first by mean rating.
    let admin = driver.session("admin").await;
    admin.open(addr, "/admin").await;
    admin.type_into("admin-token", ADMIN_TOKEN).await;
    admin.click("sign-in").await;
    let order = "const rows = [...document.querySelectorAll('[data-testid=figure-row]')]; \
                 return rows.length === 2 ? rows.map(r => r.dataset.talentId).join(',') : null;";
    let before = admin.wait_js("two figure rows", order, vec![]).await;
    admin
        .check(before == json!("v1,v2"), || format!("by answers: {before}"))
        .await;
    let v1_row = admin
        .js(
            "return document.querySelector('[data-testid=figure-row][data-talent-id=v1]').innerText;",
            vec![],
        )
        .await;
    let v1_row = v1_row.as_str().unwrap_or_default();
    admin
        .check(v1_row.contains("2.00") && v1_row.contains("33%"), || {
            format!("v1: mean 2.00, 1 of 3 offers declined: {v1_row}")
        })
        .await;
    admin.click("figures-sort-rating").await;
    let after = admin.wait_js("rows sorted by rating", order, vec![]).await;
    admin
        .check(after == json!("v2,v1"), || {
            format!("by mean rating: {after}")
        })
        .await;
    admin.shoot("figures", Some("figures-table")).await;
    admin.click("figures-sort-rating").await;
    let again = admin.wait_js("rows sorted back", order, vec![]).await;
    admin
        .check(again == json!("v1,v2"), || format!("ascending: {again}"))
        .await;
    farmer.close().await;
    admin.close().await;
    server.stop_and_clean().await;
}
