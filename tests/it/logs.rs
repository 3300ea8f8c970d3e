//! The logs never carry secrets or personal data: tokens, ticket secrets,
//! phone numbers, farmers' contacts and front ends' API keys stay out of
//! them even at debug level.

use crate::common::*;
use crate::links::WEBHOOK;
use xingweinong::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_tokens_secrets_or_phone_numbers() {
    let dir = temp_dir("logs");
    let log = dir.with_extension("log");
    let port = free_port();
    let key = "logs-front-end-key-0123456789";
    let keys = format!("[[limits.api_keys]]\nname = \"web\"\nkey = \"{key}\"\n{WEBHOOK}");
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
    // An action link: used, and used tampered with.
    let link = crate::links::link_for(&ch, &t.id).await;
    let mut by_link = Responder {
        id: "p1".into(),
        token: link.token.clone(),
        client: ResponderClient::new(ch.clone()),
    };
    by_link.watch().await;
    let tampered = format!("{}0", link.token);
    let mut forged = Responder {
        id: "p1".into(),
        token: tampered.clone(),
        client: ResponderClient::new(ch.clone()),
    };
    let refused = forged.accept(&t.id).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    by_link.resolve(&t.id, "剪除病斑").await.unwrap();
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
        &link.token,
        &tampered,
        // The signature alone, in case a token were cut or re-encoded.
        link.token.rsplit('.').next().unwrap(),
    ] {
        assert!(!text.contains(secret), "{secret} appears in the log");
    }
    let _ = std::fs::remove_file(log);
    let _ = std::fs::remove_dir_all(dir);
}

/// `text` without its terminal colours (`ESC [ … m`).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The log lines of `text` that hold `what`.
fn lines_with<'t>(text: &'t str, what: &str) -> Vec<&'t str> {
    text.lines().filter(|l| l.contains(what)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_logged_rate_limited_without_secrets() {
    let dir = temp_dir("refusal-logs");
    let log = dir.with_extension("log");
    let port = free_port();
    let limits = "client_rate_per_sec = 0.5\nclient_burst = 1.0\nmax_queue_ms = 0";
    let mut child = spawn_with(&dir, port, Some(&log), "sqlite", "", limits);
    let ch = connect(port).await;
    let mut roster = RosterClient::new(ch.clone());
    let wrong = "wrong-admin-token-burst-42";
    for _ in 0..40 {
        let refused = roster
            .get_roster_stats(with_token(pb::GetRosterStatsRequest {}, wrong))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    }
    let mut matcher = MatchClient::new(ch.clone());
    let mut limited = 0;
    for _ in 0..60 {
        let r = matcher
            .list_divisions(pb::ListDivisionsRequest::default())
            .await;
        if r.is_err_and(|s| s.code() == tonic::Code::ResourceExhausted) {
            limited += 1;
        }
    }
    assert!(limited >= 50, "{limited} calls refused at the rate limit");
    // A second later, the next line counts those left out.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    roster
        .get_roster_stats(with_token(pb::GetRosterStatsRequest {}, wrong))
        .await
        .unwrap_err();
    child.kill().unwrap();
    child.wait().unwrap();

    let text = plain(&std::fs::read_to_string(&log).unwrap());
    assert!(!text.contains(wrong), "the token appears in the log");
    let auth = lines_with(&text, "admin authentication failed");
    assert!((2..=4).contains(&auth.len()), "{auth:#?}");
    assert!(auth.iter().all(|l| l.contains("WARN")), "{auth:#?}");
    assert!(
        auth.iter().all(|l| l.contains("the admin token is wrong")),
        "{auth:#?}"
    );
    let counted: u64 = auth
        .iter()
        .filter_map(|l| l.split("suppressed=").nth(1))
        .filter_map(|n| n.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(counted as usize + auth.len(), 41, "{auth:#?}");
    let refused = lines_with(&text, "call refused at a limit");
    assert!((1..=4).contains(&refused.len()), "{refused:#?}");
    assert!(
        refused[0].contains("kind=\"rate_limit\"") || refused[0].contains("kind=rate_limit"),
        "{refused:#?}"
    );
    assert!(refused[0].contains("caller=127.0.0.1"), "{refused:#?}");
    let _ = std::fs::remove_file(log);
    let _ = std::fs::remove_dir_all(dir);
}
