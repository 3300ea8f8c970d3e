//! A solved, shared problem shows on the farmer's page as soon as a
//! similar report is matched: before anything is submitted, in Chinese,
//! without a phone number, and without sideways scrolling at 360 px.

use xingweinong::pb;

use super::Driver;
use crate::common::{
    at_division, config, temp_dir, token_for, MatchClient, Responder, TestServer, TicketClient,
};

const VILLAGE_CODE: &str = "610527106202";
const SOLVED: &str = "苹果树干上烂了一块，树皮发软，有酒糟味，电话13812345678";
const ANSWER: &str = "这是苹果腐烂病：刮净病斑，涂甲硫萘乙酸，春秋各刮一次。";
const ASKED: &str = "苹果树皮烂了，一按就软，闻着有酒味";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_solved_problems_show_before_submitting() {
    let Some(mut driver) = Driver::start("knowledge").await else {
        return;
    };
    let dir = temp_dir("browser-knowledge");
    let server = TestServer::start(config(&dir)).await;
    let channel = server.channel().await;

    // Someone asked before, and the expert shared the answer.
    let mut matcher = MatchClient::new(channel.clone());
    let first = matcher
        .match_problem(at_division(SOLVED, VILLAGE_CODE))
        .await
        .unwrap()
        .into_inner()
        .candidates
        .into_iter()
        .next()
        .and_then(|c| c.talent)
        .expect("a candidate for the apple village");
    let _ = token_for(&channel, &first.id).await;
    let mut expert = Responder::new(&channel, &first.id).await;
    expert.online().await;
    let mut farmer = TicketClient::new(channel.clone());
    let ticket = farmer
        .submit_problem(pb::SubmitProblemRequest {
            text: SOLVED.into(),
            location: at_division("", VILLAGE_CODE).location,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    expert.accept(&ticket.id).await.unwrap();
    expert
        .resolve_sharing(&ticket.id, ANSWER, true)
        .await
        .unwrap();

    // The next farmer asks the same thing in other words.
    let page = driver.session("farmer").await;
    page.open(server.addr, "/").await;
    page.el("county").await;
    page.type_into("problem-text", ASKED).await;
    page.choose("county", "白水县").await;
    page.click("match").await;
    let shown = page.wait_text("similar-list", "甲硫萘乙酸").await;
    page.check(shown.contains("问：") && shown.contains("答："), || {
        format!("the similar problem and its answer: {shown}")
    })
    .await;
    page.check(!shown.contains("13812345678"), || {
        format!("a phone number in a shared problem: {shown}")
    })
    .await;
    let ticket_hidden = page
        .js("return document.querySelector('#ticket').hidden;", vec![])
        .await;
    page.check(ticket_hidden == serde_json::json!(true), || {
        "shown before anything was submitted".into()
    })
    .await;
    page.shoot("similar", Some("similar")).await;

    // An unrelated question shows none.
    page.js(
        "document.querySelector('[data-testid=problem-text]').value = ''; return null;",
        vec![],
    )
    .await;
    page.type_into("problem-text", "奶山羊产后站不起来，不吃草")
        .await;
    page.click("match").await;
    page.wait_text("subject", "奶山羊").await;
    let hidden = page
        .wait_js(
            "the similar list to hide",
            "return document.querySelector('[data-testid=similar]').hidden ? true : null;",
            vec![],
        )
        .await;
    page.check(hidden == serde_json::json!(true), || {
        "no similar problem".into()
    })
    .await;
    page.close().await;
    drop(driver);
    server.stop_and_clean().await;
}
