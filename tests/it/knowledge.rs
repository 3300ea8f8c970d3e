//! Knowledge entries (README "Knowledge"): a shareable answer becomes an
//! entry that `SearchKnowledge` and `MatchProblem` find, over gRPC and
//! Connect JSON; admins publish and unpublish (nobody else); entries carry
//! no phone number, contact or name; they survive a restart.

use serde_json::json;
use tonic::Code;
use xingweinong::pb;

use crate::common::*;

const ROSTER: &str = "\
v1,村一,13900000011,village,,苹果,苹果腐烂病,610527106202,35.000,109.500,3,true
w1,麦一,13900000041,village,,小麦,,610527106202,35.000,109.500,3,true
";

const ROT: &str = "我是王建国，我家苹果树干上烂了一块，树皮发软有酒糟味，电话13812345678";
const ROT_ANSWER: &str = "这是苹果腐烂病，刮掉病斑涂甲硫萘乙酸。不明白再打我电话139-1234-5678";
const RUST: &str = "小麦叶子上有一条条黄色的锈粉";

type Match = pb::match_service_client::MatchServiceClient<tonic::transport::Channel>;

fn search(text: &str) -> pb::SearchKnowledgeRequest {
    pb::SearchKnowledgeRequest {
        text: text.into(),
        ..Default::default()
    }
}

/// Submits a report and has `who` accept and resolve it.
async fn solved(
    channel: &tonic::transport::Channel,
    who: &mut Responder,
    text: &str,
    answer: &str,
    shareable: bool,
) -> pb::Ticket {
    let mut farmer = TicketClient::new(channel.clone());
    let mut request = submit_request(text, at_division("", "610527106202").location, "");
    request.contact = "王建国 13700000000".into();
    let ticket = farmer.submit_problem(request).await.unwrap().into_inner();
    who.accept(&ticket.id).await.unwrap();
    who.resolve_sharing(&ticket.id, answer, shareable)
        .await
        .unwrap();
    ticket
}

async fn hits(client: &mut Match, text: &str) -> Vec<pb::KnowledgeHit> {
    client
        .search_knowledge(search(text))
        .await
        .unwrap()
        .into_inner()
        .hits
}

#[tokio::test]
async fn shared_answers_are_found_published_and_unpublished() {
    let dir = temp_dir("knowledge");
    let server = TestServer::start(config(&dir)).await;
    let channel = server.channel().await;
    import_rows(&channel, ROSTER).await;
    let mut v1 = Responder::new(&channel, "v1").await;
    let mut w1 = Responder::new(&channel, "w1").await;
    v1.online().await;
    w1.online().await;
    let mut client = Match::new(channel.clone());

    // Shared on resolving: found at once, with nothing personal in it.
    let rot = solved(&channel, &mut v1, ROT, ROT_ANSWER, true).await;
    let found = hits(&mut client, "苹果树皮烂了，一股酒味").await;
    assert_eq!(found.len(), 1, "{found:?}");
    let entry = found[0].entry.clone().unwrap();
    assert_eq!(entry.id, rot.id);
    assert_eq!(entry.subject, "苹果");
    assert_eq!(entry.corps(), pb::Corps::Fruit);
    assert_eq!(entry.county_code, "610527000000");
    assert_eq!(entry.tier(), pb::Tier::Village);
    assert_eq!(entry.published_by, "responder");
    assert!(entry.rating.is_none() && entry.resolved_at.is_some());
    let everything = format!("{entry:?}");
    for personal in ["13812345678", "1391234", "王建国", "13700000000"] {
        assert!(!everything.contains(personal), "{personal} in {everything}");
    }
    assert!(entry.text.contains("树皮发软有酒糟味") && entry.answer.contains("甲硫萘乙酸"));

    // Not shared: not found, until an admin publishes it.
    let wheat = solved(&channel, &mut w1, RUST, "条锈病，喷三唑酮", false).await;
    assert!(hits(&mut client, "麦子叶子上黄锈一样的粉").await.is_empty());
    let mut roster = RosterClient::new(channel.clone());
    let published = roster
        .publish_knowledge(admin(pb::PublishKnowledgeRequest {
            ticket_id: wheat.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.published_by, "admin");
    let found = hits(&mut client, "麦子叶子上黄锈一样的粉").await;
    assert_eq!(found[0].entry.as_ref().unwrap().id, wheat.id);

    // MatchProblem shows the similar solved problem beside the candidates,
    // and none for an unrelated report.
    let reply = client
        .match_problem(at_division("苹果树干烂了，树皮软，有酒味", "610527106202"))
        .await
        .unwrap()
        .into_inner();
    assert!(!reply.candidates.is_empty());
    assert_eq!(reply.similar[0].entry.as_ref().unwrap().id, rot.id);
    assert!(reply.similar.len() <= 3);
    let reply = client
        .match_problem(at_division("奶山羊产后站不起来", "610527106202"))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.similar.is_empty(), "{:?}", reply.similar);

    // Filters.
    let mut filtered = search("苹果树皮烂了，一股酒味");
    filtered.corps = pb::Corps::GrainOil as i32;
    let none = client
        .search_knowledge(filtered)
        .await
        .unwrap()
        .into_inner();
    assert!(none.hits.is_empty());
    let mut filtered = search("苹果树皮烂了，一股酒味");
    filtered.county_code = "610527106202".into();
    filtered.subject = "苹果".into();
    let one = client
        .search_knowledge(filtered)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.hits.len(), 1);

    // Bad input names the field.
    for (request, field) in [
        (search("  "), "text"),
        (
            pb::SearchKnowledgeRequest {
                limit: 21,
                ..search("苹果")
            },
            "limit",
        ),
        (
            pb::SearchKnowledgeRequest {
                county_code: "白水".into(),
                ..search("苹果")
            },
            "county_code",
        ),
    ] {
        let status = client.search_knowledge(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with(field), "{}", status.message());
    }

    // Only admins publish and unpublish; an open ticket cannot be shared.
    let mut farmer = TicketClient::new(channel.clone());
    let open = farmer
        .submit_problem(submit_request(
            "苹果叶子黄了",
            at_division("", "610527106202").location,
            "",
        ))
        .await
        .unwrap()
        .into_inner();
    let status = roster
        .publish_knowledge(admin(pb::PublishKnowledgeRequest {
            ticket_id: open.id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status = roster
        .publish_knowledge(admin(pb::PublishKnowledgeRequest {
            ticket_id: "tk-nope".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    for request in [
        tonic::Request::new(pb::UnpublishKnowledgeRequest {
            ticket_id: rot.id.clone(),
        }),
        with_token(
            pb::UnpublishKnowledgeRequest {
                ticket_id: rot.id.clone(),
            },
            &v1.token,
        ),
    ] {
        let status = roster.unpublish_knowledge(request).await.unwrap_err();
        assert!(
            matches!(
                status.code(),
                Code::Unauthenticated | Code::PermissionDenied
            ),
            "{status:?}"
        );
    }
    let status = roster
        .publish_knowledge(with_token(
            pb::PublishKnowledgeRequest {
                ticket_id: rot.id.clone(),
            },
            &v1.token,
        ))
        .await
        .unwrap_err();
    assert!(matches!(
        status.code(),
        Code::Unauthenticated | Code::PermissionDenied
    ));

    // Unpublished: gone from search and from MatchProblem.
    let removed = roster
        .unpublish_knowledge(admin(pb::UnpublishKnowledgeRequest {
            ticket_id: rot.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(removed.removed);
    assert!(hits(&mut client, "苹果树皮烂了，一股酒味").await.is_empty());
    let again = roster
        .unpublish_knowledge(admin(pb::UnpublishKnowledgeRequest {
            ticket_id: rot.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.removed);

    // Durable: after a restart the published entry is still found, the
    // unpublished one still not.
    server.stop().await;
    let server = TestServer::start(config(&dir)).await;
    let mut client = Match::new(server.channel().await);
    assert!(hits(&mut client, "苹果树皮烂了，一股酒味").await.is_empty());
    let found = hits(&mut client, "麦子叶子上黄锈一样的粉").await;
    assert_eq!(found[0].entry.as_ref().unwrap().id, wheat.id);

    // Connect JSON, without any token: the same search and MatchProblem.
    let reply = crate::web::connect(
        server.addr,
        "MatchService/SearchKnowledge",
        json!({"text": "麦子叶子上黄锈一样的粉", "corps": "CORPS_GRAIN_OIL"}),
    )
    .await;
    assert_eq!(reply.status, http::StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["hits"][0]["entry"]["id"], wheat.id.as_str(), "{body}");
    assert_eq!(body["hits"][0]["entry"]["tier"], "TIER_VILLAGE", "{body}");
    let reply = crate::web::connect(
        server.addr,
        "MatchService/MatchProblem",
        json!({"text": "小麦叶片上黄色锈粉一条一条的", "location": {"divisionCode": "610527106202"}}),
    )
    .await;
    let body = reply.json();
    assert_eq!(
        body["similar"][0]["entry"]["id"],
        wheat.id.as_str(),
        "{body}"
    );
    let reply = crate::web::connect(
        server.addr,
        "MatchService/SearchKnowledge",
        json!({"text": "小麦", "limit": 99}),
    )
    .await;
    assert_eq!(reply.status, http::StatusCode::BAD_REQUEST);
    server.stop_and_clean().await;
}

/// The held-out set (written by someone who had not seen the code; see
/// `tests/data/knowledge/knowledge-set.md`), measured once with the final
/// ranking: P@1 0.930, R@3 0.965, 6 of 23 no-answer queries with a hit.
/// The floors sit a little under, so a regression fails.
#[test]
fn the_held_out_knowledge_figures_hold() {
    use xingweinong::{knowledge::eval, reading::lexicon::Lexicon};
    let entries =
        eval::parse_entries(include_str!("../data/knowledge/knowledge-entries.jsonl")).unwrap();
    let queries =
        eval::parse_queries(include_str!("../data/knowledge/knowledge-queries.jsonl")).unwrap();
    let report = eval::evaluate(Lexicon::embedded(), entries, &queries).unwrap();
    eprintln!("{}", report.render(0));
    assert!(report.answerable >= 200, "{}", report.render(0));
    assert!(report.precision_at_1() >= 0.91, "{}", report.render(20));
    assert!(report.recall_at_3() >= 0.95, "{}", report.render(20));
    assert!(report.false_alarm_rate() <= 0.31, "{}", report.render(20));
}

/// Milliseconds of a timestamp.
fn ms(t: &prost_types::Timestamp) -> i64 {
    t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
}

/// An answer shared as it is resolved, rated by the farmer later: the
/// published entry takes the rating (SearchKnowledge, MatchProblem's
/// similar problems, a re-publication, after a restart), and its date
/// stays the time of the Resolved event.
async fn a_later_rating_reaches_the_entry(config: xingweinong::config::Config) {
    use pb::TicketEventKind as K;
    let server = TestServer::start(config.clone()).await;
    let channel = server.channel().await;
    import_rows(&channel, ROSTER).await;
    let mut v1 = Responder::new(&channel, "v1").await;
    v1.online().await;
    let mut client = Match::new(channel.clone());
    let mut farmer = TicketClient::new(channel.clone());
    let rot = solved(&channel, &mut v1, ROT, ROT_ANSWER, true).await;
    let found = hits(&mut client, "苹果树皮烂了，一股酒味").await;
    assert_eq!(found[0].entry.as_ref().unwrap().rating, None);

    // Rated well after the answer, so a date taken from the rating shows.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let rated = farmer
        .rate_answer(crate::ratings::rate(&rot, 4, "有用"))
        .await
        .unwrap()
        .into_inner();
    let resolved_at = rated
        .history
        .iter()
        .rfind(|e| e.kind() == K::Resolved)
        .unwrap()
        .at_ms;
    assert!(rated.history.last().unwrap().at_ms > resolved_at + 40);

    let entry = hits(&mut client, "苹果树皮烂了，一股酒味").await[0]
        .entry
        .clone()
        .unwrap();
    assert_eq!(
        (entry.id.as_str(), entry.rating),
        (rot.id.as_str(), Some(4))
    );
    assert_eq!(ms(entry.resolved_at.as_ref().unwrap()), resolved_at);
    let reply = client
        .match_problem(at_division("苹果树干烂了，树皮软，有酒味", "610527106202"))
        .await
        .unwrap()
        .into_inner();
    let similar = reply.similar[0].entry.as_ref().unwrap();
    assert_eq!(
        (similar.id.as_str(), similar.rating),
        (rot.id.as_str(), Some(4))
    );

    // Published again by an admin: the same rating and date.
    let mut roster = RosterClient::new(channel.clone());
    let again = roster
        .publish_knowledge(admin(pb::PublishKnowledgeRequest {
            ticket_id: rot.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.rating, Some(4));
    assert_eq!(ms(again.resolved_at.as_ref().unwrap()), resolved_at);

    // Stored: a restart reads the rating back.
    server.stop().await;
    let server = TestServer::start(config).await;
    let mut client = Match::new(server.channel().await);
    let entry = hits(&mut client, "苹果树皮烂了，一股酒味").await[0]
        .entry
        .clone()
        .unwrap();
    assert_eq!(entry.rating, Some(4));
    assert_eq!(ms(entry.resolved_at.as_ref().unwrap()), resolved_at);
    server.stop_and_clean().await;
}

#[tokio::test]
async fn a_later_rating_reaches_the_entry_on_sqlite() {
    a_later_rating_reaches_the_entry(config(&temp_dir("knowledge-rated"))).await;
}

#[tokio::test]
async fn a_later_rating_reaches_the_entry_on_postgres() {
    let Some(url) = postgres_db("krated").await else {
        return;
    };
    let mut config = config(&temp_dir("knowledge-rated-pg"));
    config.store = url;
    a_later_rating_reaches_the_entry(config).await;
}
