//! A farmer attaches a photo on `/` at phone width (a PNG made by the test,
//! set on the file input through WebDriver), sees its thumbnail, submits,
//! and sees the photo on the ticket; the expert it is offered to sees it
//! in the console.

use xingweinong::photos::clean::fixtures;

use super::{Driver, Page};
use crate::common::{config, import_rows, temp_dir, token_for, TestServer};

const ROSTER: &str =
    "v1,村一,13900000011,village,,苹果,苹果腐烂病,610527106202,35.000,109.500,2,true\n";

/// Waits until every `<img>` of `testid` has loaded a picture.
const IMAGES_LOADED: &str = "const imgs = [...document.querySelectorAll(arguments[0])]; \
    return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);";

/// Waits until every `<img>` with data-testid `testid` shows a picture.
async fn wait_images(page: &Page, what: &str, testid: &str) {
    let selector = serde_json::json!(format!("[data-testid={testid}]"));
    page.wait_js(what, IMAGES_LOADED, vec![selector]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_farmer_attaches_a_photo_and_sees_it_on_the_ticket() {
    let Some(mut driver) = Driver::start("photo").await else {
        return;
    };
    let dir = temp_dir("browser-photo");
    let server = TestServer::start(config(&dir)).await;
    let addr = server.addr;
    let channel = server.channel().await;
    import_rows(&channel, ROSTER).await;
    let token = token_for(&channel, "v1").await;
    let photo = dir.join("leaf.png");
    std::fs::write(&photo, fixtures::png(900, 600)).unwrap();

    let expert = driver.session("expert").await;
    expert.sign_in_online(addr, &token).await;

    let farmer = driver.session("farmer").await;
    farmer.open(addr, "/").await;
    farmer
        .type_into("problem-text", "苹果树叶子发黄有斑点")
        .await;
    farmer.choose("county", "白水县").await;
    farmer.choose("town", "史官镇").await;
    farmer.choose("village", "史家山村").await;
    farmer.click("match").await;
    farmer.el("submit").await;
    // Attached, removed before submitting, attached again.
    for round in 0..2 {
        let input = farmer.el("photo-input").await;
        let r = input.send_keys(&photo.display().to_string()).await;
        farmer.ok(r, "set the photo on the file input").await;
        wait_images(&farmer, "the photo's thumbnail", "photo-thumb").await;
        farmer.wait_text("photo-status", "已添加 1 张").await;
        if round == 0 {
            farmer.click("remove-photo").await;
            farmer
                .wait_js(
                    "the photo removed",
                    "return !document.querySelector('[data-testid=photo-thumb]');",
                    vec![],
                )
                .await;
        }
    }
    farmer.shoot("photo-attached", Some("photo-list")).await;
    if let Some(overflow) = farmer.overflow(360).await {
        farmer
            .fail(&format!("the page overflows at 360 px: {overflow}"))
            .await;
    }
    farmer.click("submit").await;
    wait_images(&farmer, "the photo on the ticket", "ticket-photo").await;
    farmer.shoot("ticket-photo", Some("ticket-photos")).await;

    wait_images(&expert, "the photo in the offer", "offer-photo").await;
    expert.shoot("offer-photo", Some("offer")).await;
    farmer.close().await;
    expert.close().await;
    drop(driver);
    server.stop_and_clean().await;
}
