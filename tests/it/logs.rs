//! The logs never carry secrets or personal data: tokens, ticket secrets,
//! phone numbers, farmers' contacts and front ends' API keys stay out of
//! them even at debug level.

use crate::common::*;
use xingweinong::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_tokens_secrets_or_phone_numbers() {
    let dir = temp_dir("logs");
    let log = dir.with_extension("log");
    let port = free_port();
    let key = "logs-front-end-key-0123456789";
    let keys = format!("[[limits.api_keys]]\nname = \"web\"\nkey = \"{key}\"\n");
    let mut child = spawn_on(&dir, port, Some(&log), "sqlite", &keys);
    let ch = connect(port).await;
    let rows = "p1,甲,13912345678,village,,苹果,,610527106202,35.0,109.5,5,true\n";
    import_rows(&ch, rows).await;
    let mut r = Responder::new(&ch, "p1").await;
    r.online().await;
    let mut stream = r.watch().await;
    let mut farmer = TicketClient::new(ch.clone());
    let mut request = submit_request("苹果树腐烂病", at_point(35.0, 109.5), "");
    request.contact = "13687654321".into();
    let mut request = tonic::Request::new(request);
    request
        .metadata_mut()
        .insert("x-api-key", key.parse().unwrap());
    let t = farmer.submit_problem(request).await.unwrap().into_inner();
    // An unknown key is refused, and not echoed either.
    let mut unknown = tonic::Request::new(pb::ListDivisionsRequest::default());
    unknown
        .metadata_mut()
        .insert("x-api-key", "unknown-front-end-key-987".parse().unwrap());
    let mut matcher = MatchClient::new(ch.clone());
    let refused = matcher.list_divisions(unknown).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    next(&mut stream).await;
    r.accept(&t.id).await.unwrap();
    let get = pb::GetTicketRequest {
        ticket_id: t.id.clone(),
        ticket_secret: t.ticket_secret.clone(),
    };
    farmer.get_ticket(get).await.unwrap();
    // A wrong admin token must not be echoed either.
    let mut roster = RosterClient::new(ch.clone());
    roster
        .get_roster_stats(with_token(
            pb::GetRosterStatsRequest {},
            "wrong-admin-token-xyz",
        ))
        .await
        .unwrap_err();
    child.kill().unwrap();
    child.wait().unwrap();

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("serving"), "the log was written: {text}");
    for secret in [
        ADMIN_TOKEN,
        &r.token,
        &t.ticket_secret,
        "13912345678",
        "13687654321",
        "wrong-admin-token-xyz",
        key,
        "unknown-front-end-key-987",
    ] {
        assert!(!text.contains(secret), "{secret} appears in the log");
    }
    let _ = std::fs::remove_file(log);
    let _ = std::fs::remove_dir_all(dir);
}
