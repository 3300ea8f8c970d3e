//! Notifications through the outbox, against webhook receivers run here (a
//! small hyper server each): retries with the same id until a 2xx, the
//! Standard Webhooks signature checked by a verifier written here apart
//! from the server's signer, 410 disabling an endpoint until an admin
//! retries, what each recipient's payload holds, order per ticket, kill -9
//! between commit and delivery, and two PostgreSQL replicas with one killed
//! mid-delivery.

use std::{
    collections::{HashMap, HashSet},
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use tokio_rustls::{rustls, TlsAcceptor};
use tonic::transport::Channel;
use xingweinong::{config::WebhookConfig, pb};

use crate::common::*;

/// The endpoint's secret: `whsec_` and 32 bytes in base64.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub(crate) id: String,
    timestamp: String,
    signature: String,
    body: String,
    /// What it answered; None while answering or when the sender went away.
    pub(crate) status: Option<u16>,
    start: Instant,
    end: Option<Instant>,
}

/// How the receiver answers the `n`th request (from 0) for a notification
/// id: a status after a delay.
pub(crate) type Answer = dyn Fn(&str, usize) -> (u16, Duration) + Send + Sync;

/// A webhook receiver on 127.0.0.1:0 that records every request (any
/// path).
pub(crate) struct Receiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    answer: Arc<Mutex<Arc<Answer>>>,
    https: bool,
}

/// Marks a hit ended when its answer is sent or its sender goes away.
struct Ending {
    hits: Arc<Mutex<Vec<Hit>>>,
    index: usize,
}

impl Drop for Ending {
    fn drop(&mut self) {
        self.hits.lock().unwrap()[self.index].end = Some(Instant::now());
    }
}

impl Receiver {
    pub(crate) async fn start(answer: Arc<Answer>) -> Receiver {
        Receiver::start_on(answer, None).await
    }

    /// Serves https with `tls` (a handshake that fails is dropped,
    /// unrecorded).
    async fn start_on(answer: Arc<Answer>, tls: Option<TlsAcceptor>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let answer = Arc::new(Mutex::new(answer));
        let (h, a, https) = (hits.clone(), answer.clone(), tls.is_some());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (hits, answer, tls) = (h.clone(), a.clone(), tls.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (hits, answer) = (hits.clone(), answer.clone());
                        async move { Ok::<_, Infallible>(receive(req, hits, answer).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match tls {
                        None => http.serve_connection(TokioIo::new(stream), service).await,
                        Some(tls) => match tls.accept(stream).await {
                            Ok(stream) => {
                                http.serve_connection(TokioIo::new(stream), service).await
                            }
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        Receiver {
            addr,
            hits,
            answer,
            https,
        }
    }

    pub(crate) fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}/hook", self.addr)
    }

    pub(crate) fn set_answer(&self, answer: Arc<Answer>) {
        *self.answer.lock().unwrap() = answer;
    }

    pub(crate) fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits until `done` holds of the hits (`secs` seconds at most).
    pub(crate) async fn until(
        &self,
        secs: u64,
        what: &str,
        done: impl Fn(&[Hit]) -> bool,
    ) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let hits = self.hits();
            if done(&hits) {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "{what} within {secs} s; got {} requests: {:?}",
                hits.len(),
                hits.iter().map(|h| (&h.id, h.status)).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(
    req: hyper::Request<hyper::body::Incoming>,
    hits: Arc<Mutex<Vec<Hit>>>,
    answer: Arc<Mutex<Arc<Answer>>>,
) -> hyper::Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let (index, n) = {
        let mut hits = hits.lock().unwrap();
        let n = hits.iter().filter(|h| h.id == id).count();
        hits.push(Hit {
            id: id.clone(),
            timestamp,
            signature,
            body: String::from_utf8(body.to_vec()).unwrap(),
            status: None,
            start: Instant::now(),
            end: None,
        });
        (hits.len() - 1, n)
    };
    let ending = Ending {
        hits: hits.clone(),
        index,
    };
    let answer = answer.lock().unwrap().clone();
    let (status, delay) = answer(&id, n);
    tokio::time::sleep(delay).await;
    hits.lock().unwrap()[index].status = Some(status);
    drop(ending);
    hyper::Response::builder()
        .status(status)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Checks a hit's signature as a receiver would, by the Standard Webhooks
/// specification, written here apart from the server's signer.
fn verify(secret: &str, hit: &Hit) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let signed = format!("{}.{}.{}", hit.id, hit.timestamp, hit.body);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    // The header may carry several space-separated signatures.
    hit.signature
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

fn json(hit: &Hit) -> serde_json::Value {
    serde_json::from_str(&hit.body).unwrap()
}

fn hook(url: &str) -> WebhookConfig {
    WebhookConfig {
        name: "gw".into(),
        url: url.into(),
        secret: SECRET.into(),
        events: Vec::new(),
    }
}

/// A test server's config with one webhook and fast retries.
pub(crate) fn notifying(dir: &std::path::Path, url: &str) -> xingweinong::config::Config {
    let mut config = config(dir);
    config.notify.public_base_url = Some("https://xwn.example.org".into());
    config.notify.retry_base_ms = 50;
    config.notify.webhooks = vec![hook(url)];
    config
}

/// The same as `[notify]` TOML for the binary.
fn notify_toml(url: &str, extra: &str) -> String {
    format!(
        "[notify]\npublic_base_url = \"https://xwn.example.org\"\nretry_base_ms = 50\n{extra}\n\
         [[notify.webhooks]]\nname = \"gw\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n"
    )
}

pub(crate) async fn list(
    channel: &Channel,
    state: pb::DeliveryState,
) -> pb::ListDeliveriesResponse {
    RosterClient::new(channel.clone())
        .list_deliveries(admin(pb::ListDeliveriesRequest {
            state: state as i32,
            endpoint: String::new(),
            page_size: 500,
            page_token: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
}

pub(crate) async fn submit(channel: &Channel, key: &str) -> pb::Ticket {
    TicketClient::new(channel.clone())
        .submit_problem(submit_request("苹果树腐烂病", at_point(35.0, 109.5), key))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_notification_is_retried_with_the_same_id_until_a_2xx() {
    // Three failures of each kind a webhook can give, then success.
    let receiver = Receiver::start(Arc::new(|_, n| match n {
        0 => (503, Duration::ZERO),
        1 => (500, Duration::ZERO),
        2 => (404, Duration::ZERO),
        _ => (200, Duration::ZERO),
    }))
    .await;
    let dir = temp_dir("notify-retry");
    let server = TestServer::start(notifying(&dir, &receiver.url())).await;
    let channel = server.channel().await;
    // Nobody is ONLINE, but with a webhook the nearest responder is
    // offered the ticket through a notification.
    let ticket = submit(&channel, "").await;
    let hits = receiver
        .until(20, "a 2xx", |h| h.iter().any(|h| h.status == Some(200)))
        .await;
    // Nothing more comes once it is delivered.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hits_after = receiver.hits();
    assert_eq!(hits_after.len(), hits.len(), "nothing after the 2xx");
    assert_eq!(hits.len(), 4, "three failures and the success: {hits:?}");
    let id = &hits[0].id;
    assert!(id.starts_with("msg_"), "{id}");
    for hit in &hits {
        assert_eq!(&hit.id, id, "the same id on every attempt");
        assert!(verify(SECRET, hit), "the signature verifies: {hit:?}");
        let body = json(hit);
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["type"], "ticket.offered");
        assert_eq!(body["ticket"]["id"], ticket.id.as_str());
        assert_eq!(body["recipient"]["kind"], "responder");
        assert_eq!(
            body["action_url"],
            json(&hits[0])["action_url"],
            "the same body"
        );
        assert!(body["action_url"]
            .as_str()
            .is_some_and(|u| u.contains("/expert#action=")));
    }
    // A tampered body or another key does not verify: the check is real.
    let mut tampered = hits[0].clone();
    tampered.body.push(' ');
    assert!(!verify(SECRET, &tampered));
    assert!(!verify(
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        &hits[0]
    ));
    // Each retry waits longer than the one before (back-off).
    let gaps: Vec<Duration> = hits.windows(2).map(|w| w[1].start - w[0].start).collect();
    assert!(gaps[2] > gaps[0], "back-off: {gaps:?}");

    let delivered = list(&channel, pb::DeliveryState::Delivered).await;
    let d = &delivered.deliveries[0];
    assert_eq!(
        (d.id.as_str(), d.attempts, d.last_status),
        (id.as_str(), 4, 200)
    );
    assert_eq!(delivered.endpoints[0].delivered, 1);
    assert!(list(&channel, pb::DeliveryState::Pending)
        .await
        .deliveries
        .is_empty());
    server.stop_and_clean().await;
}

const ROSTER: &str = "\
v1,村一,13900000011,village,,苹果,苹果腐烂病,610527106202,35.000,109.500,5,true
";

#[tokio::test]
async fn each_recipient_gets_what_it_may_see_in_ticket_order() {
    // The ticket's first notification fails three times (about 350 ms of
    // back-off) while the ticket is accepted and resolved: the later ones
    // must wait for it.
    let first: Mutex<Option<String>> = Mutex::new(None);
    let receiver = Receiver::start(Arc::new(move |id, n| {
        let mut first = first.lock().unwrap();
        let first = first.get_or_insert_with(|| id.to_string());
        match (first.as_str() == id, n) {
            (true, 0..=2) => (503, Duration::ZERO),
            _ => (204, Duration::ZERO),
        }
    }))
    .await;
    let dir = temp_dir("notify-payload");
    let server = TestServer::start(notifying(&dir, &receiver.url())).await;
    let channel = server.channel().await;
    import_rows(&channel, ROSTER).await;
    RosterClient::new(channel.clone())
        .import_liaisons_file(admin(pb::RosterFile {
            format: pb::RosterFormat::Csv as i32,
            data: "id,name,phone,villages\nl1,党员甲,13900000099,610527106202\n"
                .as_bytes()
                .to_vec(),
        }))
        .await
        .unwrap();
    let mut v1 = Responder::new(&channel, "v1").await;
    v1.online().await;
    let mut request = submit_request(
        "苹果树腐烂病",
        Some(pb::Location {
            kind: Some(pb::location::Kind::DivisionCode("610527106202".into())),
        }),
        "",
    );
    request.contact = "13700000001".into();
    let ticket = TicketClient::new(channel.clone())
        .submit_problem(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ticket.state(), pb::TicketState::Offered);
    v1.accept(&ticket.id).await.unwrap();
    v1.resolve(&ticket.id, "剪除病枝，涂药").await.unwrap();
    // offered, accepted, resolved: each to its recipient and to the liaison.
    let hits = receiver
        .until(20, "six notifications", |h| {
            h.iter().filter(|h| h.status == Some(204)).count() >= 6
        })
        .await;
    assert_eq!(hits.len(), 9, "three failures, six deliveries");
    let hits: Vec<Hit> = hits.into_iter().filter(|h| h.status == Some(204)).collect();
    let seen: Vec<(String, String)> = hits
        .iter()
        .map(|h| {
            let b = json(h);
            (
                b["type"].as_str().unwrap().to_string(),
                b["recipient"]["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("ticket.offered", "responder"),
        ("ticket.offered", "liaison"),
        ("ticket.accepted", "farmer"),
        ("ticket.accepted", "liaison"),
        ("ticket.resolved", "farmer"),
        ("ticket.resolved", "liaison"),
    ];
    assert_eq!(
        seen,
        expected.map(|(a, b)| (a.to_string(), b.to_string())),
        "in the ticket's order"
    );
    for hit in &hits {
        assert!(verify(SECRET, hit));
        let b = json(hit);
        for phone in ["13900000011", "13900000099"] {
            assert!(!hit.body.contains(phone), "a phone never: {}", hit.body);
        }
        let contact = b["ticket"].get("contact").and_then(|c| c.as_str());
        match b["recipient"]["kind"].as_str().unwrap() {
            "farmer" => {
                assert_eq!(b["recipient"]["contact"], "13700000001");
                assert_eq!(contact, Some("13700000001"));
            }
            // An offer is not an acceptance; a liaison only watches.
            _ => assert_eq!(contact, None, "no contact: {}", hit.body),
        }
        if b["type"] == "ticket.offered" && b["recipient"]["kind"] == "responder" {
            assert_eq!(b["recipient"]["id"], "v1");
            // The signed link of tests/it/links.rs, in the fragment.
            let url = b["action_url"].as_str().unwrap();
            let token = url
                .strip_prefix("https://xwn.example.org/expert#action=xwn1.")
                .unwrap_or_else(|| panic!("not an action link: {url}"));
            assert!(token.len() > 64, "{url}");
        } else {
            assert!(b.get("action_url").is_none());
        }
    }
    assert_eq!(json(&hits[5])["ticket"]["answer"], "剪除病枝，涂药");
    server.stop_and_clean().await;
}

#[tokio::test]
async fn a_410_disables_the_endpoint_until_an_admin_retries() {
    let receiver = Receiver::start(Arc::new(|_, _| (410, Duration::ZERO))).await;
    let dir = temp_dir("notify-gone");
    let server = TestServer::start(notifying(&dir, &receiver.url())).await;
    let channel = server.channel().await;
    submit(&channel, "a").await;
    receiver
        .until(10, "the first attempt", |h| h.len() == 1)
        .await;
    submit(&channel, "b").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(receiver.hits().len(), 1, "a disabled endpoint gets nothing");
    let pending = list(&channel, pb::DeliveryState::Pending).await;
    assert_eq!(pending.deliveries.len(), 2, "both wait, none lost");
    let gw = &pending.endpoints[0];
    assert!(
        gw.disabled && gw.disabled_at_ms > 0 && gw.pending == 2,
        "{gw:?}"
    );
    assert_eq!(pending.deliveries[1].last_status, 410);

    receiver.set_answer(Arc::new(|_, _| (200, Duration::ZERO)));
    let retried = RosterClient::new(channel.clone())
        .retry_delivery(admin(pb::RetryDeliveryRequest {
            endpoint: "gw".into(),
            id: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.retried, 0, "nothing had failed: both were held");
    // The retry is an admin action: audited with what it named.
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(last["action"], "retry_delivery", "{audit}");
    assert_eq!(
        (&last["endpoint"], &last["id"], &last["retried"]),
        (&"gw".into(), &serde_json::Value::Null, &0.into())
    );
    assert_eq!(last["client"], "127.0.0.1", "{last}");
    receiver
        .until(10, "both delivered", |h| {
            h.iter().filter(|h| h.status == Some(200)).count() == 2
        })
        .await;
    let after = list(&channel, pb::DeliveryState::Unspecified).await;
    assert!(!after.endpoints[0].disabled);
    assert_eq!(after.endpoints[0].delivered, 2);
    // Other callers may not look.
    let refused = RosterClient::new(channel.clone())
        .list_deliveries(pb::ListDeliveriesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    server.stop_and_clean().await;
}

#[tokio::test]
async fn without_webhooks_nothing_is_written() {
    let dir = temp_dir("notify-off");
    let server = TestServer::start(config(&dir)).await;
    let channel = server.channel().await;
    submit(&channel, "").await;
    let all = list(&channel, pb::DeliveryState::Unspecified).await;
    assert!(all.deliveries.is_empty() && all.endpoints.is_empty());
    server.stop_and_clean().await;
}

/// Polls `list(state)` until `done` holds of it (`secs` seconds at most).
async fn until_listed(
    channel: &Channel,
    state: pb::DeliveryState,
    secs: u64,
    what: &str,
    done: impl Fn(&pb::ListDeliveriesResponse) -> bool,
) -> pb::ListDeliveriesResponse {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let listed = list(channel, state).await;
        if done(&listed) {
            return listed;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {secs} s: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn delivered_notifications_are_pruned_after_their_retention() {
    let receiver = Receiver::start(Arc::new(|_, _| (200, Duration::ZERO))).await;
    let dir = temp_dir("notify-prune");
    let mut config = notifying(&dir, &receiver.url());
    config.notify.keep_delivered_secs = 1;
    // Nobody answers this one: its rows stay pending, retried.
    config.notify.webhooks.push(WebhookConfig {
        name: "down".into(),
        ..hook("http://127.0.0.1:1/hook")
    });
    let server = TestServer::start(config).await;
    let channel = server.channel().await;
    submit(&channel, "p").await;
    receiver
        .until(10, "a delivery", |h| {
            h.iter().any(|h| h.status == Some(200))
        })
        .await;
    let pending = list(&channel, pb::DeliveryState::Pending).await;
    assert!(
        pending.deliveries.iter().any(|d| d.endpoint == "down"),
        "{pending:?}"
    );
    until_listed(
        &channel,
        pb::DeliveryState::Delivered,
        10,
        "the delivered rows pruned",
        |l| l.deliveries.is_empty(),
    )
    .await;
    let after = list(&channel, pb::DeliveryState::Pending).await;
    assert_eq!(
        after.deliveries.iter().map(|d| &d.id).collect::<Vec<_>>(),
        pending.deliveries.iter().map(|d| &d.id).collect::<Vec<_>>(),
        "pending rows are kept"
    );
    server.stop_and_clean().await;
}

/// A TLS acceptor with the test PKI's server certificate (127.0.0.1).
fn acceptor(pki: &crate::tls::Pki) -> TlsAcceptor {
    use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(pki.path("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.path("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

#[tokio::test]
async fn https_webhooks_are_delivered_once_their_ca_is_trusted() {
    let pki = crate::tls::Pki::new("notify-https");
    let receiver =
        Receiver::start_on(Arc::new(|_, _| (200, Duration::ZERO)), Some(acceptor(&pki))).await;

    // The private CA is not among the system's roots: every attempt fails
    // at the handshake, and the recorded error names the certificate.
    let dir = temp_dir("notify-https-untrusted");
    let server = TestServer::start(notifying(&dir, &receiver.url())).await;
    let channel = server.channel().await;
    submit(&channel, "u").await;
    let failing = until_listed(
        &channel,
        pb::DeliveryState::Pending,
        10,
        "a failed attempt",
        |l| l.deliveries.iter().any(|d| d.attempts > 0),
    )
    .await;
    let error = &failing.deliveries[0].last_error;
    assert!(
        error.contains("certificate") && error.contains("UnknownIssuer"),
        "{error}"
    );
    assert!(receiver.hits().is_empty(), "nothing sent without trust");
    server.stop_and_clean().await;

    // With notify.ca_path naming the CA: delivered over https.
    let dir = temp_dir("notify-https");
    let mut config = notifying(&dir, &receiver.url());
    config.notify.ca_path = Some(pki.path("ca.pem"));
    let server = TestServer::start(config).await;
    let channel = server.channel().await;
    submit(&channel, "t").await;
    let hits = receiver
        .until(10, "delivered over https", |h| {
            h.iter().any(|h| h.status == Some(200))
        })
        .await;
    assert!(verify(SECRET, &hits[0]));
    until_listed(
        &channel,
        pb::DeliveryState::Delivered,
        10,
        "recorded delivered",
        |l| !l.deliveries.is_empty(),
    )
    .await;
    server.stop_and_clean().await;

    // A CA file that is not there stops the start, naming it.
    let mut config = notifying(&dir, &receiver.url());
    config.notify.ca_path = Some(pki.path("missing.pem"));
    let e = xingweinong::notify::Notifier::new(&config.notify).unwrap_err();
    assert!(format!("{e:#}").contains("missing.pem"), "{e:#}");
}

/// The number of kill -9 rounds: `XWN_NOTIFY_KILLS`, 20 by default.
fn kills() -> usize {
    std::env::var("XWN_NOTIFY_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_commit_and_delivery_loses_nothing() {
    // The first request for each id hangs (the kill lands meanwhile); any
    // later one is answered at once.
    let receiver = Receiver::start(Arc::new(|_, n| match n {
        0 => (200, Duration::from_secs(30)),
        _ => (200, Duration::ZERO),
    }))
    .await;
    let dir = temp_dir("notify-kill");
    let port = free_port();
    let extra = notify_toml(&receiver.url(), "timeout_ms = 60000\nlease_ms = 120000");
    let mut tickets = Vec::new();
    for round in 0..kills() {
        let mut child = spawn_on(&dir, port, None, "sqlite", &extra);
        let channel = connect(port).await;
        let ticket = submit(&channel, &format!("k{round}")).await;
        if round % 2 == 0 {
            // Killed right after the commit was acknowledged.
        } else {
            // Killed while the webhook holds this ticket's first attempt.
            receiver
                .until(10, "an attempt", |h| {
                    h.iter()
                        .any(|h| json(h)["ticket"]["id"] == ticket.id.as_str())
                })
                .await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        tickets.push(ticket.id);
    }
    let mut child = spawn_on(&dir, port, None, "sqlite", &extra);
    let channel = connect(port).await;
    let hits = receiver
        .until(60, "every ticket's notification delivered", |hits| {
            tickets.iter().all(|t| {
                hits.iter()
                    .any(|h| h.status == Some(200) && json(h)["ticket"]["id"] == t.as_str())
            })
        })
        .await;
    // One notification per ticket, always under its one id.
    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    for h in &hits {
        let t = json(h)["ticket"]["id"].as_str().unwrap().to_string();
        ids.entry(t).or_default().insert(h.id.clone());
    }
    for t in &tickets {
        assert_eq!(ids[t].len(), 1, "ticket {t} has one notification id");
    }
    let all = list(&channel, pb::DeliveryState::Unspecified).await;
    assert_eq!(all.deliveries.len(), tickets.len(), "no row lost or added");
    assert!(all
        .deliveries
        .iter()
        .all(|d| d.state() == pb::DeliveryState::Delivered));
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(dir.with_extension("toml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_one_killed_mid_delivery_deliver_everything_once_at_a_time() {
    let Some(url) = postgres_db("notify").await else {
        return;
    };
    // Slow answers, so the kill lands while attempts are in flight.
    let receiver = Receiver::start(Arc::new(|_, _| (200, Duration::from_millis(300)))).await;
    let extra = notify_toml(&receiver.url(), "timeout_ms = 1000\nlease_ms = 3000");
    let mut replicas = Vec::new();
    for i in 0..2 {
        let dir = temp_dir(&format!("notify-replica{i}"));
        let port = free_port();
        let child = spawn_on(&dir, port, None, &url, &extra);
        replicas.push((child, port, dir));
    }
    let a = connect(replicas[0].1).await;
    let b = connect(replicas[1].1).await;
    let n = 40;
    for i in 0..n {
        submit(if i % 2 == 0 { &a } else { &b }, &format!("p{i}")).await;
    }
    receiver
        .until(20, "attempts under way", |h| h.len() >= 4)
        .await;
    replicas[0].0.kill().unwrap(); // SIGKILL, mid-delivery
    replicas[0].0.wait().unwrap();
    let hits = receiver
        .until(60, "every notification delivered", |hits| {
            hits.iter()
                .filter(|h| h.status == Some(200))
                .map(|h| &h.id)
                .collect::<HashSet<_>>()
                .len()
                == n
        })
        .await;
    // Never two attempts of one notification at the same time.
    let mut by_id: HashMap<&str, Vec<&Hit>> = HashMap::new();
    for h in &hits {
        by_id.entry(&h.id).or_default().push(h);
    }
    let mut repeated = 0;
    for (id, list) in &by_id {
        for (i, x) in list.iter().enumerate() {
            for y in &list[i + 1..] {
                let x_end = x.end.expect("ended");
                assert!(x_end <= y.start, "{id} sent twice at once: {x:?} {y:?}");
            }
        }
        repeated += list.len() - 1;
    }
    let all = list(&b, pb::DeliveryState::Unspecified).await;
    assert_eq!(all.deliveries.len(), n);
    let takeovers: u64 = all.endpoints.iter().map(|e| e.takeovers).sum();
    assert!(
        repeated as u64 <= takeovers,
        "a notification is sent again only after a lease expired ({repeated} repeats, \
         {takeovers} takeovers)"
    );
    eprintln!("replicas: {n} notifications, {repeated} sent again, {takeovers} takeovers");
    for (mut child, _, dir) in replicas {
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(dir.with_extension("toml"));
    }
}
