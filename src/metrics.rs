//! The numbers operators watch, in Prometheus form: one registry for the
//! process, written to through named functions (`offer_made`,
//! `store_committed`, …) so the domain counts what happened without
//! knowing how it is exported, and the transport (`server/metrics.rs`)
//! serves [`encode`] at `GET /metrics`.
//!
//! Counting is an atomic add on a metric found by its labels under the
//! crate's read lock (calls: on a series kept per method and code,
//! [`CallSeries`]); label values are `&'static str` from small fixed
//! sets (methods, codes, states, tiers, reasons), so no call allocates,
//! except notifications (labelled by the configured endpoint's name).
//!
//! Per process: counters count what this replica did (sum them across
//! replicas); gauges of tickets show this replica's view of the shared
//! store, which each replica follows, so they agree across replicas.

use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use prometheus_client::{
    encoding::text,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

use crate::model::Tier;
use crate::tickets::TicketState;

type Labels1 = [(&'static str, &'static str); 1];
type Labels2 = [(&'static str, &'static str); 2];
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency of calls and commits: 0.25 ms to ~8 s.
fn fast() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// Index builds: 10 ms to ~5 min.
fn builds() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

/// People answering: 5 s to a day.
fn human() -> Histogram {
    Histogram::new([
        5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1_200.0, 1_800.0, 3_600.0, 7_200.0, 14_400.0,
        28_800.0, 86_400.0,
    ])
}

/// Webhook delivery lag: 50 ms to a day (retries go on for 24 h).
fn delivery() -> Histogram {
    Histogram::new([
        0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3_600.0, 21_600.0,
        86_400.0,
    ])
}

/// Every metric of the process; see README "Monitoring" for the question
/// each answers.
struct Metrics {
    registry: Registry,
    calls: Family<Labels2, Counter>,
    call_seconds: Histograms<Labels1>,
    shed: Family<Labels1, Counter>,
    tickets: Family<Labels1, Gauge>,
    tickets_closed: Family<Labels1, Counter>,
    queue_length: Gauge,
    offers: Family<Labels1, Counter>,
    offers_declined: Family<Labels1, Counter>,
    offers_lapsed: Family<Labels1, Counter>,
    accept_seconds: Histograms<Labels1>,
    resolve_seconds: Histograms<Labels1>,
    roster_version: Gauge,
    roster_talents: Gauge,
    index_build_seconds: Histograms<Labels1>,
    store_commit_seconds: Histograms<Labels1>,
    store_commit_writes: Histogram,
    decide_seconds: Histogram,
    notifications: Family<[(&'static str, String); 2], Counter>,
    notification_lag_seconds: Histograms<[(&'static str, String); 1]>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("xwn"),
            calls: Family::default(),
            call_seconds: Family::new_with_constructor(fast),
            shed: Family::default(),
            tickets: Family::default(),
            tickets_closed: Family::default(),
            queue_length: Gauge::default(),
            offers: Family::default(),
            offers_declined: Family::default(),
            offers_lapsed: Family::default(),
            accept_seconds: Family::new_with_constructor(human),
            resolve_seconds: Family::new_with_constructor(human),
            roster_version: Gauge::default(),
            roster_talents: Gauge::default(),
            index_build_seconds: Family::new_with_constructor(builds),
            store_commit_seconds: Family::new_with_constructor(fast),
            store_commit_writes: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            decide_seconds: Histogram::new(exponential_buckets(0.000_01, 2.0, 14)),
            notifications: Family::default(),
            notification_lag_seconds: Family::new_with_constructor(delivery),
        };
        let r = &mut m.registry;
        r.register(
            "calls",
            "Calls answered, by method and gRPC status code (gRPC, gRPC-Web and Connect alike; refusals at the limits included)",
            m.calls.clone(),
        );
        r.register(
            "call_seconds",
            "Time from a unary call's arrival to its status, by method",
            m.call_seconds.clone(),
        );
        r.register(
            "shed",
            "Calls and connections refused at a load limit, by reason (the kind the log names)",
            m.shed.clone(),
        );
        r.register(
            "tickets",
            "Open tickets by state (queued, offered, accepted), as this replica sees the store",
            m.tickets.clone(),
        );
        r.register(
            "tickets_closed",
            "Tickets this replica closed, by final state (resolved, unroutable, cancelled)",
            m.tickets_closed.clone(),
        );
        r.register(
            "queue_length",
            "Tickets waiting QUEUED for a free responder (what tickets.max_queued bounds)",
            m.queue_length.clone(),
        );
        r.register(
            "offers",
            "Offers made to a responder, by tier",
            m.offers.clone(),
        );
        r.register(
            "offers_declined",
            "Offers declined by their responder, by tier",
            m.offers_declined.clone(),
        );
        r.register(
            "offers_lapsed",
            "Offers that lapsed unanswered (tickets.offer_timeout_ms), by tier",
            m.offers_lapsed.clone(),
        );
        r.register(
            "ticket_accept_seconds",
            "Time from a ticket's submission to its acceptance, by the accepting tier",
            m.accept_seconds.clone(),
        );
        r.register(
            "ticket_resolve_seconds",
            "Time from a ticket's submission to its resolution, by the resolving tier",
            m.resolve_seconds.clone(),
        );
        r.register(
            "roster_version",
            "The roster version served",
            m.roster_version.clone(),
        );
        r.register(
            "roster_talents",
            "Talents in the roster served",
            m.roster_talents.clone(),
        );
        r.register(
            "index_build_seconds",
            "Time to build and commit a roster index, by kind (full: import or start-up; change: upsert or removal)",
            m.index_build_seconds.clone(),
        );
        r.register(
            "store_commit_seconds",
            "Time to commit a batch of ticket changes to the ticket store (operation: commit)",
            m.store_commit_seconds.clone(),
        );
        r.register(
            "store_commit_writes",
            "Ticket changes per commit to the ticket store (group commit: the decisions made while the previous commit was in flight)",
            m.store_commit_writes.clone(),
        );
        r.register(
            "decide_seconds",
            "Time a submission held the dispatcher's lock to decide (catch-up, routing, the state machine, its notifications): decisions are serialised, so its inverse bounds submissions per second",
            m.decide_seconds.clone(),
        );
        r.register(
            "notifications",
            "Notification delivery attempts, by webhook endpoint and outcome",
            m.notifications.clone(),
        );
        r.register(
            "notification_lag_seconds",
            "Time from a notification's commit to its endpoint's 2xx, by endpoint",
            m.notification_lag_seconds.clone(),
        );
        // Open states are shown at zero from the start, not only once a
        // ticket has been in them.
        for state in TicketState::ALL.into_iter().filter(|s| s.is_open()) {
            m.tickets.get_or_create(&[("state", state.key())]).set(0);
        }
        m
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The metrics in the OpenMetrics text format (which Prometheus reads),
/// ending with `# EOF`.
pub fn encode() -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = text::encode(&mut out, &METRICS.registry);
    out
}

/// How many status codes gRPC has (`OK` = 0 … `UNAUTHENTICATED` = 16).
pub const CODES: usize = 17;

/// The call series of one method (its proto name): each found in its
/// family the first time it is counted and kept, so a call counts with an
/// atomic add instead of hashing its labels into the family. A series
/// still appears in the text only once it has counted something, as
/// before.
pub struct CallSeries {
    method: &'static str,
    /// `xwn_calls_total`, by the code's number.
    calls: [OnceLock<Counter>; CODES],
    /// `xwn_call_seconds`.
    seconds: OnceLock<Histogram>,
}

impl CallSeries {
    pub const fn new(method: &'static str) -> CallSeries {
        CallSeries {
            method,
            calls: [const { OnceLock::new() }; CODES],
            seconds: OnceLock::new(),
        }
    }

    /// A call ended with the code numbered `code` and named `name` (`OK`,
    /// `RESOURCE_EXHAUSTED`, …) after `took` (none for streams, whose
    /// length says nothing about the server).
    pub fn finished(&self, code: usize, name: &'static str, took: Option<Duration>) {
        let m = &*METRICS;
        let labels = [("method", self.method), ("code", name)];
        match self.calls.get(code) {
            Some(series) => (series.get_or_init(|| m.calls.get_or_create(&labels).clone())).inc(),
            None => m.calls.get_or_create(&labels).inc(),
        };
        if let Some(took) = took {
            let seconds = (self.seconds).get_or_init(|| {
                m.call_seconds
                    .get_or_create(&[("method", self.method)])
                    .clone()
            });
            seconds.observe(took.as_secs_f64());
        }
    }
}

/// A call or connection refused at a limit of kind `reason` (`in_flight`,
/// `rate_limit`, `connections_total`, `max_queued`, …).
pub fn shed(reason: &'static str) {
    METRICS.shed.get_or_create(&[("reason", reason)]).inc();
}

/// A ticket known open as `from` is now `to` (either may be closed or
/// absent: only open states are gauged).
pub fn ticket_moved(from: Option<TicketState>, to: TicketState) {
    let m = &*METRICS;
    if from == Some(to) {
        return;
    }
    if let Some(from) = from.filter(|s| s.is_open()) {
        m.tickets.get_or_create(&[("state", from.key())]).dec();
    }
    if to.is_open() {
        m.tickets.get_or_create(&[("state", to.key())]).inc();
    }
}

/// This replica closed a ticket as `state`.
pub fn ticket_closed(state: TicketState) {
    (METRICS.tickets_closed)
        .get_or_create(&[("state", state.key())])
        .inc();
}

/// `n` tickets wait QUEUED now.
pub fn queue_length(n: usize) {
    METRICS
        .queue_length
        .set(i64::try_from(n).unwrap_or(i64::MAX));
}

/// A ticket was offered to a responder of `tier`.
pub fn offer_made(tier: Tier) {
    METRICS.offers.get_or_create(&[("tier", tier.key())]).inc();
}

/// A responder of `tier` declined an offer.
pub fn offer_declined(tier: Tier) {
    (METRICS.offers_declined)
        .get_or_create(&[("tier", tier.key())])
        .inc();
}

/// An offer to a responder of `tier` lapsed unanswered.
pub fn offer_lapsed(tier: Tier) {
    (METRICS.offers_lapsed)
        .get_or_create(&[("tier", tier.key())])
        .inc();
}

/// A responder of `tier` accepted a ticket `since_submit` after it was
/// submitted.
pub fn ticket_accepted(tier: Tier, since_submit: Duration) {
    (METRICS.accept_seconds)
        .get_or_create(&[("tier", tier.key())])
        .observe(since_submit.as_secs_f64());
}

/// A responder of `tier` resolved a ticket `since_submit` after it was
/// submitted.
pub fn ticket_resolved(tier: Tier, since_submit: Duration) {
    (METRICS.resolve_seconds)
        .get_or_create(&[("tier", tier.key())])
        .observe(since_submit.as_secs_f64());
}

/// The roster served is now `version`, with `talents` talents.
pub fn roster_published(version: u64, talents: usize) {
    let m = &*METRICS;
    m.roster_version
        .set(i64::try_from(version).unwrap_or(i64::MAX));
    m.roster_talents
        .set(i64::try_from(talents).unwrap_or(i64::MAX));
}

/// What kind of roster index was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexBuild {
    /// A whole roster: an import, a replay of one, the first start.
    Full,
    /// An upsert or removal committed to the live index.
    Change,
}

/// A roster index of `kind` was built and committed in `took`.
pub fn index_built(kind: IndexBuild, took: Duration) {
    let kind = match kind {
        IndexBuild::Full => "full",
        IndexBuild::Change => "change",
    };
    (METRICS.index_build_seconds)
        .get_or_create(&[("kind", kind)])
        .observe(took.as_secs_f64());
}

/// A commit of `writes` ticket changes to the ticket store returned after
/// `took`.
pub fn store_committed(writes: usize, took: Duration) {
    (METRICS.store_commit_seconds)
        .get_or_create(&[("operation", "commit")])
        .observe(took.as_secs_f64());
    METRICS.store_commit_writes.observe(writes as f64);
}

/// A submission held the dispatcher's lock for `took` to decide.
pub fn decided(took: Duration) {
    METRICS.decide_seconds.observe(took.as_secs_f64());
}

/// How one delivery attempt of a notification ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The endpoint answered 2xx.
    Delivered,
    /// Any other answer, or none: it will be retried.
    Failed,
    /// 410 Gone: the endpoint is disabled.
    Disabled,
    /// Retried for `notify.retry_for_secs` without success: given up.
    Expired,
}

impl DeliveryOutcome {
    fn key(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Failed => "failed",
            DeliveryOutcome::Disabled => "disabled",
            DeliveryOutcome::Expired => "expired",
        }
    }
}

/// One delivery attempt to the webhook endpoint named `endpoint` (its
/// `[[notify.webhooks]] name`) ended with `outcome`.
pub fn notification_delivered(endpoint: &str, outcome: DeliveryOutcome) {
    let labels = [
        ("endpoint", endpoint.to_string()),
        ("outcome", outcome.key().to_string()),
    ];
    METRICS.notifications.get_or_create(&labels).inc();
}

/// A notification reached `endpoint` (2xx) `lag` after its change was
/// committed: call once per delivered notification, beside
/// [`notification_delivered`] with [`DeliveryOutcome::Delivered`].
pub fn notification_lag(endpoint: &str, lag: Duration) {
    let labels = [("endpoint", endpoint.to_string())];
    (METRICS.notification_lag_seconds)
        .get_or_create(&labels)
        .observe(lag.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `line_start` (name and labels, exactly).
    fn sample(text: &str, line_start: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    }

    /// Kept series count as the family's would: each code apart, a
    /// series shown once it has counted, the histogram only when timed.
    #[test]
    fn call_series_count_each_code_apart() {
        static SERIES: CallSeries = CallSeries::new("UnitSeries");
        let ok = r#"xwn_calls_total{method="UnitSeries",code="OK"}"#;
        let full = r#"xwn_calls_total{method="UnitSeries",code="RESOURCE_EXHAUSTED"}"#;
        let timed = r#"xwn_call_seconds_count{method="UnitSeries"}"#;
        assert_eq!(sample(&encode(), ok), None);
        SERIES.finished(0, "OK", Some(Duration::from_millis(1)));
        SERIES.finished(0, "OK", None);
        let after = encode();
        assert_eq!(sample(&after, ok), Some(2.0), "{after}");
        assert_eq!(sample(&after, full), None, "{after}");
        SERIES.finished(8, "RESOURCE_EXHAUSTED", Some(Duration::from_millis(1)));
        let after = encode();
        assert_eq!(sample(&after, ok), Some(2.0), "{after}");
        assert_eq!(sample(&after, full), Some(1.0), "{after}");
        assert_eq!(sample(&after, timed), Some(2.0), "{after}");
    }

    #[test]
    fn notification_hooks_count_by_endpoint_and_outcome() {
        let before = encode();
        let delivered = r#"xwn_notifications_total{endpoint="unit-gateway",outcome="delivered"}"#;
        let failed = r#"xwn_notifications_total{endpoint="unit-gateway",outcome="failed"}"#;
        let lag = r#"xwn_notification_lag_seconds_count{endpoint="unit-gateway"}"#;
        let bucket = r#"xwn_notification_lag_seconds_bucket{le="1.0",endpoint="unit-gateway"}"#;
        assert_eq!(sample(&before, delivered), None, "{before}");
        notification_delivered("unit-gateway", DeliveryOutcome::Failed);
        notification_delivered("unit-gateway", DeliveryOutcome::Failed);
        notification_delivered("unit-gateway", DeliveryOutcome::Delivered);
        notification_lag("unit-gateway", Duration::from_millis(700));
        let after = encode();
        assert_eq!(sample(&after, failed), Some(2.0), "{after}");
        assert_eq!(sample(&after, delivered), Some(1.0), "{after}");
        assert_eq!(sample(&after, lag), Some(1.0), "{after}");
        assert_eq!(
            sample(&after, bucket),
            Some(1.0),
            "0.7 s is under 1 s: {after}"
        );
        assert!(after.ends_with("# EOF\n"), "{after}");
        let accepted = r#"xwn_tickets{state="accepted"}"#;
        assert!(
            sample(&before, accepted).is_some(),
            "open states from the start"
        );
        assert_eq!(sample(&before, r#"xwn_tickets{state="resolved"}"#), None);
    }
}
