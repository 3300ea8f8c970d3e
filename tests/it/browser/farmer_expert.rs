//! A farmer asks on `/`, an expert answers on `/expert`, each in their own
//! browser profile; the farmer's page follows the ticket live to the answer.
//! It also checks that both pages called nothing but the public API, and
//! takes the farmer's and the expert's screenshots.

use xingweinong::pb;

use super::{assert_public_api_only, Driver};
use crate::common::{at_division, config, temp_dir, token_for, MatchClient, TestServer};

/// 白水县 史官镇 史家山村, the README's apple village.
const COUNTY: &str = "白水县";
const TOWN: &str = "史官镇";
const VILLAGE: &str = "史家山村";
const VILLAGE_CODE: &str = "610527106202";
const PROBLEM: &str = "苹果树叶子发黄有斑点，一周了，咋办";
const CONTACT: &str = "13700001111";
const ANSWER: &str = "喷代森锰锌800倍液，7天一次，连喷两次；清扫落叶烧掉。";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_farmer_asks_and_an_expert_answers_live_in_two_browsers() {
    let Some(mut driver) = Driver::start("ask").await else {
        return;
    };
    let dir = temp_dir("browser-ask");
    let server = TestServer::start(config(&dir)).await;
    let addr = server.addr;
    let channel = server.channel().await;

    // Who gets the first offer: the first candidate of the same match.
    let mut matcher = MatchClient::new(channel.clone());
    let first = matcher
        .match_problem(at_division(PROBLEM, VILLAGE_CODE))
        .await
        .unwrap()
        .into_inner()
        .candidates
        .into_iter()
        .next()
        .and_then(|c| c.talent)
        .expect("a candidate for the apple village");
    let token = token_for(&channel, &first.id).await;

    // The expert signs in and goes online (in the second profile).
    let expert = driver.session("expert").await;
    expert.sign_in_online(addr, &token).await;
    expert.mark_document().await;

    // The farmer writes, picks the place and matches.
    let farmer = driver.session("farmer").await;
    farmer.open(addr, "/").await;
    farmer.mark_document().await;
    farmer.el("county").await;
    farmer.shoot("start", None).await;
    // A photo's question names nothing: the page says what to add.
    farmer
        .type_into("problem-text", "这是什么病？叶子发黄是咋回事")
        .await;
    farmer.choose("county", COUNTY).await;
    farmer.choose("town", TOWN).await;
    farmer.choose("village", VILLAGE).await;
    farmer.click("match").await;
    farmer.wait_text("missing", "请说明是什么作物或牲畜").await;
    farmer.shoot("missing", Some("missing")).await;
    farmer
        .js(
            "document.querySelector('[data-testid=problem-text]').value = ''; return null;",
            vec![],
        )
        .await;
    farmer.type_into("problem-text", PROBLEM).await;
    farmer.click("match").await;
    let subject = farmer.wait_text("subject", "苹果").await;
    let missing_shown = farmer
        .js(
            "return document.querySelector('[data-testid=missing]').hidden;",
            vec![],
        )
        .await;
    farmer
        .check(missing_shown == serde_json::json!(true), || {
            "the missing prompt stays after a report that names its crop".into()
        })
        .await;
    farmer
        .check(subject.trim() == "苹果", || format!("subject {subject}"))
        .await;
    // The candidates list the expert who will get the offer, first.
    let first_shown = farmer
        .wait_js(
            "candidates",
            "const c = document.querySelectorAll('[data-testid=candidates] [data-testid=candidate]'); \
             return c.length > 0 ? c[0].innerText : null;",
            vec![],
        )
        .await;
    let first_shown = first_shown.as_str().unwrap();
    farmer
        .check(first_shown.contains(&first.name), || {
            format!(
                "first candidate shown: {first_shown}, expected {}",
                first.name
            )
        })
        .await;
    let candidates = farmer.text("candidates").await;
    farmer
        .check(
            !candidates.contains("1390") && !candidates.contains("1370"),
            || format!("a phone number among the candidates: {candidates}"),
        )
        .await;
    farmer.shoot("matched", Some("subject")).await;

    // Submit, with a contact for the expert.
    farmer.type_into("contact-input", CONTACT).await;
    farmer.click("submit").await;
    let offered = farmer
        .wait_js(
            "the ticket to be offered",
            "const e = document.querySelector('[data-testid=ticket-state]'); \
             return e && e.dataset.state === 'TICKET_STATE_OFFERED' ? e.innerText : null;",
            vec![],
        )
        .await;
    println!("farmer sees: {offered}");

    // The expert gets the offer live, accepts it and sees the contact.
    let offer_text = expert.wait_text("offer", "苹果树叶子发黄有斑点").await;
    expert
        .check(offer_text.contains(PROBLEM), || offer_text.clone())
        .await;
    expert
        .check(!offer_text.contains(CONTACT), || {
            format!("the contact before accepting: {offer_text}")
        })
        .await;
    expert.shoot("offer", Some("offer")).await;
    expert.click("accept").await;
    expert.wait_text("contact", CONTACT).await;
    farmer
        .wait_js(
            "the farmer to see ACCEPTED",
            "return document.querySelector('[data-testid=ticket-state]').dataset.state \
             === 'TICKET_STATE_ACCEPTED';",
            vec![],
        )
        .await;

    // The expert answers; the farmer's page shows it without a reload.
    expert.type_into("answer-text", ANSWER).await;
    expert.click("resolve").await;
    let state = farmer
        .wait_js(
            "the farmer to see RESOLVED",
            "const e = document.querySelector('[data-testid=ticket-state]'); \
             return e.dataset.state === 'TICKET_STATE_RESOLVED' ? e.innerText : null;",
            vec![],
        )
        .await;
    println!("farmer sees: {state}");
    farmer.wait_text("ticket-answer", ANSWER).await;
    farmer.assert_not_reloaded().await;
    expert.assert_not_reloaded().await;
    farmer.shoot("resolved", Some("ticket-state")).await;

    // The server agrees: the ticket is resolved with that answer.
    let ticket_id = farmer
        .js(
            "return document.querySelector('[data-testid=ticket-state]') \
             .closest('section').querySelector('[data-testid=ticket-id]').innerText.trim();",
            vec![],
        )
        .await;
    let ticket_id = ticket_id.as_str().unwrap().to_string();
    let mut roster = crate::common::RosterClient::new(channel.clone());
    let tickets = roster
        .list_tickets(crate::common::admin(pb::ListTicketsRequest {
            page_size: 10,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .tickets;
    let ticket = tickets
        .iter()
        .find(|t| t.id == ticket_id)
        .unwrap_or_else(|| panic!("ticket {ticket_id} in {tickets:?}"));
    assert_eq!(ticket.state(), pb::TicketState::Resolved);
    assert_eq!(ticket.answer, ANSWER);
    assert_eq!(
        ticket.assignee.as_ref().map(|t| t.id.as_str()),
        Some(first.id.as_str())
    );

    // Both pages spoke only the public API, and no token went into a URL.
    let farmer_calls = assert_public_api_only(addr, &farmer.requests().await, &[CONTACT]);
    let expert_calls = assert_public_api_only(addr, &expert.requests().await, &[&token]);
    println!("farmer called {farmer_calls:?}\nexpert called {expert_calls:?}");
    for needed in [
        "MatchService/ListDivisions",
        "MatchService/MatchProblem",
        "TicketService/SubmitProblem",
        "TicketService/WatchTicket",
    ] {
        assert!(farmer_calls.iter().any(|c| c == needed), "{needed}");
    }
    for needed in [
        "ResponderService/SetAvailability",
        "ResponderService/WatchAssignments",
        "ResponderService/AcceptAssignment",
        "ResponderService/ResolveTicket",
    ] {
        assert!(expert_calls.iter().any(|c| c == needed), "{needed}");
    }

    farmer.close().await;
    expert.close().await;
    drop(driver);
    server.stop_and_clean().await;
}
