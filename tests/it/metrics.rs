//! What operators see: `GET /metrics` on its own listener parses as
//! Prometheus (OpenMetrics) text, checked by a strict parser written here,
//! and its numbers move with the calls the test makes; with
//! `log.format = "json"` every log line is a JSON object and a call's lines
//! carry its method and ticket. Both run the `xwn` binary: the metrics
//! and the log subscriber are the process's own.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;
use xingweinong::pb;

/// One scrape: every sample by its name and sorted labels.
#[derive(Debug)]
struct Scrape {
    samples: HashMap<(String, BTreeMap<String, String>), f64>,
}

impl Scrape {
    /// The sample `name{labels}`, if present.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = (labels.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples.get(&(name.to_string(), labels)).copied()
    }

    /// The sample, 0 when absent (a counter not yet touched).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }
}

/// Checks that `name` is a valid metric (or label, `label = true`) name.
fn valid_name(name: &str, label: bool) -> bool {
    let mut chars = name.chars();
    let first_ok = |c: char| c.is_ascii_alphabetic() || c == '_' || (!label && c == ':');
    chars.next().is_some_and(first_ok)
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (!label && c == ':'))
}

/// A sample value: a float, `+Inf`, `-Inf` or `NaN`.
fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse().map_err(|_| format!("bad value {text:?}")),
    }
}

/// `{a="x",b="y"}` after a metric name: the labels and the rest of the line.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let Some(mut rest) = text.strip_prefix('{') else {
        return Ok((labels, text));
    };
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !valid_name(name, true) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("unquoted label value")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, '\n') => return Err("newline in a label value".into()),
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// The suffixes a sample of a family of `kind` may add to its name.
fn suffixes(kind: &str) -> &'static [&'static str] {
    match kind {
        "counter" => &["_total", "_created"],
        "gauge" | "unknown" | "info" | "stateset" => &[""],
        "histogram" | "gaugehistogram" => &["_bucket", "_count", "_sum", "_created"],
        "summary" => &["", "_count", "_sum", "_created"],
        _ => &[],
    }
}

/// Parses OpenMetrics text strictly: every line a descriptor of a family
/// declared once, or a sample of a declared family with a valid name,
/// labels and value, no series twice, `# EOF` last; histogram buckets
/// cumulative with `+Inf` equal to the count.
fn parse(text: &str) -> Result<Scrape, String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    let body = text
        .strip_suffix("# EOF\n")
        .ok_or("the text does not end with # EOF")?;
    for (n, line) in body.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if let Some(descriptor) = line.strip_prefix("# ") {
            let mut parts = descriptor.splitn(3, ' ');
            let (what, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let rest = parts.next().unwrap_or("");
            if !valid_name(name, false) {
                return Err(at(format!("bad metric name {name:?}")));
            }
            match what {
                "TYPE" => {
                    if suffixes(rest).is_empty() {
                        return Err(at(format!("unknown type {rest:?}")));
                    }
                    if types.insert(name.to_string(), rest.to_string()).is_some() {
                        return Err(at("family declared twice".into()));
                    }
                }
                "HELP" | "UNIT" => {}
                _ => return Err(at(format!("unknown descriptor {what:?}"))),
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !valid_name(name, false) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        let family = types.iter().find(|(family, kind)| {
            (suffixes(kind).iter()).any(|s| name.strip_suffix(s) == Some(family.as_str()))
        });
        if family.is_none() {
            return Err(at(format!("{name} belongs to no declared family")));
        }
        let (labels, rest) = parse_labels(&line[name_end..]).map_err(at)?;
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no value".into()))?
            .split(' ');
        let value = parse_value(fields.next().unwrap_or("")).map_err(at)?;
        if let Some(timestamp) = fields.next() {
            parse_value(timestamp).map_err(at)?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        if samples.insert((name.to_string(), labels), value).is_some() {
            return Err(at("series twice".into()));
        }
    }
    let scrape = Scrape { samples };
    check_histograms(&scrape, &types)?;
    Ok(scrape)
}

/// Buckets of each histogram series: cumulative, ending at `+Inf` = count.
fn check_histograms(scrape: &Scrape, types: &HashMap<String, String>) -> Result<(), String> {
    for (family, _) in types.iter().filter(|(_, kind)| *kind == "histogram") {
        let bucket = format!("{family}_bucket");
        let mut series: HashMap<BTreeMap<String, String>, Vec<(f64, f64)>> = HashMap::new();
        for ((name, labels), value) in &scrape.samples {
            if *name != bucket {
                continue;
            }
            let mut labels = labels.clone();
            let le = labels.remove("le").ok_or(format!("{bucket} without le"))?;
            series
                .entry(labels)
                .or_default()
                .push((parse_value(&le)?, *value));
        }
        for (labels, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if !buckets.windows(2).all(|w| w[0].1 <= w[1].1) {
                return Err(format!("{family}{labels:?}: buckets not cumulative"));
            }
            let count = (scrape.samples)
                .get(&(format!("{family}_count"), labels.clone()))
                .ok_or(format!("{family}{labels:?} has no count"))?;
            match buckets.last() {
                Some(&(le, n)) if le == f64::INFINITY && n == *count => {}
                _ => return Err(format!("{family}{labels:?}: +Inf bucket is not the count")),
            }
        }
    }
    Ok(())
}

/// A plain HTTP/1.1 request to `port`; the status line, headers and body.
async fn http(port: u16, request: &str) -> (String, String) {
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut reply))
        .await
        .expect("the reply came")
        .unwrap();
    let reply = String::from_utf8(reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").expect("a head and a body");
    (head.to_string(), body.to_string())
}

async fn scrape(port: u16) -> Scrape {
    let (head, body) = http(
        port,
        "GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    parse(&body).unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{body}"))
}

#[test]
fn the_parser_refuses_what_prometheus_would() {
    let good = "# TYPE a counter\n# HELP a A.\na_total{x=\"1\"} 2\n# TYPE h histogram\n\
                h_bucket{le=\"1.0\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 3.5\n# EOF\n";
    let scrape = parse(good).unwrap();
    assert_eq!(scrape.get("a_total", &[("x", "1")]), Some(2.0));
    for bad in [
        "# TYPE a counter\na_total 1\n",                         // no # EOF
        "a_total 1\n# EOF\n",                                    // no family
        "# TYPE a counter\na_total{x=1} 1\n# EOF\n",             // unquoted
        "# TYPE a counter\na_total one\n# EOF\n",                // not a number
        "# TYPE a counter\na_total 1\na_total 2\n# EOF\n",       // twice
        "# TYPE a gauge\na_total 1\n# EOF\n",                    // a gauge's suffix
        "# TYPE a counter\na_total{x=\"1\",x=\"2\"} 1\n# EOF\n", // a label twice
        "# TYPE h histogram\nh_bucket{le=\"1.0\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n# EOF\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n# EOF\n",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}

/// The one responder of the tests' roster: an apple specialist.
const P1: &str = "p1,甲,13912345678,village,,苹果,,610527106202,35.0,109.5,5,true\n";

/// p1 goes online and is offered a farmer's new ticket.
async fn offered_to_p1(ch: &tonic::transport::Channel) -> (Responder, pb::Ticket) {
    let mut r = Responder::new(ch, "p1").await;
    r.online().await;
    let mut stream = r.watch().await;
    let mut farmer = TicketClient::new(ch.clone());
    let request = submit_request("苹果树腐烂病", at_point(35.0, 109.5), "");
    let t = farmer.submit_problem(request).await.unwrap().into_inner();
    assert_eq!(t.state(), pb::TicketState::Offered);
    next(&mut stream).await;
    (r, t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_the_calls_made() {
    let (port, metrics_port) = (free_port(), free_port());
    let dir = temp_dir("metrics");
    let extra = format!("metrics_listen = \"127.0.0.1:{metrics_port}\"\n");
    let mut child = spawn_on(&dir, port, None, "sqlite", &extra);
    let ch = connect(port).await;
    let mut matcher = MatchClient::new(ch.clone());
    let match_ok = [("method", "MatchProblem"), ("code", "OK")];
    let calls = "xwn_calls_total";

    let before = scrape(metrics_port).await;
    for _ in 0..3 {
        let request = at_division("苹果树叶子发黄有斑点", "610527106202");
        matcher.match_problem(request).await.unwrap();
    }
    let after = scrape(metrics_port).await;
    assert_eq!(
        after.value(calls, &match_ok) - before.value(calls, &match_ok),
        3.0,
        "3 MatchProblem calls: {after:?}"
    );
    let timed = [("method", "MatchProblem")];
    let count = "xwn_call_seconds_count";
    assert_eq!(
        after.value(count, &timed) - before.value(count, &timed),
        3.0
    );

    // Refusals, counted with their code: by the handler (INVALID_ARGUMENT)
    // and at the door (an unknown API key: UNAUTHENTICATED, shed).
    let empty = at_division("", "610527106202");
    assert_eq!(
        matcher.match_problem(empty).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    let mut unknown = tonic::Request::new(at_division("苹果", "610527106202"));
    let header = "unknown-front-end-key-987".parse().unwrap();
    unknown.metadata_mut().insert("x-api-key", header);
    assert_eq!(
        matcher.match_problem(unknown).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    // The same method over Connect JSON counts as the same method.
    let json = r#"{"text":"苹果树叶子发黄有斑点","location":{"divisionCode":"610527106202"}}"#;
    let (head, _) = http(
        port,
        &format!(
            "POST /xingweinong.v1.MatchService/MatchProblem HTTP/1.1\r\nhost: x\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
            json.len()
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let refused = scrape(metrics_port).await;
    let code = |c| [("method", "MatchProblem"), ("code", c)];
    let moved = |c| refused.value(calls, &code(c)) - after.value(calls, &code(c));
    assert_eq!(moved("INVALID_ARGUMENT"), 1.0, "{refused:?}");
    assert_eq!(moved("UNAUTHENTICATED"), 1.0, "{refused:?}");
    assert_eq!(moved("OK"), 1.0, "the Connect call: {refused:?}");
    let shed = [("reason", "api_key")];
    let shed_name = "xwn_shed_total";
    assert_eq!(
        refused.value(shed_name, &shed) - after.value(shed_name, &shed),
        1.0
    );

    // The roster: its version and size as GetRosterStats says.
    import_rows(&ch, P1).await;
    let stats = RosterClient::new(ch.clone())
        .get_roster_stats(admin(pb::GetRosterStatsRequest {}))
        .await
        .unwrap()
        .into_inner();
    let imported = scrape(metrics_port).await;
    assert_eq!(
        imported.get("xwn_roster_version", &[]),
        Some(stats.roster_version as f64)
    );
    assert_eq!(imported.get("xwn_roster_talents", &[]), Some(1.0));
    let full = [("kind", "full")];
    assert!(imported.value("xwn_index_build_seconds_count", &full) >= 1.0);

    // A ticket: offered (the gauge and the offers move), then accepted.
    let (mut r, t) = offered_to_p1(&ch).await;
    let offered = scrape(metrics_port).await;
    let state = |s| [("state", s)];
    let village = [("tier", "village")];
    let open = |m: &Scrape, s| m.value("xwn_tickets", &state(s));
    assert_eq!(open(&offered, "offered") - open(&imported, "offered"), 1.0);
    assert_eq!(
        offered.value("xwn_offers_total", &village) - imported.value("xwn_offers_total", &village),
        1.0
    );
    let insert = [("operation", "commit")];
    let commits = "xwn_store_commit_seconds_count";
    assert_eq!(
        offered.value(commits, &insert) - imported.value(commits, &insert),
        1.0
    );
    r.accept(&t.id).await.unwrap();
    let accepted = scrape(metrics_port).await;
    let accepts = "xwn_ticket_accept_seconds_count";
    assert_eq!(
        accepted.value(accepts, &village) - offered.value(accepts, &village),
        1.0,
        "{accepted:?}"
    );
    assert_eq!(open(&accepted, "offered"), open(&imported, "offered"));
    assert_eq!(
        open(&accepted, "accepted") - open(&offered, "accepted"),
        1.0
    );

    // Only /metrics is served there.
    let (head, _) = http(
        metrics_port,
        "GET /other HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_carry_the_method_and_ticket() {
    let port = free_port();
    let dir = temp_dir("jsonlog");
    let log = dir.with_extension("log");
    let mut child = spawn_on(
        &dir,
        port,
        Some(&log),
        "sqlite",
        "[log]\nformat = \"json\"\n",
    );
    let ch = connect(port).await;
    import_rows(&ch, P1).await;
    let (mut r, t) = offered_to_p1(&ch).await;
    r.accept(&t.id).await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = (text.lines())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["message"] == "serving"),
        "the log was written: {text}"
    );
    // The call's span: method, and the ticket for a ticket call.
    let call_span = |line: &serde_json::Value, method: &str| {
        (line["spans"].as_array())
            .and_then(|spans| spans.iter().find(|s| s["name"] == "grpc"))
            .filter(|s| s["method"] == method)
            .cloned()
    };
    let submitted = (lines.iter())
        .find(|l| l["message"] == "ticket submitted")
        .and_then(|l| call_span(l, "SubmitProblem"))
        .unwrap_or_else(|| panic!("no submit line in its call's span: {text}"));
    assert_eq!(submitted["ticket_id"], t.id.as_str(), "{submitted}");
    let accepted = (lines.iter())
        .filter(|l| l["message"] == "call finished" && l["code"] == "OK")
        .find_map(|l| call_span(l, "AcceptAssignment"))
        .unwrap_or_else(|| panic!("no finished AcceptAssignment call: {text}"));
    assert_eq!(accepted["ticket_id"], t.id.as_str(), "{accepted}");
    let import = (lines.iter())
        .filter(|l| l["message"] == "call finished")
        .find_map(|l| call_span(l, "ImportRoster"));
    assert!(import.is_some(), "every call has its line: {text}");
    let _ = std::fs::remove_dir_all(&dir);
}
