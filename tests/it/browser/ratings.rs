//! Ratings and figures in a browser: a farmer rates a resolved answer on
//! `/` (stars and a comment, once; then the page shows the rating and the
//! server has it), and an admin's figure table on `/admin` changes order
//! when a column header is clicked, with its subtotal rows per tier and
//! per county; the expert who answered sees the farmer's rating on
//! `/expert`. Screenshots at 360 px and 1280 px.

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
    // The subtotals: both are village responders of 白水县, so one row
    // per tier and one per county, marked as such, with the four offers'
    // share and the two ratings' mean (2 and 5).
    let subtotals = admin
        .js(
            "return [...document.querySelectorAll('[data-testid=figure-subtotal-row]')]              .map(r => r.dataset.group + '=' + r.dataset.key + ':' + r.innerText.replace(/\\s+/g, ' '));",
            vec![],
        )
        .await;
    let rows: Vec<&str> = (subtotals.as_array().unwrap().iter())
        .filter_map(|v| v.as_str())
        .collect();
    admin
        .check(
            rows.len() == 2
                && rows[0].starts_with("tier=TIER_VILLAGE:小计：村级实用人才（2 人）")
                && rows[1].starts_with("county=610527000000:小计：白水县（2 人）")
                && rows.iter().all(|r| r.contains("25%") && r.contains("3.50")),
            || format!("subtotal rows: {rows:?}"),
        )
        .await;
    let heads = admin
        .js(
            "return [...document.querySelectorAll('[data-testid=figure-subtotal-head]')].map(r => r.innerText).join('|');",
            vec![],
        )
        .await;
    admin
        .check(heads == json!("按层级小计|按县区小计"), || {
            format!("subtotal headings: {heads}")
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

/// The expert who answered sees, live on `/expert`, the farmer's rating
/// of that answer: its stars and comment on the ticket in the done list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expert_sees_the_rating_of_an_answer() {
    let Some(mut driver) = Driver::start("expert-rating").await else {
        return;
    };
    let server = TestServer::start(config(&temp_dir("browser-expert-rating"))).await;
    let addr = server.addr;
    let channel = server.channel().await;
    import_rows(&channel, ROSTER).await;
    let v1 = Responder::new(&channel, "v1").await;

    let expert = driver.session("expert").await;
    expert.sign_in_online(addr, &v1.token).await;

    let mut farmer_api = TicketClient::new(channel.clone());
    let ticket = farmer_api
        .submit_problem(crate::common::submit_request(
            "苹果树腐烂病又犯了",
            crate::common::at_point(35.0, 109.5),
            "",
        ))
        .await
        .unwrap()
        .into_inner();
    expert.wait_text("offer", "苹果树腐烂病又犯了").await;
    expert.click("accept").await;
    expert.type_into("answer-text", "刮除病斑后涂药").await;
    expert.click("resolve").await;
    let done = "const e = document.querySelector(`[data-testid=done-item][data-ticket-id=\"${arguments[0]}\"]`); \
                return e ? e.innerText : null;";
    expert
        .wait_js(
            "the answered ticket in the done list",
            done,
            vec![json!(ticket.id)],
        )
        .await;
    farmer_api
        .rate_answer(rate(&ticket, 4, COMMENT))
        .await
        .unwrap();
    let shown = expert
        .wait_js(
            "the rating on the answered ticket",
            "const e = document.querySelector(`[data-testid=done-item][data-ticket-id=\"${arguments[0]}\"]`); \
             const r = e && e.querySelector('[data-testid=done-rating]'); \
             const c = e && e.querySelector('[data-testid=done-rating-comment]'); \
             return r && c ? [r.dataset.stars, r.innerText, c.innerText].join('|') : null;",
            vec![json!(ticket.id)],
        )
        .await;
    expert
        .check(
            shown == json!(format!("4|农户评价 ★★★★☆|{COMMENT}")),
            || format!("the rating shown: {shown}"),
        )
        .await;
    expert.shoot("rated", Some("done")).await;
    expert.close().await;
    server.stop_and_clean().await;
}
