//! Each page at a phone's width (360×740) before anyone signs in, and the
//! admin's page signed in with its statistics: nothing scrolls sideways,
//! and the check itself catches a page that would; loading each page asks
//! for nothing but its assets and the public API.

use super::{assert_public_api_only, Driver, PHONE};
use crate::common::{config, temp_dir, TestServer, ADMIN_TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_scrolls_sideways_on_a_phone() {
    let Some(mut driver) = Driver::start("layout").await else {
        return;
    };
    let dir = temp_dir("browser-layout");
    let server = TestServer::start(config(&dir)).await;
    let page = driver.session("pages").await;

    for (path, ready, label) in [
        ("/", "county", "farmer"),
        ("/expert", "responder-token", "expert"),
        ("/admin", "admin-token", "admin"),
    ] {
        page.open(server.addr, path).await;
        page.el(ready).await;
        page.shoot(label, None).await;
        // On load too, nothing but assets and the public API.
        assert_public_api_only(server.addr, &page.requests().await, &[]);
    }
    // Signed in, the admin's page draws its bars and tables.
    page.type_into("admin-token", ADMIN_TOKEN).await;
    page.click("sign-in").await;
    page.wait_js(
        "the statistics",
        "return document.querySelector('[data-testid=stats]').dataset.rosterVersion;",
        vec![],
    )
    .await;
    page.shoot("admin-stats", Some("stats")).await;

    // The check can fail: a 500 px wide element makes the page scroll.
    page.js(
        "const d = document.createElement('div'); d.style.width = '500px'; \
         d.style.height = '1px'; d.dataset.testid = 'too-wide'; document.body.append(d); return true;",
        vec![],
    )
    .await;
    let wide = page.overflow(PHONE.0).await;
    assert!(
        wide.as_deref().is_some_and(|w| w.contains("too-wide")),
        "{wide:?}"
    );

    page.close().await;
    drop(driver);
    server.stop_and_clean().await;
}
