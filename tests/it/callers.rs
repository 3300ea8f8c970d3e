//! Who is calling, against the real server: a front end's API key has its
//! own rate (300 calls back to back pass where the same load without the
//! key is refused), an unknown key is refused, and forwarded addresses
//! count only from trusted proxies, IPv6 per /64.

use crate::common::*;
use tonic::{Code, Request};
use xingweinong::{config::ApiKeyConfig, pb};

const WEB_KEY: &str = "web-front-end-key-0123456789";
const SLOW_KEY: &str = "slow-front-end-key-0123456789";

/// A request with an API key and forwarding headers, as a front end or
/// proxy sends it.
fn sent<T>(message: T, headers: &[(&'static str, &str)]) -> Request<T> {
    let mut r = Request::new(message);
    for (name, value) in headers {
        r.metadata_mut().insert(*name, value.parse().unwrap());
    }
    r
}

fn apple() -> pb::MatchProblemRequest {
    at_division("苹果树腐烂病", "610527106202")
}

/// `n` MatchProblem calls one after another: how many were answered and
/// the refusals.
async fn matches(
    ch: &tonic::transport::Channel,
    n: usize,
    headers: &[(&'static str, &str)],
) -> (usize, Vec<tonic::Status>) {
    let mut matcher = MatchClient::new(ch.clone());
    let (mut answered, mut refused) = (0, Vec::new());
    for _ in 0..n {
        match matcher.match_problem(sent(apple(), headers)).await {
            Ok(_) => answered += 1,
            Err(s) => refused.push(s),
        }
    }
    (answered, refused)
}

/// One cheap farmer call (ListDivisions of the city) with these headers.
async fn call(ch: &tonic::transport::Channel, headers: &[(&'static str, &str)]) -> Code {
    let r = pb::ListDivisionsRequest {
        parent_code: String::new(),
    };
    match MatchClient::new(ch.clone())
        .list_divisions(sent(r, headers))
        .await
    {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_key_is_not_refused_at_its_rate_while_the_same_load_without_it_is() {
    let dir = temp_dir("api-keys");
    let mut cfg = config(&dir);
    // Browsers' limit, low enough that a slow test machine's refill does
    // not blur the count.
    cfg.limits.client_rate_per_sec = 1.0;
    cfg.limits.client_burst = 100.0;
    cfg.limits.api_keys = vec![
        ApiKeyConfig {
            name: "web".into(),
            key: WEB_KEY.into(),
            rate_per_sec: 500.0,
            burst: Some(500.0),
        },
        ApiKeyConfig {
            name: "slow".into(),
            key: SLOW_KEY.into(),
            rate_per_sec: 0.01,
            burst: Some(3.0),
        },
    ];
    let server = TestServer::start(cfg).await;
    let ch = server.channel().await;

    let (answered, refused) = matches(&ch, 300, &[("x-api-key", WEB_KEY)]).await;
    assert_eq!(answered, 300, "refused with the key: {:?}", refused.first());

    // The same load from the same address without the key.
    let (answered, refused) = matches(&ch, 300, &[]).await;
    assert!((100..=115).contains(&answered), "{answered} answered");
    for s in &refused {
        assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
        assert!(s.message().contains("without an API key"), "{s:?}");
    }

    // A key has its own rate.
    let (answered, refused) = matches(&ch, 4, &[("x-api-key", SLOW_KEY)]).await;
    assert_eq!(answered, 3);
    assert!(
        refused[0].message().contains("\"slow\""),
        "{:?}",
        refused[0]
    );
    assert!(!refused[0].message().contains(SLOW_KEY));

    // An unknown key is refused, named by its header, never echoed.
    let unknown = "not-a-key-of-this-server-42";
    let (_, refused) = matches(&ch, 1, &[("x-api-key", unknown)]).await;
    assert_eq!(refused[0].code(), Code::Unauthenticated, "{:?}", refused[0]);
    assert!(
        refused[0].message().contains("x-api-key"),
        "{:?}",
        refused[0]
    );
    assert!(!refused[0].message().contains(unknown));
    let mut roster = RosterClient::new(ch.clone());
    let mut stats = admin(pb::GetRosterStatsRequest {});
    stats
        .metadata_mut()
        .insert("x-api-key", unknown.parse().unwrap());
    assert_eq!(
        roster.get_roster_stats(stats).await.unwrap_err().code(),
        Code::Unauthenticated,
        "every call with an unknown key"
    );

    // The audit log names the front end by its key's name, never the key.
    let file = pb::RosterFile {
        format: pb::RosterFormat::Csv as i32,
        data: format!("{HEADER}\nk1,甲,,village,,苹果,,610527106202,,,,\n").into_bytes(),
    };
    let mut import = admin(file);
    import
        .metadata_mut()
        .insert("x-api-key", WEB_KEY.parse().unwrap());
    roster.import_roster_file(import).await.unwrap();
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(last["client"], "key:web", "{last}");
    assert!(!audit.contains(WEB_KEY) && !audit.contains(unknown));
    server.stop_and_clean().await;
}

/// A server whose anonymous callers get 3 calls, then none.
async fn stingy(tag: &str, trusted: &[&str]) -> TestServer {
    let mut cfg = config(&temp_dir(tag));
    cfg.limits.client_rate_per_sec = 0.001;
    cfg.limits.client_burst = 3.0;
    cfg.limits.trusted_proxies = trusted.iter().map(|p| p.to_string()).collect();
    TestServer::start(cfg).await
}

#[tokio::test]
async fn a_forged_forwarded_address_from_an_untrusted_peer_changes_nothing() {
    let server = stingy("forged", &[]).await;
    let ch = server.channel().await;
    let forged = [
        ("x-forwarded-for", "198.51.100.1"),
        ("x-forwarded-for", "198.51.100.2, 198.51.100.3"),
        ("forwarded", "for=198.51.100.4"),
        ("forwarded", "for=\"[2001:db8::1]:80\""),
        ("x-forwarded-for", "10.0.0.1"),
    ];
    let codes: Vec<Code> = futures_in_order(&ch, &forged).await;
    assert_eq!(
        codes,
        [
            Code::Ok,
            Code::Ok,
            Code::Ok,
            Code::ResourceExhausted,
            Code::ResourceExhausted
        ],
        "every call counts against 127.0.0.1"
    );
    server.stop_and_clean().await;
}

async fn futures_in_order(
    ch: &tonic::transport::Channel,
    headers: &[(&'static str, &str)],
) -> Vec<Code> {
    let mut codes = Vec::new();
    for h in headers {
        codes.push(call(ch, std::slice::from_ref(h)).await);
    }
    codes
}

#[tokio::test]
async fn from_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    let server = stingy("proxied", &["127.0.0.1", "10.0.0.0/8"]).await;
    let ch = server.channel().await;
    let a = [("x-forwarded-for", "203.0.113.7")];
    for _ in 0..3 {
        assert_eq!(call(&ch, &a).await, Code::Ok);
    }
    assert_eq!(call(&ch, &a).await, Code::ResourceExhausted);
    // Another client behind the same proxy.
    let b = [("forwarded", "for=\"203.0.113.8:5555\";proto=https")];
    for _ in 0..3 {
        assert_eq!(call(&ch, &b).await, Code::Ok, "a separate bucket");
    }
    // A client cannot escape by prepending an address: the right-most hop
    // that is not a trusted proxy counts.
    let prepended = [("x-forwarded-for", "198.51.100.9, 203.0.113.7, 10.1.1.1")];
    assert_eq!(call(&ch, &prepended).await, Code::ResourceExhausted);
    // IPv6 clients count per /64.
    for host in ["::1", "::2", "::3"] {
        let v6 = format!("for=\"[2001:db8:1:2{host}]\"");
        assert_eq!(call(&ch, &[("forwarded", v6.as_str())]).await, Code::Ok);
    }
    let same_64 = [("forwarded", "for=\"[2001:db8:1:2:ffff::9]\"")];
    assert_eq!(call(&ch, &same_64).await, Code::ResourceExhausted);
    let next_64 = [("forwarded", "for=\"[2001:db8:1:3::1]\"")];
    assert_eq!(call(&ch, &next_64).await, Code::Ok);
    // Without a forwarding header, the proxy itself is the client.
    for _ in 0..3 {
        assert_eq!(call(&ch, &[]).await, Code::Ok);
    }
    assert_eq!(call(&ch, &[]).await, Code::ResourceExhausted);
    server.stop_and_clean().await;
}
