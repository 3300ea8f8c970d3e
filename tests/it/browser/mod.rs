//! Tests in a real browser: headless Chromium, driven over W3C WebDriver
//! (fantoccini and the system's chromedriver), uses the pages that the real
//! server embeds, with separate profiles for farmer and expert.
//!
//! Elements are found only by `[data-testid=…]`; conditions are awaited
//! by polling with a deadline, never by fixed sleeps. A failure saves a
//! screenshot and the page's text next to the screenshots (the folder is
//! printed). Without Chromium the tests print why and pass, unless
//! `XWN_REQUIRE_BROWSER=1` (CI) makes that a failure.

mod admin;
mod farmer_expert;
mod knowledge;
mod layout;
mod links;
mod photos;
mod ratings;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use fantoccini::{elements::Element, error::CmdError, wd::WebDriverCompatibleCommand, Locator};
use serde_json::{json, Value};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one awaited condition may take (a loaded 2-core CI machine).
const DEADLINE: Duration = Duration::from_secs(30);

/// The two viewports every screenshot is taken at: a phone and a laptop.
pub(crate) const PHONE: (u32, u32) = (360, 740);
pub(crate) const DESKTOP: (u32, u32) = (1280, 800);

/// Where screenshots (and failure artefacts) go: `XWN_SCREENSHOT_DIR`, else
/// `screenshots/` in the cargo target folder.
pub(crate) fn screenshot_dir() -> PathBuf {
    let dir = if let Some(dir) = std::env::var_os("XWN_SCREENSHOT_DIR") {
        PathBuf::from(dir)
    } else {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        target.join("screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a line straight to stderr, past the test harness's capture, so
/// that it shows in a plain `cargo test`.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn program(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

/// One chromedriver process; each [`Page`] is a session of it with its
/// own fresh browser profile.
pub(crate) struct Driver {
    child: Child,
    port: u16,
    chromium: PathBuf,
    profiles: Vec<PathBuf>,
    test: String,
}

impl Driver {
    /// Starts chromedriver on a free port, or returns None (having said
    /// why) when chromedriver or Chromium is missing, unless
    /// `XWN_REQUIRE_BROWSER=1`, which turns that into a failure.
    pub(crate) async fn start(test: &str) -> Option<Driver> {
        let driver = program("XWN_CHROMEDRIVER", CHROMEDRIVER);
        let chromium = program("XWN_CHROMIUM", CHROMIUM);
        for path in [&driver, &chromium] {
            if !path.exists() {
                let install = "apt-get install chromium chromium-driver fonts-noto-cjk";
                if std::env::var("XWN_REQUIRE_BROWSER").as_deref() == Ok("1") {
                    panic!(
                        "browser tests cannot run: {} not found, and XWN_REQUIRE_BROWSER=1 ({install})",
                        path.display()
                    );
                }
                say(&format!(
                    "browser tests skipped: {} not found ({install})",
                    path.display()
                ));
                return None;
            }
        }
        let port = crate::common::free_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let deadline = Instant::now() + DEADLINE;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        say(&format!(
            "browser test {test}: screenshots in {}",
            screenshot_dir().display()
        ));
        Some(Driver {
            child,
            port,
            chromium,
            profiles: Vec::new(),
            test: test.into(),
        })
    }

    /// A new browser session (its own profile: cookies, storage) with a
    /// phone's viewport, that records every request its pages make.
    pub(crate) async fn session(&mut self, name: &str) -> Page {
        let profile = crate::common::temp_dir(&format!("chromium-{name}"));
        self.profiles.push(profile.clone());
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--lang=zh-CN",
            "--window-size=1280,1000",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": self.chromium, "args": args }),
        );
        let client = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", self.port))
        .await
        .unwrap_or_else(|e| panic!("no browser session: {e}"));
        let page = Page {
            client,
            name: format!("{}-{name}", self.test),
            viewport: PHONE,
        };
        page.cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": RECORDER }),
        )
        .await;
        page.set_viewport(PHONE).await;
        page
    }
}

impl Drop for Driver {
    /// Ends chromedriver and, since a failed test leaves its sessions open
    /// and Chromium outlives a killed chromedriver, every browser process
    /// of this driver's profiles (found by its `--user-data-dir`, by id).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let flags: Vec<String> = self
            .profiles
            .iter()
            .map(|p| format!("--user-data-dir={}", p.display()))
            .collect();
        let mut ours = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args = String::from_utf8_lossy(&cmdline);
            if args.split('\0').any(|a| flags.iter().any(|f| a == f)) {
                ours.push(pid.to_string());
            }
        }
        if !ours.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(&ours)
                .stderr(Stdio::null())
                .status();
        }
        for dir in &self.profiles {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Records every request a document makes through fetch, XMLHttpRequest,
/// WebSocket, EventSource or sendBeacon into `window.__xwnRequests`, before
/// the page's own scripts run (a DevTools script, so the page's CSP does
/// not apply to it).
const RECORDER: &str = r#"(() => {
  const log = [];
  Object.defineProperty(window, '__xwnRequests', { value: log });
  const abs = (u) => { try { return new URL(String(u), location.href).href; } catch (e) { return String(u); } };
  const of = window.fetch;
  window.fetch = function (input, init) {
    const req = input instanceof Request ? input : null;
    const method = ((init && init.method) || (req ? req.method : 'GET')).toUpperCase();
    let type = '';
    try { type = new Headers((init && init.headers) || (req ? req.headers : undefined)).get('content-type') || ''; } catch (e) {}
    log.push({ api: 'fetch', method, url: abs(req ? req.url : input), type });
    return of.apply(this, arguments);
  };
  const open = XMLHttpRequest.prototype.open;
  const header = XMLHttpRequest.prototype.setRequestHeader;
  XMLHttpRequest.prototype.open = function (method, url) {
    this.__xwn = { api: 'xhr', method: String(method).toUpperCase(), url: abs(url), type: '' };
    log.push(this.__xwn);
    return open.apply(this, arguments);
  };
  XMLHttpRequest.prototype.setRequestHeader = function (name, value) {
    if (this.__xwn && String(name).toLowerCase() === 'content-type') this.__xwn.type = String(value);
    return header.apply(this, arguments);
  };
  for (const name of ['WebSocket', 'EventSource']) {
    const Orig = window[name];
    if (!Orig) continue;
    window[name] = function (url, ...rest) {
      log.push({ api: name, method: 'GET', url: abs(url), type: '' });
      return new Orig(url, ...rest);
    };
    window[name].prototype = Orig.prototype;
  }
  if (navigator.sendBeacon) {
    const beacon = navigator.sendBeacon.bind(navigator);
    navigator.sendBeacon = (url, data) => { log.push({ api: 'beacon', method: 'POST', url: abs(url), type: '' }); return beacon(url, data); };
  }
})();"#;

/// A chromedriver command that runs one Chrome DevTools Protocol method.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// One request a page made, as the recorder or the resource timing saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) api: String,
    pub(crate) method: String,
    pub(crate) url: String,
    pub(crate) content_type: String,
}

static FAILURES: AtomicU32 = AtomicU32::new(0);

/// One browser session: a person at one page.
pub(crate) struct Page {
    pub(crate) client: fantoccini::Client,
    name: String,
    viewport: (u32, u32),
}

fn testid(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

impl Page {
    async fn cdp(&self, cmd: &'static str, params: Value) -> Value {
        let r = self.client.issue_cmd(Cdp { cmd, params }).await;
        self.ok(r, cmd).await
    }

    /// Emulates a device of this CSS size (a phone when narrower than 800).
    pub(crate) async fn set_viewport(&self, (width, height): (u32, u32)) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 800 }),
        )
        .await;
    }

    pub(crate) async fn open(&self, server: SocketAddr, path: &str) {
        let r = self.client.goto(&format!("http://{server}{path}")).await;
        self.ok(r, &format!("open {path}")).await;
    }

    /// Unwraps a WebDriver result, or fails with the page saved.
    pub(crate) async fn ok<T>(&self, r: Result<T, CmdError>, what: &str) -> T {
        match r {
            Ok(v) => v,
            Err(e) => self.fail(&format!("{what}: {e}")).await,
        }
    }

    /// Saves a screenshot and the page's text, then panics with `why`.
    pub(crate) async fn fail(&self, why: &str) -> ! {
        let n = FAILURES.fetch_add(1, Ordering::Relaxed);
        let base = screenshot_dir().join(format!("FAILED-{}-{n}", self.name));
        let png = base.with_extension("png");
        let txt = base.with_extension("txt");
        if let Ok(bytes) = self.client.screenshot().await {
            let _ = std::fs::write(&png, bytes);
        }
        let text = self
            .client
            .execute(
                "return location.href + '\\n\\n' + (document.body ? document.body.innerText : '') \
                 + '\\n\\nrequests:\\n' + JSON.stringify(window.__xwnRequests || [], null, 1)",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let _ = std::fs::write(&txt, text);
        panic!(
            "{} ({}): {why}\n  screenshot {}\n  page text  {}",
            self.name,
            self.viewport.0,
            png.display(),
            txt.display()
        );
    }

    /// Fails with the page saved unless `ok`.
    pub(crate) async fn check(&self, ok: bool, why: impl FnOnce() -> String) {
        if !ok {
            self.fail(&why()).await;
        }
    }

    /// Runs `script` (a function body; `arguments` are `args`) until it
    /// returns something truthy, and returns that; fails after the deadline.
    pub(crate) async fn wait_js(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + DEADLINE;
        let mut last_error = String::new();
        loop {
            match self.client.execute(script, args.clone()).await {
                Ok(v) if truthy(&v) => return v,
                Ok(_) => {}
                Err(e) => last_error = e.to_string(),
            }
            if Instant::now() > deadline {
                self.fail(&format!("waited {DEADLINE:?} for {what} {last_error}"))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `script` once and returns its value.
    pub(crate) async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        let r = self.client.execute(script, args).await;
        self.ok(r, script).await
    }

    /// The element `[data-testid=id]`, once it is present and shown.
    pub(crate) async fn el(&self, id: &str) -> Element {
        let sel = testid(id);
        self.wait_js(
            &format!("{sel} to be shown"),
            "const e = document.querySelector(arguments[0]); \
             return !!e && (e.type === 'file' || e.getClientRects().length > 0);",
            vec![json!(sel)],
        )
        .await;
        let r = self.client.find(Locator::Css(&sel)).await;
        self.ok(r, &sel).await
    }

    pub(crate) async fn click(&self, id: &str) {
        let el = self.el(id).await;
        self.wait_js(
            &format!("{id} to be enabled"),
            "return !document.querySelector(arguments[0]).disabled;",
            vec![json!(testid(id))],
        )
        .await;
        let r = el.click().await;
        self.ok(r, &format!("click {id}")).await;
    }

    pub(crate) async fn type_into(&self, id: &str, text: &str) {
        let el = self.el(id).await;
        let r = el.send_keys(text).await;
        self.ok(r, &format!("type into {id}")).await;
    }

    /// Chooses the option whose label contains `label` in the `<select>`
    /// `id`, once the page has filled it in.
    pub(crate) async fn choose(&self, id: &str, label: &str) {
        let sel = testid(id);
        self.el(id).await;
        self.wait_js(
            &format!("an option {label} in {id}"),
            "const s = document.querySelector(arguments[0]); \
             return !s.disabled && [...s.options].some(o => o.textContent.includes(arguments[1]));",
            vec![json!(sel), json!(label)],
        )
        .await;
        let value = self
            .js(
                "return [...document.querySelector(arguments[0]).options] \
                 .find(o => o.textContent.includes(arguments[1])).value;",
                vec![json!(sel), json!(label)],
            )
            .await;
        let el = self.el(id).await;
        let r = el.select_by_value(value.as_str().unwrap_or_default()).await;
        self.ok(r, &format!("choose {label} in {id}")).await;
    }

    /// Opens `/expert`, signs in with a responder token and goes online.
    pub(crate) async fn sign_in_online(&self, server: SocketAddr, token: &str) {
        self.open(server, "/expert").await;
        self.type_into("responder-token", token).await;
        self.click("sign-in").await;
        self.click("availability-online").await;
        self.wait_js(
            "the expert to be ONLINE",
            "return document.body.dataset.availability === 'AVAILABILITY_ONLINE';",
            vec![],
        )
        .await;
    }

    /// The shown text of `[data-testid=id]` once it contains `needle`.
    pub(crate) async fn wait_text(&self, id: &str, needle: &str) -> String {
        let v = self
            .wait_js(
                &format!("{id} to contain {needle:?}"),
                "const e = document.querySelector(arguments[0]); \
                 const t = e ? (e.innerText || e.value || e.textContent || '') : ''; \
                 return e && e.getClientRects().length > 0 && t.includes(arguments[1]) ? t : null;",
                vec![json!(testid(id)), json!(needle)],
            )
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// The shown text of `[data-testid=id]` (empty when absent).
    pub(crate) async fn text(&self, id: &str) -> String {
        let v = self
            .js(
                "const e = document.querySelector(arguments[0]); \
                 return e ? (e.innerText || e.value || e.textContent || '') : '';",
                vec![json!(testid(id))],
            )
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// Saves a screenshot of the page now at the phone's and the laptop's
    /// size, as `<test>-<page>-<label>-<w>x<h>.png`, with `[data-testid=focus]`
    /// scrolled to the top (none: the top of the page); at the phone's width
    /// the page must not scroll sideways.
    pub(crate) async fn shoot(&self, label: &str, focus: Option<&str>) {
        for size in [PHONE, DESKTOP] {
            self.set_viewport(size).await;
            let r = self
                .client
                .execute_async(
                    "const [sel, done] = arguments; \
                     const place = () => { const e = sel && document.querySelector(sel); \
                       if (e) e.scrollIntoView({ block: 'start', behavior: 'instant' }); \
                       else window.scrollTo({ top: 0, behavior: 'instant' }); }; \
                     let last = -1, still = 0, frames = 0; \
                     const settle = () => { \
                       still = window.scrollY === last ? still + 1 : 0; last = window.scrollY; \
                       if (still >= 3 || ++frames > 120) { place(); \
                         requestAnimationFrame(() => requestAnimationFrame(() => done(true))); } \
                       else requestAnimationFrame(settle); }; \
                     place(); requestAnimationFrame(settle);",
                    vec![json!(focus.map(testid))],
                )
                .await;
            // Once the page's own (smooth) scrolling has settled, two
            // frames, so that layout and paint follow the new size.
            self.ok(r, "a frame").await;
            if size == PHONE {
                if let Some(wide) = self.overflow(size.0).await {
                    self.fail(&format!("{label}: {wide}")).await;
                }
            }
            let r = self.client.screenshot().await;
            let png = self.ok(r, "screenshot").await;
            let path =
                screenshot_dir().join(format!("{}-{label}-{}x{}.png", self.name, size.0, size.1));
            std::fs::write(&path, png).unwrap();
        }
        self.set_viewport(self.viewport).await;
    }

    /// What makes the page wider than `width` CSS pixels (it would scroll
    /// sideways), or None. What is inside a box that scrolls sideways by
    /// itself (a wide table in its `.table-wrap`) is not named: it does
    /// not widen the page.
    pub(crate) async fn overflow(&self, width: u32) -> Option<String> {
        let v = self
            .js(
                "const w = arguments[0]; \
                 const sw = document.documentElement.scrollWidth; \
                 if (sw <= w) return null; \
                 const scrolls = (e) => { for (let a = e.parentElement; a; a = a.parentElement) \
                   if (['auto', 'scroll'].includes(getComputedStyle(a).overflowX)) return true; return false; }; \
                 const wide = [...document.querySelectorAll('body *')] \
                   .filter(e => e.getBoundingClientRect().right > w + 0.5 && !scrolls(e)).slice(0, 8) \
                   .map(e => e.tagName + (e.dataset.testid ? '[' + e.dataset.testid + ']' : '') \
                     + (typeof e.className === 'string' && e.className ? '.' + e.className : '') \
                     + ' right=' + Math.round(e.getBoundingClientRect().right)); \
                 return 'scrolls sideways at ' + w + ' px: scrollWidth ' + sw + '; too wide: ' + wide.join(', ');",
                vec![json!(width)],
            )
            .await;
        v.as_str().map(String::from)
    }

    /// Every request this document made: what the recorder saw through the
    /// page's APIs, and what the resource timing saw (scripts, styles,
    /// images, fonts), with the document itself.
    pub(crate) async fn requests(&self) -> Vec<Seen> {
        let v = self
            .js(
                "return { recorded: window.__xwnRequests || [], \
                   timed: performance.getEntriesByType('resource').map(e => ({ api: e.initiatorType, url: e.name })), \
                   document: location.href };",
                vec![],
            )
            .await;
        let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
        let mut seen = vec![Seen {
            api: "document".into(),
            method: "GET".into(),
            url: s(&v, "document"),
            content_type: String::new(),
        }];
        for r in v["recorded"].as_array().into_iter().flatten() {
            seen.push(Seen {
                api: s(r, "api"),
                method: s(r, "method"),
                url: s(r, "url"),
                content_type: s(r, "type"),
            });
        }
        for r in v["timed"].as_array().into_iter().flatten() {
            let api = s(r, "api");
            // fetch and XMLHttpRequest were recorded with their method.
            if api != "fetch" && api != "xmlhttprequest" {
                seen.push(Seen {
                    api,
                    method: "GET".into(),
                    url: s(r, "url"),
                    content_type: String::new(),
                });
            }
        }
        seen
    }

    /// Marks the document so that [`Page::assert_not_reloaded`] can tell it
    /// is still the same one.
    pub(crate) async fn mark_document(&self) {
        self.js("window.__xwnSameDocument = true; return true;", vec![])
            .await;
    }

    pub(crate) async fn assert_not_reloaded(&self) {
        let same = self
            .js("return window.__xwnSameDocument === true;", vec![])
            .await;
        if same != json!(true) {
            self.fail("the page was reloaded or navigated away").await;
        }
    }

    pub(crate) async fn close(self) {
        let _ = self.client.close().await;
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The `(service, method)` pairs of the proto, read from `proto/`.
pub(crate) fn proto_methods() -> Vec<(String, String)> {
    let proto = include_str!("../../../proto/xingweinong/v1/xwn.proto");
    let mut service = String::new();
    let mut methods = Vec::new();
    for line in proto.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("service ") {
            service = rest.trim_end_matches('{').trim().to_string();
        } else if let Some(rest) = line.strip_prefix("rpc ") {
            let name = rest.split('(').next().unwrap().trim();
            methods.push((service.clone(), name.to_string()));
        }
    }
    methods
}

/// The content types of gRPC-Web and Connect requests.
const API_TYPES: &[&str] = &[
    "application/grpc-web",
    "application/grpc-web+proto",
    "application/grpc-web-text",
    "application/grpc-web-text+proto",
    "application/json",
    "application/connect+json",
    "application/proto",
    "application/connect+proto",
];

/// Asserts that every request of `seen` went to `server` and is either a
/// page asset (GET, not an API path) or a POST of a proto method over
/// gRPC-Web or Connect, and that no URL carries one of `secrets`. Returns
/// the API methods called, in order.
pub(crate) fn assert_public_api_only(
    server: SocketAddr,
    seen: &[Seen],
    secrets: &[&str],
) -> Vec<String> {
    let origin = format!("http://{server}");
    let methods = proto_methods();
    let mut called = Vec::new();
    for s in seen {
        let what = format!("{s:?}");
        let path = s
            .url
            .strip_prefix(&origin)
            .unwrap_or_else(|| panic!("a request to another origin: {what}"));
        for secret in secrets {
            assert!(!s.url.contains(secret), "a secret in a URL: {what}");
        }
        let path = path.split('#').next().unwrap();
        if let Some(rpc) = path.strip_prefix("/xingweinong.v1.") {
            assert_eq!(s.method, "POST", "API calls are POSTs: {what}");
            assert!(!rpc.contains('?'), "no query on API calls: {what}");
            let (service, method) = rpc
                .split_once('/')
                .unwrap_or_else(|| panic!("not /Service/Method: {what}"));
            assert!(
                methods.iter().any(|(sv, m)| sv == service && m == method),
                "not a method of the proto: {what}"
            );
            let ty = s.content_type.split(';').next().unwrap().trim();
            assert!(
                API_TYPES.contains(&ty),
                "neither gRPC-Web nor Connect: {what}"
            );
            called.push(format!("{service}/{method}"));
        } else {
            assert_eq!(s.method, "GET", "a page asset is fetched with GET: {what}");
            assert!(
                s.api != "fetch" && s.api != "xhr" || is_asset(path),
                "a script call to something that is not the API: {what}"
            );
            assert!(is_asset(path), "neither a page asset nor the API: {what}");
        }
    }
    called
}

/// The pages and their static files.
fn is_asset(path: &str) -> bool {
    let path = path.split('?').next().unwrap();
    let ext = path.rsplit_once('.').map(|(_, e)| e);
    matches!(path, "/" | "/expert" | "/admin" | "/expert/" | "/admin/")
        || matches!(
            ext,
            Some("js" | "mjs" | "css" | "svg" | "png" | "ico" | "webmanifest" | "woff2" | "html")
        )
}

#[test]
fn the_request_check_refuses_what_is_not_the_public_api() {
    let server: SocketAddr = "127.0.0.1:50051".parse().unwrap();
    let seen = |api: &str, method: &str, url: &str, content_type: &str| Seen {
        api: api.into(),
        method: method.into(),
        url: url.into(),
        content_type: content_type.into(),
    };
    let ok = [
        seen("document", "GET", "http://127.0.0.1:50051/", ""),
        seen(
            "script",
            "GET",
            "http://127.0.0.1:50051/assets/farmer.js",
            "",
        ),
        seen(
            "fetch",
            "POST",
            "http://127.0.0.1:50051/xingweinong.v1.MatchService/MatchProblem",
            "application/json",
        ),
    ];
    assert_eq!(
        assert_public_api_only(server, &ok, &[]),
        ["MatchService/MatchProblem"]
    );
    let bad = [
        seen("script", "GET", "https://cdn.example/lib.js", ""),
        seen("fetch", "GET", "http://127.0.0.1:50051/api/tickets", ""),
        seen(
            "fetch",
            "POST",
            "http://127.0.0.1:50051/xingweinong.v1.MatchService/Secret",
            "application/json",
        ),
        seen(
            "fetch",
            "POST",
            "http://127.0.0.1:50051/xingweinong.v1.MatchService/MatchProblem",
            "text/plain",
        ),
        seen(
            "fetch",
            "GET",
            "http://127.0.0.1:50051/xingweinong.v1.MatchService/MatchProblem",
            "application/json",
        ),
        seen("xhr", "GET", "http://127.0.0.1:50051/?token=s3cret", ""),
    ];
    for b in bad {
        let refused = std::panic::catch_unwind(|| {
            assert_public_api_only(server, std::slice::from_ref(&b), &["s3cret"])
        });
        assert!(refused.is_err(), "accepted {b:?}");
    }
}
