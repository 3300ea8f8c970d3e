//! `/admin` in a browser: a roster file with bad rows is refused with every
//! bad row listed and the live roster unchanged (the API agrees); a good
//! file then replaces the roster; the statistics show figures. The 消息推送
//! card shows a failing webhook endpoint and its failed deliveries with the
//! last error, and its retry buttons send them again.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use xingweinong::pb;

use super::{assert_public_api_only, Driver};
use crate::{
    common::{admin, config, temp_dir, RosterClient, TestServer, ADMIN_TOKEN, HEADER},
    notify::{list, notifying, submit, Receiver},
};

/// Two good rows.
const GOOD: &str = "g1,甲一,13900000001,city,果树,苹果;梨,苹果腐烂病防治,610500000000,,,8,true\n\
g2,乙二,13900000002,village,,苹果,,610527106202,35.2,109.6,3,yes\n";

/// Bad rows of every kind the parser reports, one a line (lines 4 to 8 of
/// the file: the header is line 1, the good rows lines 2 and 3).
const BAD: &str = "b1,坏一,,province,,苹果,,610527106202,,,,\n\
b2,坏二,,village,,,,610527106202,,,,\n\
b3,坏三,,village,,苹果,,123456789012,,,,\n\
g1,重复,,village,,苹果,,610527106202,,,,\n\
b5,坏五,,village,,苹果,,610527106202,95.0,109.0,,\n";

async fn stats(roster: &mut RosterClient) -> pb::RosterStats {
    roster
        .get_roster_stats(admin(pb::GetRosterStatsRequest {}))
        .await
        .unwrap()
        .into_inner()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_sees_every_bad_row_and_then_replaces_the_roster() {
    let Some(mut driver) = Driver::start("admin").await else {
        return;
    };
    let dir = temp_dir("browser-admin");
    let server = TestServer::start(config(&dir)).await;
    let addr = server.addr;
    let mut roster = RosterClient::new(server.channel().await);
    let before = stats(&mut roster).await;
    let files = temp_dir("browser-admin-files");
    let bad = write(&files, "bad-roster.csv", &format!("{HEADER}\n{GOOD}{BAD}"));
    let good = write(&files, "good-roster.csv", &format!("{HEADER}\n{GOOD}"));
    let bad_lines = BAD.lines().count();

    let page = driver.session("admin").await;
    page.open(addr, "/admin").await;
    page.type_into("admin-token", ADMIN_TOKEN).await;
    page.click("sign-in").await;
    // The statistics show the demo roster's figures.
    let version = page
        .wait_js(
            "the statistics",
            "const s = document.querySelector('[data-testid=stats]'); \
             return s && s.dataset.rosterVersion ? s.dataset.rosterVersion : null;",
            vec![],
        )
        .await;
    assert_eq!(version, json!(before.roster_version.to_string()));
    let total = page.el("stats").await;
    let total = page.ok(total.text().await, "stats text").await;
    let shown = before.total.to_string();
    let grouped = format!("{},{:03}", before.total / 1000, before.total % 1000);
    assert!(
        total.contains(&shown) || total.contains(&grouped),
        "stats shows the total {shown}: {total}"
    );
    for county in before.by_county.keys().take(3) {
        assert!(total.contains(county.as_str()), "{county} in {total}");
    }
    // The charts draw: in each, the largest figure's bar is filled across,
    // and a smaller one less.
    let fills = page
        .js(
            "return [...document.querySelectorAll('[data-testid=stats] .bars')].map(ul => \
               [...ul.querySelectorAll('li')].map(li => { \
                 const bar = li.querySelector('.bar').getBoundingClientRect().width; \
                 const fill = li.querySelector('.bar > *').getBoundingClientRect().width; \
                 return bar > 0 ? fill / bar : -1; }));",
            vec![],
        )
        .await;
    let charts: Vec<Vec<f64>> = serde_json::from_value(fills).unwrap();
    page.check(charts.len() >= 3, || format!("charts: {charts:?}"))
        .await;
    for chart in &charts {
        let max = chart.iter().cloned().fold(0.0, f64::max);
        let min = chart.iter().cloned().fold(1.0, f64::min);
        page.check(max > 0.95 && min < max, || {
            format!("bars not drawn to scale (filled share of each bar): {charts:?}")
        })
        .await;
    }

    // A file with bad rows: every bad row listed, the roster unchanged.
    page.type_into("roster-file", &bad).await;
    page.click("import").await;
    page.wait_js(
        "the import to be refused",
        "return document.querySelector('[data-testid=import-result]').dataset.outcome === 'rejected';",
        vec![],
    )
    .await;
    let rows = page
        .js(
            "return [...document.querySelectorAll('[data-testid=row-errors] [data-testid=row-error]')] \
             .map(r => [r.dataset.line, r.dataset.field, r.innerText]);",
            vec![],
        )
        .await;
    let rows = rows.as_array().unwrap();
    let lines: Vec<&str> = rows.iter().map(|r| r[0].as_str().unwrap()).collect();
    let fields: Vec<&str> = rows.iter().map(|r| r[1].as_str().unwrap()).collect();
    // One row-error per bad line of the file, in order, naming its field.
    page.check(rows.len() == bad_lines, || {
        format!(
            "{} row errors for {bad_lines} bad lines: {rows:?}",
            rows.len()
        )
    })
    .await;
    page.check(lines == ["4", "5", "6", "7", "8"], || format!("{rows:?}"))
        .await;
    page.check(
        fields == ["tier", "specialties", "division_code", "id", "lat"],
        || format!("{rows:?}"),
    )
    .await;
    let result = page.wait_text("import-result", "现有名册未改变").await;
    assert!(
        result.contains(&before.roster_version.to_string()),
        "names the version still served: {result}"
    );
    assert_eq!(stats(&mut roster).await, before, "the live roster changed");
    page.shoot("row-errors", Some("import-result")).await;

    // Many bad rows: more than a refusal's details hold; the page fetches
    // the whole list with CheckRosterFile over Connect streaming.
    let mut many = format!("{HEADER}\n");
    for i in 0..1_500 {
        many.push_str(&format!("m{i},坏,,province,,苹果,,610527106202,,,,\n"));
    }
    let many = write(&files, "many-bad.csv", &many);
    page.type_into("roster-file", &many).await;
    page.click("import").await;
    page.wait_js(
        "every bad row to be listed",
        "return document.querySelector('[data-testid=import-result]').dataset.rows === 'all';",
        vec![],
    )
    .await;
    let listed = page
        .js(
            "const r = [...document.querySelectorAll('[data-testid=row-errors] [data-testid=row-error]')]; \
             return [r.length, r[0].dataset.line, r[r.length - 1].dataset.line];",
            vec![],
        )
        .await;
    page.check(listed == json!([1500, "2", "1501"]), || {
        format!("rows listed (count, first, last line): {listed}")
    })
    .await;
    page.wait_text("import-result", "现有名册未改变").await;
    page.wait_text("import-result", "1,500").await;
    assert_eq!(stats(&mut roster).await, before, "the live roster changed");

    // A good file replaces the roster.
    page.type_into("roster-file", &good).await;
    page.click("import").await;
    page.wait_js(
        "the import to be accepted",
        "return document.querySelector('[data-testid=import-result]').dataset.outcome === 'accepted';",
        vec![],
    )
    .await;
    let after = stats(&mut roster).await;
    assert_eq!(after.total, 2);
    assert!(after.roster_version > before.roster_version);
    page.wait_text(
        "import-result",
        &format!("名册版本 {}", after.roster_version),
    )
    .await;
    page.wait_js(
        "the statistics of the new roster",
        "return document.querySelector('[data-testid=stats]').dataset.rosterVersion === arguments[0];",
        vec![json!(after.roster_version.to_string())],
    )
    .await;
    page.shoot("imported", Some("import-result")).await;

    let calls = assert_public_api_only(addr, &page.requests().await, &[ADMIN_TOKEN]);
    println!("admin called {calls:?}");
    assert!(calls.iter().any(|c| c == "RosterService/ImportRosterFile"));
    assert!(calls.iter().any(|c| c == "RosterService/CheckRosterFile"));

    page.close().await;
    drop(driver);
    let _ = std::fs::remove_dir_all(files);
    server.stop_and_clean().await;
}

/// A path long enough to need wrapping on a phone.
const LONG_PATH: &str =
    "/gateway/v2/tenants/weinan-agri-platform/notifications/xwn-webhook-receiver";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_sees_a_failing_webhook_and_retries_it() {
    let Some(mut driver) = Driver::start("admin-deliveries").await else {
        return;
    };
    let receiver = Receiver::start(Arc::new(|_, _| (500, Duration::ZERO))).await;
    let dir = temp_dir("browser-deliveries");
    let url = format!("{}{LONG_PATH}", receiver.url());
    let mut cfg = notifying(&dir, &url);
    // Given up after a second, so the deliveries show as failed.
    cfg.notify.retry_for_secs = 1;
    let server = TestServer::start(cfg).await;
    let channel = server.channel().await;
    submit(&channel, "d1").await;
    submit(&channel, "d2").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let failed = list(&channel, pb::DeliveryState::Failed).await.deliveries;
        let pending = list(&channel, pb::DeliveryState::Pending).await.deliveries;
        if failed.len() >= 2 && pending.is_empty() {
            break failed;
        }
        assert!(
            Instant::now() < deadline,
            "given up: {failed:?} {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let page = driver.session("admin").await;
    page.open(server.addr, "/admin").await;
    page.type_into("admin-token", ADMIN_TOKEN).await;
    page.click("sign-in").await;
    // The failing endpoint, with its URL and counts, and a retry for all.
    let endpoint = page
        .wait_text("endpoint", &format!("失败 {}", failed.len()))
        .await;
    assert!(
        endpoint.contains("gw") && endpoint.contains(LONG_PATH) && endpoint.contains("有发送失败"),
        "{endpoint}"
    );
    page.el("retry-endpoint").await;
    // Each failed delivery with its last error and a retry of its own.
    let rows = page
        .wait_js(
            "the failed deliveries",
            "const r = [...document.querySelectorAll('[data-testid=delivery-row]')]; \
             return r.length >= arguments[0] ? r.map(e => [e.dataset.deliveryId, e.dataset.state, e.innerText]) : null;",
            vec![json!(failed.len())],
        )
        .await;
    let rows: Vec<(String, String, String)> = serde_json::from_value(rows).unwrap();
    for (id, state, text) in &rows {
        page.check(
            failed.iter().any(|f| &f.id == id)
                && state == "DELIVERY_STATE_FAILED"
                && text.contains("已放弃")
                && text.contains("HTTP 500"),
            || format!("a failed row with its error: {rows:?}"),
        )
        .await;
    }
    // Nothing in the card is cut off or scrolls sideways at 360 px.
    page.set_viewport(super::PHONE).await;
    let wide = page
        .js(
            "const card = document.querySelector('[data-testid=deliveries]'); \
             const right = card.getBoundingClientRect().right; \
             const name = e => e.tagName + '.' + e.className + ' ' + (e.innerText || '').slice(0, 30); \
             const scrolls = [...card.querySelectorAll('*')].filter(e => \
               ['auto', 'scroll'].includes(getComputedStyle(e).overflowX) && e.scrollWidth > e.clientWidth + 1); \
             const out = [...card.querySelectorAll('[data-testid=delivery-row] *, [data-testid=endpoint] *')] \
               .filter(e => e.getClientRects().length && e.getBoundingClientRect().right > right + 0.5); \
             return scrolls.concat(out).map(name);",
            vec![],
        )
        .await;
    page.check(wide == json!([]), || {
        format!("scrolls sideways in the card: {wide}")
    })
    .await;
    page.shoot("failing", Some("deliveries")).await;

    // The gateway is back: one delivery retried by its own button.
    receiver.set_answer(Arc::new(|_, _| (200, Duration::ZERO)));
    let first = rows[0].0.clone();
    page.js(
        "document.querySelector(`[data-testid=delivery-row][data-delivery-id='${arguments[0]}'] \
         [data-testid=retry-delivery]`).click();",
        vec![json!(first)],
    )
    .await;
    page.wait_text("deliveries-status", "已重新排队 1 条").await;
    receiver
        .until(10, "the retried one delivered", |h| {
            h.iter().any(|h| h.id == first && h.status == Some(200))
        })
        .await;
    // Refreshed until the delivery is recorded (just after the receiver's
    // answer).
    page.wait_js(
        "the delivered row gone from the failures",
        "document.querySelector('[data-testid=deliveries-refresh]').click();          return !document.querySelector(`[data-delivery-id='${arguments[0]}']`);",
        vec![json!(first)],
    )
    .await;
    // Then the rest, by the endpoint's button.
    page.js(
        "document.querySelector('[data-testid=deliveries-status]').textContent = '';",
        vec![],
    )
    .await;
    page.click("retry-endpoint").await;
    page.wait_text(
        "deliveries-status",
        &format!("已重新排队 {} 条", failed.len() - 1),
    )
    .await;
    receiver
        .until(10, "every retried one delivered", |h| {
            failed
                .iter()
                .all(|f| h.iter().any(|h| h.id == f.id && h.status == Some(200)))
        })
        .await;
    page.wait_js(
        "no failures left",
        "document.querySelector('[data-testid=deliveries-refresh]').click();          return !document.querySelector('[data-testid=delivery-row]');",
        vec![],
    )
    .await;
    page.wait_text("deliveries", "没有失败的通知").await;
    page.wait_text("endpoint", "失败 0").await;
    page.check(page.text("endpoint").await.contains("正常"), || {
        "the endpoint shows healthy".into()
    })
    .await;
    page.shoot("retried", Some("deliveries")).await;

    let calls = assert_public_api_only(server.addr, &page.requests().await, &[ADMIN_TOKEN]);
    assert!(calls.iter().any(|c| c == "RosterService/RetryDelivery"));
    page.close().await;
    drop(driver);
    server.stop_and_clean().await;
}
