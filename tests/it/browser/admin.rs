//! `/admin` in a browser: a roster file with bad rows is refused with every
//! bad row listed and the live roster unchanged (the API agrees); a good
//! file then replaces the roster; the statistics show figures.

use std::path::Path;

use serde_json::json;
use xingweinong::pb;

use super::{assert_public_api_only, Driver};
use crate::common::{admin, config, temp_dir, RosterClient, TestServer, ADMIN_TOKEN, HEADER};

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
