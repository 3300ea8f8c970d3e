//! A gRPC load generator (`xwn loadgen`): closed loop (N HTTP/2 connections
//! × M calls in flight) or open loop (a fixed rate of calls, each timed from
//! its scheduled start) for a fixed time, reporting throughput, latency
//! percentiles and failures by status code (RESOURCE_EXHAUSTED apart).
//! Reports and their places come from a labelled JSONL file. The calls go
//! as gRPC, gRPC-Web or Connect JSON (`--protocol`), all over the same
//! HTTP/2 connections, so the protocols compare on the same load. With
//! `--no-decode` the replies' bytes are read but not decoded ([`Skip`]), so
//! the generator's own cost stops hiding the server's.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use super::{ApiKey, Conn};
use crate::{
    pb,
    reading::eval::Labelled,
    server::tls::{self, ClientTls},
};
use anyhow::Context;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

/// Which call to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Rpc {
    /// `MatchService.MatchProblem` with the file's reports.
    Match,
    /// `MatchService.Ping`: an empty unary call, the ceiling of the stack.
    Ping,
    /// `TicketService.SubmitProblem` with the file's reports (each commits
    /// a ticket).
    Submit,
}

/// How the calls travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Protocol {
    /// gRPC (protobuf, HTTP/2 trailers).
    #[default]
    Grpc,
    /// gRPC-Web, binary (tonic-web's client layer).
    GrpcWeb,
    /// Connect unary calls in JSON.
    Connect,
}

#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// One address, or several comma-separated (replicas).
    pub(crate) server: String,
    pub(crate) tls: ClientTls,
    /// Sent as `x-api-key` with every call, when set.
    pub(crate) api_key: ApiKey,
    pub(crate) connections: usize,
    /// Calls in flight per connection (closed loop only).
    pub(crate) concurrency: usize,
    pub(crate) duration: Duration,
    pub(crate) rpc: Rpc,
    pub(crate) protocol: Protocol,
    pub(crate) reports: Vec<Labelled>,
    /// Open loop: start this many calls per second whatever the answers,
    /// and time each from its scheduled start. None: closed loop.
    pub(crate) rate: Option<f64>,
    /// Read each reply's bytes without decoding them (gRPC only).
    pub(crate) no_decode: bool,
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Calls answered OK.
    pub calls: u64,
    /// Failed calls by status code.
    pub errors: BTreeMap<String, u64>,
    /// The first message seen for each failing status code.
    pub(crate) samples: BTreeMap<String, String>,
    /// Open loop: calls scheduled.
    pub(crate) scheduled: u64,
    pub elapsed: Duration,
    /// Sorted latencies of successful calls, in microseconds.
    pub latencies_us: Vec<u64>,
}

/// The status code of calls shed by the server's limits.
const SHED: &str = "ResourceExhausted";

impl Outcome {
    pub fn throughput(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) in microseconds.
    pub fn quantile_us(&self, q: f64) -> u64 {
        quantile(&self.latencies_us, q)
    }

    /// Calls refused with RESOURCE_EXHAUSTED.
    pub(crate) fn shed(&self) -> u64 {
        self.errors.get(SHED).copied().unwrap_or(0)
    }

    /// Failed calls other than RESOURCE_EXHAUSTED.
    pub(crate) fn other_errors(&self) -> u64 {
        self.errors.values().sum::<u64>() - self.shed()
    }

    fn record(&mut self, result: Result<u64, tonic::Status>) {
        match result {
            Ok(us) => self.latencies_us.push(us),
            Err(status) => {
                let code = format!("{:?}", status.code());
                *self.errors.entry(code.clone()).or_default() += 1;
                self.samples
                    .entry(code)
                    .or_insert_with(|| status.message().to_string());
            }
        }
    }

    fn merge(&mut self, part: Outcome) {
        self.latencies_us.extend(part.latencies_us);
        for (code, n) in part.errors {
            *self.errors.entry(code).or_default() += n;
        }
        for (code, message) in part.samples {
            self.samples.entry(code).or_insert(message);
        }
    }

    pub fn render(&self, rpc: Rpc) -> String {
        let mut text = format!(
            "{:?}: {} calls in {:.1} s = {:.0} calls/s; p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms; shed (RESOURCE_EXHAUSTED) {}; other errors {}",
            rpc,
            self.calls,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            self.quantile_us(0.50) as f64 / 1000.0,
            self.quantile_us(0.99) as f64 / 1000.0,
            self.quantile_us(0.999) as f64 / 1000.0,
            self.shed(),
            self.other_errors(),
        );
        let others: Vec<String> = self
            .errors
            .iter()
            .filter(|(code, _)| *code != SHED)
            .map(|(code, n)| format!("{code} {n}"))
            .collect();
        if !others.is_empty() {
            text.push_str(&format!(" ({})", others.join(", ")));
        }
        for (code, message) in &self.samples {
            text.push_str(&format!("\n  first {code}: {message}"));
        }
        text
    }
}

/// Nearest-rank quantile of sorted values.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn request(item: &Labelled) -> pb::MatchProblemRequest {
    let location = (!item.division_code.is_empty())
        .then(|| pb::Location {
            kind: Some(pb::location::Kind::DivisionCode(item.division_code.clone())),
        })
        .or(Some(pb::Location {
            kind: Some(pb::location::Kind::DivisionCode("610500000000".into())),
        }));
    pb::MatchProblemRequest {
        text: item.text.clone(),
        location,
        limit: 5,
        ranking: 0,
    }
}

/// A channel that speaks gRPC-Web (tonic-web's client layer).
type WebChannel = tower::util::BoxCloneService<
    http::Request<tonic::body::Body>,
    http::Response<tonic_web::GrpcWebCall<tonic::body::Body>>,
    tonic::transport::Error,
>;

/// The clients of one connection.
#[derive(Clone)]
struct Clients {
    protocol: Protocol,
    channel: Channel,
    api_key: ApiKey,
    matcher: pb::match_service_client::MatchServiceClient<Conn>,
    tickets: pb::ticket_service_client::TicketServiceClient<Conn>,
    web: pb::match_service_client::MatchServiceClient<InterceptedService<WebChannel, ApiKey>>,
    /// Set with `--no-decode`: calls go through [`Skip`].
    raw: Option<tonic::client::Grpc<Conn>>,
}

/// A codec that encodes requests with prost and reads a reply's bytes
/// without decoding them (`--no-decode`): what is left is the server's
/// cost and the transport's.
struct Skip<T>(std::marker::PhantomData<T>);

impl<T> Default for Skip<T> {
    fn default() -> Self {
        Skip(std::marker::PhantomData)
    }
}

impl<T: prost::Message + Send + 'static> tonic::codec::Codec for Skip<T> {
    type Encode = T;
    /// The reply's length in bytes.
    type Decode = usize;
    type Encoder = Skip<T>;
    type Decoder = Skip<T>;

    fn encoder(&mut self) -> Skip<T> {
        Skip::default()
    }

    fn decoder(&mut self) -> Skip<T> {
        Skip::default()
    }
}

impl<T: prost::Message> tonic::codec::Encoder for Skip<T> {
    type Item = T;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: T,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        item.encode(buf)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

impl<T> tonic::codec::Decoder for Skip<T> {
    type Item = usize;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<usize>, tonic::Status> {
        use bytes::Buf;
        let n = buf.remaining();
        buf.advance(n);
        Ok(Some(n))
    }
}

impl Clients {
    fn new(channel: Channel, protocol: Protocol, api_key: ApiKey, no_decode: bool) -> Clients {
        let web: WebChannel = tower::util::BoxCloneService::new(
            tower::ServiceBuilder::new()
                .layer(tonic_web::GrpcWebClientLayer::new())
                .map_request(
                    |r: http::Request<tonic_web::GrpcWebCall<tonic::body::Body>>| {
                        r.map(tonic::body::Body::new)
                    },
                )
                .service(channel.clone()),
        );
        Clients {
            protocol,
            matcher: pb::match_service_client::MatchServiceClient::new(
                api_key.clone().wrap(channel.clone()),
            ),
            tickets: pb::ticket_service_client::TicketServiceClient::new(
                api_key.clone().wrap(channel.clone()),
            ),
            web: pb::match_service_client::MatchServiceClient::with_interceptor(
                web,
                api_key.clone(),
            ),
            raw: no_decode.then(|| tonic::client::Grpc::new(api_key.clone().wrap(channel.clone()))),
            channel,
            api_key,
        }
    }

    /// One gRPC call of `path` whose reply is read, not decoded.
    async fn skip<T: prost::Message + Send + 'static>(
        raw: &mut tonic::client::Grpc<Conn>,
        path: &'static str,
        message: T,
    ) -> Result<(), tonic::Status> {
        raw.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let path = http::uri::PathAndQuery::from_static(path);
        let request = tonic::Request::new(message);
        raw.unary(request, path, Skip::<T>::default())
            .await
            .map(|_| ())
    }

    /// One call of `rpc` with report `r`.
    async fn call(&mut self, rpc: Rpc, r: &pb::MatchProblemRequest) -> Result<(), tonic::Status> {
        match self.protocol {
            Protocol::Grpc => {}
            Protocol::GrpcWeb if rpc == Rpc::Match => {
                return self.web.match_problem(r.clone()).await.map(|_| ())
            }
            Protocol::Connect if rpc == Rpc::Match => return self.connect_match(r).await,
            other => {
                return Err(tonic::Status::unimplemented(format!(
                    "--protocol {other:?} drives --rpc match only"
                )))
            }
        }
        let submit = || pb::SubmitProblemRequest {
            text: r.text.clone(),
            location: r.location.clone(),
            contact: String::new(),
            idempotency_key: String::new(),
            photo_ids: Vec::new(),
        };
        if let Some(raw) = &mut self.raw {
            return match rpc {
                Rpc::Match => {
                    Self::skip(raw, "/xingweinong.v1.MatchService/MatchProblem", r.clone()).await
                }
                Rpc::Ping => {
                    Self::skip(raw, "/xingweinong.v1.MatchService/Ping", pb::PingRequest {}).await
                }
                Rpc::Submit => {
                    Self::skip(raw, "/xingweinong.v1.TicketService/SubmitProblem", submit()).await
                }
            };
        }
        let result = match rpc {
            Rpc::Match => self.matcher.match_problem(r.clone()).await.map(|_| ()),
            Rpc::Ping => self.matcher.ping(pb::PingRequest {}).await.map(|_| ()),
            Rpc::Submit => self.tickets.submit_problem(submit()).await.map(|_| ()),
        };
        result
    }

    /// MatchProblem as a Connect unary call in JSON, on the same channel.
    async fn connect_match(&mut self, r: &pb::MatchProblemRequest) -> Result<(), tonic::Status> {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let division = match r.location.as_ref().and_then(|l| l.kind.as_ref()) {
            Some(pb::location::Kind::DivisionCode(code)) => code.as_str(),
            _ => "",
        };
        let body = serde_json::json!({
            "text": r.text,
            "location": { "divisionCode": division },
            "limit": r.limit,
        });
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut request = http::Request::post("/xingweinong.v1.MatchService/MatchProblem")
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(key) = &self.api_key.0 {
            request = request.header("x-api-key", key.as_bytes());
        }
        let request = request
            .body(tonic::body::Body::new(http_body_util::Full::new(
                bytes::Bytes::from(body),
            )))
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        let response = self
            .channel
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let ok = response.status().is_success();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| tonic::Status::internal(format!("the reply is not JSON: {e}")))?;
        if ok {
            return Ok(());
        }
        let name = json["code"].as_str().unwrap_or("unknown");
        let code = (0..=16)
            .map(tonic::Code::from_i32)
            .find(|c| crate::http::errors::code_name(*c) == name)
            .unwrap_or(tonic::Code::Unknown);
        Err(tonic::Status::new(
            code,
            json["message"].as_str().unwrap_or_default(),
        ))
    }
}

/// Runs the plan; every worker stops at the deadline.
pub(crate) async fn run(plan: Plan) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        plan.connections > 0 && plan.concurrency > 0,
        "connections and concurrency must be above zero"
    );
    anyhow::ensure!(
        plan.protocol == Protocol::Grpc || plan.rpc == Rpc::Match,
        "--protocol {:?} drives --rpc match only",
        plan.protocol
    );
    anyhow::ensure!(
        plan.protocol == Protocol::Grpc || !plan.no_decode,
        "--no-decode works with --protocol grpc only"
    );
    anyhow::ensure!(
        plan.rpc == Rpc::Ping || !plan.reports.is_empty(),
        "no reports to send"
    );
    if let Some(rate) = plan.rate {
        anyhow::ensure!(
            rate.is_finite() && rate > 0.0,
            "--rate must be above zero, got {rate}"
        );
    }
    // Several servers (replicas), comma-separated: connections go round-robin.
    let endpoints = plan
        .server
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|server| Ok((server, tls::endpoint(server, &plan.tls)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!endpoints.is_empty(), "no server to drive");
    let mut clients = Vec::new();
    for i in 0..plan.connections {
        let (server, endpoint) = &endpoints[i % endpoints.len()];
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to {server}"))?;
        clients.push(Clients::new(
            channel,
            plan.protocol,
            plan.api_key.clone(),
            plan.no_decode,
        ));
    }
    let mut reports = plan.reports.iter().map(request).collect::<Vec<_>>();
    if reports.is_empty() {
        reports.push(pb::MatchProblemRequest::default());
    }
    let reports = Arc::new(reports);
    let mut outcome = match plan.rate {
        Some(rate) => open_loop(&plan, rate, clients, reports).await?,
        None => closed_loop(&plan, clients, reports).await?,
    };
    outcome.calls = outcome.latencies_us.len() as u64;
    outcome.latencies_us.sort_unstable();
    Ok(outcome)
}

/// `concurrency` workers per connection, each with one call at a time.
async fn closed_loop(
    plan: &Plan,
    clients: Vec<Clients>,
    reports: Arc<Vec<pb::MatchProblemRequest>>,
) -> anyhow::Result<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        for m in 0..plan.concurrency {
            let mut client = client.clone();
            let reports = reports.clone();
            let stop = stop.clone();
            let rpc = plan.rpc;
            let mut next = c * plan.concurrency + m;
            workers.push(tokio::spawn(async move {
                let mut outcome = Outcome::default();
                while !stop.load(Ordering::Relaxed) {
                    next = (next + 7) % reports.len();
                    let t = Instant::now();
                    let result = client.call(rpc, &reports[next]).await;
                    outcome.record(result.map(|()| t.elapsed().as_micros() as u64));
                }
                outcome
            }));
        }
    }
    tokio::time::sleep(plan.duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcome = Outcome::default();
    for w in workers {
        outcome.merge(w.await?);
    }
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

/// Starts call `i` at `i / rate` seconds, whether or not earlier calls have
/// been answered, and times it from that scheduled start: a server (or
/// client) that falls behind shows as latency, not as fewer calls.
async fn open_loop(
    plan: &Plan,
    rate: f64,
    clients: Vec<Clients>,
    reports: Arc<Vec<pb::MatchProblemRequest>>,
) -> anyhow::Result<Outcome> {
    let total = (plan.duration.as_secs_f64() * rate).floor() as u64;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    let mut i = 0u64;
    while i < total {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        // Every call due by now starts now (timers tick in milliseconds).
        let now = Instant::now();
        while i < total {
            let scheduled = started + Duration::from_secs_f64(i as f64 / rate);
            if scheduled > now {
                break;
            }
            let mut client = clients[(i as usize) % clients.len()].clone();
            let report = reports[(i as usize * 7) % reports.len()].clone();
            let rpc = plan.rpc;
            let tx = tx.clone();
            tokio::spawn(async move {
                let result = client.call(rpc, &report).await;
                let _ = tx.send(result.map(|()| scheduled.elapsed().as_micros() as u64));
            });
            i += 1;
        }
    }
    drop(tx);
    let mut outcome = Outcome {
        scheduled: total,
        ..Outcome::default()
    };
    while let Some(result) = rx.recv().await {
        outcome.record(result);
    }
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 0.999), 100);
        assert_eq!(quantile(&[], 0.5), 0);
    }

    #[test]
    fn shed_calls_are_counted_apart_from_other_errors() {
        let mut o = Outcome::default();
        o.record(Ok(10));
        o.record(Err(tonic::Status::resource_exhausted("full")));
        o.record(Err(tonic::Status::resource_exhausted("full")));
        o.record(Err(tonic::Status::unavailable("disk")));
        assert_eq!((o.shed(), o.other_errors()), (2, 1));
        o.calls = 1;
        let text = o.render(Rpc::Ping);
        assert!(text.contains("shed (RESOURCE_EXHAUSTED) 2"), "{text}");
        assert!(text.contains("other errors 1 (Unavailable 1)"), "{text}");
        assert!(text.contains("first Unavailable: disk"), "{text}");
    }
}
