//! Load limits at the door. Calls in flight for the whole server are
//! counted from the moment a request arrives (a tower layer, before it waits
//! for a worker thread), so a CPU-bound server sheds instead of queueing;
//! one client address may hold only a share of those places
//! (`max_in_flight_per_address`), so one greedy client cannot hold them all;
//! once fewer than a quarter of the places are free, a caller (an address,
//! or a key) that holds its share already is refused, so the greedy are
//! shed first and the last quarter is kept for callers holding few
//! ([`Holdings`]);
//! SubmitProblem has a tighter bound (its calls queue behind the
//! dispatcher's lock and a synchronous commit); farmer-facing calls have a
//! token bucket per caller (a front end by its API key, anyone else by
//! address: [`caller`]); a call that waited too long for a worker is not
//! started. Past any of them, a call gets RESOURCE_EXHAUSTED at once, and
//! the refusal is logged (rate-limited: [`Throttle`]) with the caller — an
//! address or a key's name, never a key.

pub(crate) mod caller;

use std::{
    collections::HashMap,
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{codegen::http, Status};

use self::caller::{Caller, Callers};
use crate::{
    config::LimitConfig,
    error::Error,
    server::{statuses::StatusLayer, throttle::Throttle},
};

/// Buckets idle this long are forgotten when the table grows.
const IDLE_SECS: f64 = 60.0;
const PRUNE_AT: usize = 10_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A call's place under the per-method limits, held until its reply is
/// sent.
#[derive(Debug)]
#[must_use = "the call is admitted only while its permit is held"]
pub(crate) struct Permit {
    _method: Option<OwnedSemaphorePermit>,
}

/// Calls in flight per caller (an address, IPv6 by its /64, as
/// [`Callers::identify`] gives it, or an API key's name), with the rules
/// that bound them: an address's own bound, and each caller's share of
/// the server's places once they run short.
pub(crate) struct Holdings {
    /// `max_in_flight_per_address`: an address's bound at any load.
    per_address: usize,
    /// What an address may hold once the server is busy: a quarter of
    /// `per_address`.
    address_share: usize,
    /// What a key may hold once the server is busy: a quarter of
    /// `max_in_flight` (a front end is many farmers).
    key_share: usize,
    counts: Mutex<HashMap<Caller, usize>>,
}

/// Why [`Holdings::take`] gave no place.
#[derive(Debug, PartialEq, Eq)]
enum Over {
    /// The address holds `per_address` already.
    Address,
    /// The server is busy and the caller holds (the first number) its
    /// share (the second) or more.
    Share(usize, usize),
}

/// One call's place in its caller's holdings, given back when dropped.
pub(crate) struct Place {
    table: Arc<Holdings>,
    caller: Caller,
}

impl Holdings {
    fn new(per_address: usize, max_in_flight: usize) -> Holdings {
        Holdings {
            per_address,
            address_share: (per_address / 4).max(1),
            key_share: (max_in_flight / 4).max(1),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// What `caller` may hold while the server is busy.
    fn share(&self, caller: &Caller) -> usize {
        match caller {
            Caller::Key(_) => self.key_share,
            Caller::Address(_) => self.address_share,
        }
    }

    /// A place for a call of `caller`, or why not: the address is at
    /// `per_address`, or the server is `busy` and the caller holds its
    /// share already.
    fn take(self: &Arc<Self>, caller: &Caller, busy: bool) -> Result<Place, Over> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.get(caller).copied().unwrap_or(0);
        match caller {
            Caller::Address(_) if count >= self.per_address => return Err(Over::Address),
            _ if busy && count >= self.share(caller) => {
                return Err(Over::Share(count, self.share(caller)))
            }
            _ => {}
        }
        counts.insert(caller.clone(), count + 1);
        Ok(Place {
            table: self.clone(),
            caller: caller.clone(),
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut counts = (self.table.counts.lock()).unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.caller) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.caller);
            }
        }
    }
}

pub(crate) struct Limits {
    /// Calls in flight: the server's, each caller's.
    door: Arc<Door>,
    /// None when `max_submits_in_flight` is 0.
    submits: Option<Arc<Semaphore>>,
    max_submits: usize,
    /// None when `max_queue_ms` is 0.
    max_queue: Option<Duration>,
    /// One slot per core for CPU-bound work (MatchProblem), run off the
    /// async workers so they keep reading, counting and shedding arrivals.
    cpu: Arc<Semaphore>,
    /// How long the last call that got a CPU slot had waited for it since
    /// its arrival, in microseconds: while it is above [`Limits::cpu_shed_at`]
    /// and no slot is free, new CPU-bound calls are refused at once.
    cpu_waited_us: AtomicU64,
    /// A fifth of `max_queue` (None when `max_queue_ms` is 0).
    cpu_shed_at: Option<Duration>,
    /// The anonymous per-address rate and burst.
    rate: f64,
    burst: f64,
    callers: Arc<Callers>,
    buckets: Mutex<HashMap<Caller, Bucket>>,
    /// None when `request_timeout_ms` is 0.
    request_timeout: Option<Duration>,
    /// None when `body_timeout_ms` is 0.
    body_timeout: Option<Duration>,
    log: Arc<Throttle>,
}

/// Counts a refusal of `kind` at the door (`xwn_shed_total`) and logs it
/// (at most one line per kind per second): a rate limit is a caller's own affair (info), a server-wide
/// bound a sign of overload (warn).
pub(crate) fn log_refusal(
    log: &Throttle,
    kind: &'static str,
    caller: Option<&Caller>,
    status: &Status,
) {
    crate::metrics::shed(kind);
    let Some(suppressed) = log.pass(kind) else {
        return;
    };
    let caller = caller.map(ToString::to_string).unwrap_or_default();
    let reason = status.message();
    if matches!(
        kind,
        "rate_limit" | "in_flight_per_address" | "body_timeout" | "message_size"
    ) {
        tracing::info!(kind, %caller, reason, suppressed, "call refused at a limit");
    } else {
        tracing::warn!(kind, %caller, reason, suppressed, "call refused at a limit");
    }
}

impl Limits {
    /// The limits of `config`; its API keys and proxies are checked.
    pub(crate) fn new(config: &LimitConfig) -> anyhow::Result<Limits> {
        let callers = Arc::new(Callers::new(config)?);
        let log = Arc::new(Throttle::default());
        let request_timeout = (config.request_timeout_ms > 0)
            .then(|| Duration::from_millis(config.request_timeout_ms));
        let body_timeout =
            (config.body_timeout_ms > 0).then(|| Duration::from_millis(config.body_timeout_ms));
        let door = Door {
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            max: config.max_in_flight,
            // Never above the server's own bound (tests set tiny ones).
            holdings: Arc::new(Holdings::new(
                config
                    .max_in_flight_per_address
                    .min(config.max_in_flight)
                    .max(1),
                config.max_in_flight,
            )),
            callers: callers.clone(),
            log: log.clone(),
            body_timeout,
            request_timeout,
        };
        Ok(Limits {
            door: Arc::new(door),
            submits: (config.max_submits_in_flight > 0)
                .then(|| Arc::new(Semaphore::new(config.max_submits_in_flight))),
            max_submits: config.max_submits_in_flight,
            max_queue: (config.max_queue_ms > 0)
                .then(|| Duration::from_millis(config.max_queue_ms)),
            cpu: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            cpu_waited_us: AtomicU64::new(0),
            cpu_shed_at: (config.max_queue_ms > 0)
                .then(|| Duration::from_millis(config.max_queue_ms) / CPU_SHED_FRACTION),
            rate: config.client_rate_per_sec,
            burst: config.client_burst.max(1.0),
            callers,
            buckets: Mutex::new(HashMap::new()),
            request_timeout,
            body_timeout,
            log,
        })
    }

    /// When a call that arrived at `arrival` reaches the request timeout:
    /// a handler that waits on its caller (an upload) stops there, a
    /// moment before the timeout layer would cut it short unheard.
    pub(crate) fn deadline(&self, arrival: Option<Arrival>) -> Option<Instant> {
        Some(arrival?.0 + self.request_timeout?)
    }

    /// The rate-limited log of refusals and failed authentication.
    pub(crate) fn throttle(&self) -> &Throttle {
        &self.log
    }

    /// The layer that bounds calls in flight for the whole server.
    pub(crate) fn admission_layer(&self) -> AdmissionLayer {
        AdmissionLayer { door: self.door() }
    }

    /// The admission rules, for the layer and the Connect transcoder.
    pub(crate) fn door(&self) -> Arc<Door> {
        self.door.clone()
    }

    /// The layer under admission: the request timeout, the body timeout
    /// (refusals logged like the others) and tonic's refusals made right.
    pub(crate) fn status_layer(&self) -> anyhow::Result<StatusLayer> {
        StatusLayer::new(self.request_timeout, self.body_timeout, Some(self.door()))
    }

    /// Who made `request`: as the admission layer found it, or, for a call
    /// that did not pass the layer, from its headers and peer.
    pub(crate) fn caller<T>(&self, request: &tonic::Request<T>) -> Result<Caller, Status> {
        if let Some(caller) = request.extensions().get::<Caller>() {
            return Ok(caller.clone());
        }
        let headers = request.metadata().clone().into_headers();
        let peer = request.remote_addr().map(|p| p.ip());
        Ok(self.callers.identify(&headers, peer)?)
    }

    /// Admits a call of `caller` that has not waited too long since its
    /// arrival, past the caller's rate (farmer calls only). Calls in flight
    /// were counted on arrival by the [`AdmissionLayer`].
    pub(crate) fn admit<T>(
        &self,
        request: &tonic::Request<T>,
        caller: &Caller,
        farmer: bool,
    ) -> Result<Permit, Status> {
        let checked = self
            .check_queue(request.extensions().get())
            .map_err(|refused| ("queue", refused))
            .and_then(|()| match farmer {
                true => self
                    .charge(caller)
                    .map_err(|refused| ("rate_limit", refused)),
                false => Ok(()),
            });
        if let Err((kind, refused)) = checked {
            log_refusal(&self.log, kind, Some(caller), &refused);
            return Err(refused);
        }
        Ok(Permit { _method: None })
    }

    /// Refuses a call that has waited past `max_queue_ms` since it arrived.
    fn check_queue(&self, arrival: Option<&Arrival>) -> Result<(), Status> {
        if let (Some(max), Some(Arrival(at))) = (self.max_queue, arrival) {
            let waited = at.elapsed();
            if waited > max {
                return Err(Error::ResourceExhausted(format!(
                    "the server is behind: this call waited {} ms for a worker (limit {} ms); retry shortly",
                    waited.as_millis(),
                    max.as_millis()
                ))
                .into());
            }
        }
        Ok(())
    }

    /// Waits for a CPU slot for a CPU-bound call that arrived at `arrival`,
    /// then applies the queue deadline again: a call that waited too long
    /// for its slot is not started. While the calls that got a slot last
    /// waited more than a fifth of `max_queue_ms` and no slot is free, the
    /// call is refused at once instead of queueing: the slots' queue stays
    /// short, so the calls answered under overload are answered soon, and
    /// the excess is told to retry at once rather than after waiting.
    pub(crate) async fn cpu_slot(
        &self,
        arrival: Option<Arrival>,
    ) -> Result<OwnedSemaphorePermit, Status> {
        let logged = |refused: Status| {
            log_refusal(&self.log, "queue", None, &refused);
            refused
        };
        let entered = Instant::now();
        let slot = match self.cpu.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(stopping()),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                if let Some(refused) = self.cpu_behind() {
                    return Err(logged(refused));
                }
                self.cpu
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| stopping())?
            }
        };
        let since = arrival.map_or(entered, |Arrival(at)| at);
        let waited = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.cpu_waited_us.store(waited, Ordering::Relaxed);
        // The call's own wait: MatchProblem computes on the async worker
        // that took it, so its queue is mostly the workers' run queue
        // before this point, not the slots'.
        match self.cpu_behind() {
            Some(refused) => Err(logged(refused)),
            None => self.check_queue(arrival.as_ref()).map_err(logged),
        }
        .map(|()| slot)
    }

    /// The refusal of a CPU-bound call while the last call given a slot
    /// waited past [`Limits::cpu_shed_at`] (None: not behind).
    fn cpu_behind(&self) -> Option<Status> {
        let limit = self.cpu_shed_at?;
        let waited = Duration::from_micros(self.cpu_waited_us.load(Ordering::Relaxed));
        (waited > limit).then(|| {
            Error::ResourceExhausted(format!(
                "the server is behind: calls waited {} ms for a CPU slot (limit {} ms); retry shortly",
                waited.as_millis(),
                limit.as_millis()
            ))
            .into()
        })
    }

    /// Admits a SubmitProblem call: a farmer call that also takes one of
    /// the `max_submits_in_flight` places.
    pub(crate) fn admit_submit<T>(
        &self,
        request: &tonic::Request<T>,
        caller: &Caller,
    ) -> Result<Permit, Status> {
        let mut permit = self.admit(request, caller, true)?;
        if let Some(submits) = &self.submits {
            let place = submits.clone().try_acquire_owned().map_err(|_| {
                let refused = Status::from(Error::ResourceExhausted(format!(
                    "the server is at its limit of {} SubmitProblem calls in flight; retry shortly",
                    self.max_submits
                )));
                log_refusal(&self.log, "submits_in_flight", Some(caller), &refused);
                refused
            })?;
            permit._method = Some(place);
        }
        Ok(permit)
    }

    /// Takes a token from the caller's bucket: a key's own rate, or the
    /// anonymous per-address one (0: no limit).
    fn charge(&self, caller: &Caller) -> Result<(), Status> {
        let (rate, burst) = match self.callers.key_rate(caller) {
            Some(key) => key,
            None if self.rate > 0.0 => (self.rate, self.burst),
            None => return Ok(()),
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= PRUNE_AT {
            buckets.retain(|_, b| now.duration_since(b.at).as_secs_f64() < IDLE_SECS);
        }
        let bucket = buckets.entry(caller.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(burst);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            let who = match caller {
                Caller::Key(name) => format!("for the API key {name:?}"),
                Caller::Address(_) => "from one client address without an API key".into(),
            };
            return Err(Error::ResourceExhausted(format!(
                "rate limit: at most {rate} calls per second {who} (bursts of {burst}); retry shortly"
            ))
            .into());
        }
        bucket.tokens -= 1.0;
        Ok(())
    }
}

/// The CPU slots' queue sheds once calls wait more than `max_queue_ms`
/// divided by this (50 ms of the default 250).
const CPU_SHED_FRACTION: u32 = 5;

/// The refusal of a call that waits for a CPU slot while the server stops.
fn stopping() -> Status {
    Error::Unavailable("the server is stopping".into()).into()
}

/// When the [`AdmissionLayer`] saw a call arrive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival(pub(crate) Instant);

/// Liveness checks stay outside the limits: they tell an overloaded server
/// from a dead one.
fn exempt(path: &str) -> bool {
    path == "/xingweinong.v1.MatchService/Ping" || path.starts_with("/grpc.health.v1.Health/")
}

/// The admission rules every call meets on arrival, shared by the
/// [`AdmissionLayer`] and the Connect transcoder, which holds a place
/// while it reads a request body, before the call reaches the layer.
pub(crate) struct Door {
    in_flight: Arc<Semaphore>,
    max: usize,
    holdings: Arc<Holdings>,
    callers: Arc<Callers>,
    log: Arc<Throttle>,
    /// None when `body_timeout_ms` is 0.
    body_timeout: Option<Duration>,
    /// None when `request_timeout_ms` is 0.
    request_timeout: Option<Duration>,
}

/// A call's places under the admission limits (its caller's and the
/// server's), given back when dropped.
#[must_use = "the call is counted only while its places are held"]
pub(crate) struct Entry {
    _place: Place,
    _permit: OwnedSemaphorePermit,
}

impl Door {
    /// Counts a call on `path` from `peer` with `headers` against
    /// `limits.max_in_flight`, its address's bound (not a key's) and, once
    /// fewer than a quarter of the server's places are free, its share;
    /// past any of them (or with an unknown API key), the refusal, logged.
    /// Exempt paths get no entry.
    pub(crate) fn enter(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Option<(Caller, Entry)>, Status> {
        if exempt(path) {
            return Ok(None);
        }
        let caller = self.callers.identify(headers, peer).map_err(|refused| {
            let status = Status::from(refused);
            // The address only: the key sent is never logged.
            let address = peer.map(Caller::Address);
            log_refusal(&self.log, "api_key", address.as_ref(), &status);
            status
        })?;
        // Busy: the last quarter of the places is kept for callers
        // holding less than their share.
        let busy = self.in_flight.available_permits() <= self.max / 4;
        let refused = |kind, message| {
            let status = Status::from(Error::ResourceExhausted(message));
            log_refusal(&self.log, kind, Some(&caller), &status);
            status
        };
        let permit = self.in_flight.clone().try_acquire_owned().map_err(|_| {
            refused(
                "in_flight",
                format!(
                    "the server is at its limit of {} calls in flight; retry shortly",
                    self.max
                ),
            )
        })?;
        let place = self.holdings.take(&caller, busy).map_err(|over| match over {
            Over::Address => refused("in_flight_per_address", format!(
                "this client address is at its limit of {} calls in flight (limits.max_in_flight_per_address); retry shortly",
                self.holdings.per_address
            )),
            Over::Share(held, share) => refused("in_flight_share", format!(
                "the server is near its limit of {} calls in flight (limits.max_in_flight) and this caller holds {held} of them, at least its share of {share} while the server is busy; retry shortly",
                self.max
            )),
        })?;
        Ok(Some((
            caller,
            Entry {
                _place: place,
                _permit: permit,
            },
        )))
    }

    /// The longest a request body may take to arrive: `body_timeout_ms`,
    /// or for a whole-file upload `request_timeout_ms` (none when 0).
    pub(crate) fn body_deadline(&self, whole_file: bool) -> Option<Duration> {
        match whole_file {
            true => self.request_timeout,
            false => self.body_timeout,
        }
    }

    /// Counts and logs `status`, the refusal of a message of `caller` over
    /// its method's size limit.
    pub(crate) fn too_large(&self, caller: Option<&Caller>, status: &Status) {
        log_refusal(&self.log, "message_size", caller, status);
    }

    /// The refusal of a call of `caller` whose request did not arrive
    /// whole within `limit`, logged.
    pub(crate) fn body_timed_out(&self, caller: Option<&Caller>, limit: Duration) -> Status {
        let status = body_timed_out(limit);
        log_refusal(&self.log, "body_timeout", caller, &status);
        status
    }
}

/// The refusal of a call whose request did not arrive whole within
/// `limit`: the client was too slow, like the request timeout.
pub(crate) fn body_timed_out(limit: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "the request did not arrive whole within the server's body timeout of {} ms (limits.body_timeout_ms); send a unary call's message at once",
        limit.as_millis()
    ))
}

/// Counts every call from its arrival to its reply (for a server stream:
/// until the stream starts; for an upload: until it is read and applied)
/// through the [`Door`]: past a limit, answers RESOURCE_EXHAUSTED without
/// running the call. It also identifies the caller
/// ([`Callers::identify`]): an unknown API key is refused here, and the
/// [`Caller`] rides in the request's extensions to the Gate and into the
/// call's `caller` span field.
#[derive(Clone)]
pub(crate) struct AdmissionLayer {
    door: Arc<Door>,
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Admission<S> {
        Admission {
            inner,
            door: self.door.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Admission<S> {
    inner: S,
    door: Arc<Door>,
}

/// The TCP peer's address as the server recorded it in a request's
/// `extensions`, with or without TLS.
pub(crate) fn peer_ip(extensions: &http::Extensions) -> Option<IpAddr> {
    peer_addr(extensions).map(|a| a.ip())
}

/// The address and port of the peer of a request with `extensions`.
pub(crate) fn peer_addr(extensions: &http::Extensions) -> Option<std::net::SocketAddr> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    (extensions.get::<TcpConnectInfo>())
        .or_else(|| (extensions.get::<TlsConnectInfo<TcpConnectInfo>>()).map(|tls| tls.get_ref()))
        .and_then(|info| info.remote_addr())
}

/// The future of a layer's reply (this one's and `metrics::Calls`').
pub(crate) type ResponseFuture<E> =
    Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, E>> + Send>>;

/// The most of a refused call's request [`drain`] reads, and how long it
/// waits for it. An overloaded client can send a call's message well after
/// its headers: with 50 ms, 4 of 5 open-loop runs at 40,000 calls/s from
/// one address still lost calls at the transport (up to 46,774 of
/// 400,000); with 1 s, none did (BENCHMARKS.md).
const DRAIN_BYTES: usize = 64 << 10;
const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// Reads the rest of a refused call's request (a unary call's one message;
/// at most [`DRAIN_BYTES`], for at most [`DRAIN_WAIT`]), in a task of its
/// own while the refusal goes out at once. Were the request dropped unread,
/// h2 would end the stream with RST_STREAM, the request's late frames
/// would then draw a STREAM_CLOSED reset each, and h2 closes a connection
/// after 1,024 of those (GOAWAY): every other call on it, answered or not,
/// would fail at the transport. Long overload refuses that many calls
/// within seconds.
async fn drain<B: http_body::Body>(body: B) {
    use http_body_util::BodyExt as _;
    let mut body = std::pin::pin!(body);
    let read_all = async {
        let mut read = 0;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, bytes::Buf::remaining);
            if read > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_WAIT, read_all).await;
}

impl<S, B> tower::Service<http::Request<B>> for Admission<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        request.extensions_mut().insert(Arrival(Instant::now()));
        let peer = peer_ip(request.extensions());
        let entry = match self
            .door
            .enter(request.uri().path(), request.headers(), peer)
        {
            Ok(entry) => entry,
            Err(status) => {
                // Refused at once; a stalled request delays no refusal.
                tokio::spawn(drain(request.into_body()));
                let refusal = status.into_http();
                return Box::pin(async move { Ok(refusal) });
            }
        };
        let (caller, entry) = entry.unzip();
        if let Some(caller) = &caller {
            request.extensions_mut().insert(caller.clone());
        }
        let reply = self.inner.call(request);
        Box::pin(async move {
            // Polled inside the call's span (`trace_fn` in `serve`).
            if let Some(caller) = caller {
                tracing::Span::current().record("caller", tracing::field::display(caller));
            }
            let response = reply.await;
            drop(entry);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_calls_late_message_is_read() {
        let (mut tx, body) = http_body_util::channel::Channel::<bytes::Bytes>::new(1);
        let sent = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sender = {
            let sent = sent.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let message = bytes::Bytes::from_static(b"message");
                tx.send_data(message).await.unwrap();
                sent.store(true, Ordering::SeqCst);
            })
        };
        drain(body).await;
        assert!(
            sent.load(Ordering::SeqCst),
            "refused before the message came"
        );
        sender.await.unwrap();
    }

    #[tokio::test]
    async fn a_stalled_request_is_read_no_longer_than_the_wait() {
        let (_tx, body) = http_body_util::channel::Channel::<bytes::Bytes>::new(1);
        let waited = tokio::time::timeout(Duration::from_secs(5), drain(body)).await;
        assert!(waited.is_ok(), "drain waited past DRAIN_WAIT");
    }

    fn limits(max_in_flight: usize, rate: f64, burst: f64) -> Limits {
        Limits::new(&LimitConfig {
            max_in_flight,
            max_submits_in_flight: 2,
            client_rate_per_sec: rate,
            client_burst: burst,
            ..LimitConfig::default()
        })
        .unwrap()
    }

    fn anyone() -> Caller {
        Caller::Address("192.0.2.1".parse().unwrap())
    }

    /// A request from `peer`, as the server hands it to a handler.
    fn from(peer: &str) -> tonic::Request<()> {
        let mut r = tonic::Request::new(());
        r.extensions_mut()
            .insert(tonic::transport::server::TcpConnectInfo {
                local_addr: None,
                remote_addr: Some(peer.parse().unwrap()),
            });
        r
    }

    #[test]
    fn a_call_that_waited_too_long_is_not_started() {
        let l = limits(100, 0.0, 1.0);
        let mut fresh = tonic::Request::new(());
        fresh.extensions_mut().insert(Arrival(Instant::now()));
        assert!(l.admit(&fresh, &anyone(), true).is_ok());
        let mut stale = tonic::Request::new(());
        stale
            .extensions_mut()
            .insert(Arrival(Instant::now() - Duration::from_secs(1)));
        let refused = l.admit(&stale, &anyone(), true).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("limit 250 ms"), "{refused:?}");
        assert!(l.admit_submit(&stale, &anyone()).is_err());
    }

    /// The caller of a request from `peer`, as the Gate finds it.
    fn caller_of(l: &Limits, peer: &str, key: Option<&str>) -> (tonic::Request<()>, Caller) {
        let mut r = from(peer);
        if let Some(key) = key {
            r.metadata_mut()
                .insert(caller::API_KEY_HEADER, key.parse().unwrap());
        }
        let caller = l.caller(&r).unwrap();
        (r, caller)
    }

    #[test]
    fn a_client_gets_its_burst_then_is_refused() {
        let l = limits(100, 0.001, 3.0);
        let (peer, who) = caller_of(&l, "10.0.0.1:5000", None);
        for _ in 0..3 {
            assert!(l.admit(&peer, &who, true).is_ok());
        }
        assert_eq!(
            l.admit(&peer, &who, true).unwrap_err().code(),
            tonic::Code::ResourceExhausted
        );
        let (other, someone) = caller_of(&l, "10.0.0.2:5000", None);
        assert!(
            l.admit(&other, &someone, true).is_ok(),
            "buckets are per client"
        );
        assert!(
            l.admit(&peer, &who, false).is_ok(),
            "only farmer calls are rate limited"
        );
    }

    #[test]
    fn a_key_has_its_own_bucket_at_its_own_rate() {
        let l = Limits::new(&LimitConfig {
            client_rate_per_sec: 0.001,
            client_burst: 2.0,
            api_keys: vec![crate::config::ApiKeyConfig {
                name: "web".into(),
                key: "web-front-end-key-0123".into(),
                rate_per_sec: 0.001,
                burst: Some(5.0),
            }],
            ..LimitConfig::default()
        })
        .unwrap();
        let (keyed, web) = caller_of(&l, "10.0.0.1:5000", Some("web-front-end-key-0123"));
        assert_eq!(web, Caller::Key("web".into()));
        for _ in 0..5 {
            assert!(l.admit(&keyed, &web, true).is_ok());
        }
        let refused = l.admit(&keyed, &web, true).unwrap_err();
        assert!(refused.message().contains("\"web\""), "{refused:?}");
        assert!(!refused.message().contains("key-0123"), "{refused:?}");
        let (plain, address) = caller_of(&l, "10.0.0.1:5000", None);
        assert!(
            l.admit(&plain, &address, true).is_ok(),
            "the address has its own bucket"
        );
        assert!(l.admit(&plain, &address, true).is_ok());
        assert!(l.admit(&plain, &address, true).is_err());
        let mut unknown = from("10.0.0.1:5000");
        unknown.metadata_mut().insert(
            caller::API_KEY_HEADER,
            "not-a-key-we-know-0".parse().unwrap(),
        );
        assert_eq!(
            l.caller(&unknown).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }

    type Held = http_body_util::channel::Channel<bytes::Bytes>;

    /// Behind the layer, a service that answers a call once its request
    /// ends (its sender dropped).
    fn held_service(
        max_in_flight: usize,
    ) -> Admission<
        tower::util::BoxService<
            http::Request<Held>,
            http::Response<tonic::body::Body>,
            std::convert::Infallible,
        >,
    > {
        let layer = limits(max_in_flight, 0.0, 1.0).admission_layer();
        let inner =
            tower::util::BoxService::new(tower::service_fn(|r: http::Request<Held>| async move {
                let _ = http_body_util::BodyExt::collect(r.into_body()).await;
                Ok(http::Response::new(tonic::body::Body::empty()))
            }));
        tower::Layer::layer(&layer, inner)
    }

    fn request(
        path: &str,
    ) -> (
        http::Request<Held>,
        http_body_util::channel::Sender<bytes::Bytes>,
    ) {
        let (tx, rx) = Held::new(1);
        (http::Request::builder().uri(path).body(rx).unwrap(), tx)
    }

    fn grpc_status(response: &http::Response<tonic::body::Body>) -> Option<&str> {
        response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn calls_in_flight_are_bounded_from_their_arrival() {
        use tower::Service;
        let mut service = held_service(2);
        let path = "/xingweinong.v1.MatchService/MatchProblem";
        let (r1, release1) = request(path);
        let (r2, _release2) = request(path);
        // Counted when they arrive, before they are polled.
        let first = service.call(r1);
        let _second = service.call(r2);
        let (r3, _) = request(path);
        let refused = service.call(r3).await.unwrap();
        assert_eq!(grpc_status(&refused), Some("8"), "RESOURCE_EXHAUSTED");
        let (ping, release_ping) = request("/xingweinong.v1.MatchService/Ping");
        let ping = service.call(ping);
        drop(release_ping);
        assert_eq!(grpc_status(&ping.await.unwrap()), None, "Ping is exempt");
        drop(release1);
        assert_eq!(grpc_status(&first.await.unwrap()), None);
        let (r4, release4) = request(path);
        let fourth = service.call(r4);
        drop(release4);
        assert_eq!(grpc_status(&fourth.await.unwrap()), None, "a place freed");
    }

    #[test]
    fn once_busy_a_caller_holding_its_share_is_refused() {
        let h = Arc::new(Holdings::new(16, 64));
        let greedy = anyone();
        let light = Caller::Address("192.0.2.2".parse().unwrap());
        let key = Caller::Key("web".into());
        let _held: Vec<_> = (0..4).map(|_| h.take(&greedy, false).unwrap()).collect();
        assert_eq!(h.take(&greedy, true).err(), Some(Over::Share(4, 4)));
        let more: Vec<_> = (0..12).map(|_| h.take(&greedy, false).unwrap()).collect();
        assert_eq!(h.take(&greedy, false).err(), Some(Over::Address));
        assert!(h.take(&light, true).is_ok(), "a light caller is admitted");
        let _keyed: Vec<_> = (0..16).map(|_| h.take(&key, true).unwrap()).collect();
        assert_eq!(h.take(&key, true).err(), Some(Over::Share(16, 16)));
        assert!(h.take(&key, false).is_ok(), "a key has no bound of its own");
        drop(more);
        assert_eq!(h.take(&greedy, true).err(), Some(Over::Share(4, 4)));
        assert!(h.take(&greedy, false).is_ok(), "places given back");
    }

    #[tokio::test]
    async fn cpu_bound_calls_are_refused_at_once_while_the_slots_queue_is_long() {
        let l = Arc::new(limits(100, 0.0, 1.0));
        let now = || Some(Arrival(Instant::now()));
        let mut held = Vec::new();
        while let Ok(slot) = l.cpu.clone().try_acquire_owned() {
            held.push(slot);
        }
        // A call that arrived 100 ms ago waits for a slot, gets it and is
        // refused: it waited more than 50 ms (a fifth of max_queue_ms).
        let waiter = {
            let l = l.clone();
            let arrival = Some(Arrival(Instant::now() - Duration::from_millis(100)));
            tokio::spawn(async move { l.cpu_slot(arrival).await })
        };
        tokio::task::yield_now().await;
        held.pop();
        let late = waiter.await.unwrap().unwrap_err();
        assert!(late.message().contains("limit 50 ms"), "{late:?}");
        let late = l.cpu.clone().try_acquire_owned().unwrap();
        // No slot free: refused at once, not queued.
        let refused = tokio::time::timeout(Duration::from_secs(5), l.cpu_slot(now()))
            .await
            .expect("refused at once, not queued")
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("limit 50 ms"), "{refused:?}");
        // A free slot is taken whatever the last wait was, and resets it.
        drop(late);
        let fresh = l.cpu_slot(now()).await.expect("a slot is free");
        drop(held);
        let mut more = Vec::new();
        while let Ok(slot) = l.cpu.clone().try_acquire_owned() {
            more.push(slot);
        }
        let queued = {
            let l = l.clone();
            tokio::spawn(async move { l.cpu_slot(now()).await })
        };
        tokio::task::yield_now().await;
        drop(fresh);
        assert!(queued.await.unwrap().is_ok(), "a short queue is waited in");
    }

    #[test]
    fn submits_have_their_own_tighter_bound() {
        let l = limits(4, 0.0, 1.0);
        let none = tonic::Request::new(());
        let who = anyone();
        let a = l.admit_submit(&none, &who).unwrap();
        let _b = l.admit_submit(&none, &who).unwrap();
        let refused = l.admit_submit(&none, &who).err().unwrap();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("SubmitProblem"), "{refused:?}");
        assert!(
            l.admit(&none, &who, true).is_ok(),
            "other calls are not bound by it"
        );
        drop(a);
        assert!(l.admit_submit(&none, &who).is_ok());
        let off = Limits::new(&LimitConfig {
            max_in_flight: 4,
            max_submits_in_flight: 0,
            ..LimitConfig::default()
        })
        .unwrap();
        let held: Vec<_> = (0..4)
            .map(|_| off.admit_submit(&none, &who).unwrap())
            .collect();
        assert_eq!(held.len(), 4, "0 leaves only max_in_flight");
    }
}
