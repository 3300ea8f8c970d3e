//! Load limits at the door: a bound on calls in flight for the whole server,
//! a tighter one for SubmitProblem (whose calls queue behind the
//! dispatcher's lock and a synchronous commit), and a token bucket per
//! client address for farmer-facing calls. Past any of them, a call gets
//! RESOURCE_EXHAUSTED at once instead of queueing.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Instant,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use crate::config::LimitConfig;

/// Buckets idle this long are forgotten when the table grows.
const IDLE_SECS: f64 = 60.0;
const PRUNE_AT: usize = 10_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A call's place under the limits, held until its reply is sent.
#[derive(Debug)]
#[must_use = "the call is admitted only while its permit is held"]
pub struct Permit {
    _in_flight: OwnedSemaphorePermit,
    _method: Option<OwnedSemaphorePermit>,
}

pub struct Limits {
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    /// None when `max_submits_in_flight` is 0.
    submits: Option<Arc<Semaphore>>,
    max_submits: usize,
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl Limits {
    pub fn new(config: &LimitConfig) -> Limits {
        Limits {
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            max_in_flight: config.max_in_flight,
            submits: (config.max_submits_in_flight > 0)
                .then(|| Arc::new(Semaphore::new(config.max_submits_in_flight))),
            max_submits: config.max_submits_in_flight,
            rate: config.client_rate_per_sec,
            burst: config.client_burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Admits a call: the permit is held until the reply is sent. Farmer
    /// calls are also charged to their client's bucket.
    pub fn admit(&self, peer: Option<SocketAddr>, farmer: bool) -> Result<Permit, Status> {
        if farmer && self.rate > 0.0 {
            if let Some(ip) = peer.map(|p| p.ip()) {
                self.charge(ip)?;
            }
        }
        let in_flight = self.in_flight.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "the server is at its limit of {} calls in flight; retry shortly",
                self.max_in_flight
            ))
        })?;
        Ok(Permit {
            _in_flight: in_flight,
            _method: None,
        })
    }

    /// Admits a SubmitProblem call: a farmer call that also takes one of
    /// the `max_submits_in_flight` places.
    pub fn admit_submit(&self, peer: Option<SocketAddr>) -> Result<Permit, Status> {
        let mut permit = self.admit(peer, true)?;
        if let Some(submits) = &self.submits {
            let place = submits.clone().try_acquire_owned().map_err(|_| {
                Status::resource_exhausted(format!(
                    "the server is at its limit of {} SubmitProblem calls in flight; retry shortly",
                    self.max_submits
                ))
            })?;
            permit._method = Some(place);
        }
        Ok(permit)
    }

    fn charge(&self, ip: IpAddr) -> Result<(), Status> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= PRUNE_AT {
            buckets.retain(|_, b| now.duration_since(b.at).as_secs_f64() < IDLE_SECS);
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * self.rate)
            .min(self.burst);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return Err(Status::resource_exhausted(format!(
                "rate limit: at most {} calls per second from one client (bursts of {}); retry shortly",
                self.rate, self.burst
            )));
        }
        bucket.tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_in_flight: usize, rate: f64, burst: f64) -> Limits {
        Limits::new(&LimitConfig {
            max_in_flight,
            max_submits_in_flight: 2,
            client_rate_per_sec: rate,
            client_burst: burst,
            ..LimitConfig::default()
        })
    }

    #[test]
    fn a_client_gets_its_burst_then_is_refused() {
        let l = limits(100, 0.001, 3.0);
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let other: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        for _ in 0..3 {
            assert!(l.admit(Some(peer), true).is_ok());
        }
        assert_eq!(
            l.admit(Some(peer), true).unwrap_err().code(),
            tonic::Code::ResourceExhausted
        );
        assert!(l.admit(Some(other), true).is_ok(), "buckets are per client");
        assert!(
            l.admit(Some(peer), false).is_ok(),
            "only farmer calls are rate limited"
        );
    }

    #[test]
    fn calls_in_flight_are_bounded() {
        let l = limits(2, 0.0, 1.0);
        let a = l.admit(None, true).unwrap();
        let _b = l.admit(None, true).unwrap();
        assert_eq!(
            l.admit(None, true).unwrap_err().code(),
            tonic::Code::ResourceExhausted
        );
        drop(a);
        assert!(l.admit(None, true).is_ok());
    }

    #[test]
    fn submits_have_their_own_tighter_bound() {
        let l = limits(4, 0.0, 1.0);
        let a = l.admit_submit(None).unwrap();
        let _b = l.admit_submit(None).unwrap();
        let refused = l.admit_submit(None).err().unwrap();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("SubmitProblem"), "{refused:?}");
        // Other calls still get the rest of the server's places.
        let _c = l.admit(None, true).unwrap();
        let _d = l.admit(None, true).unwrap();
        assert!(
            l.admit(None, true).is_err(),
            "submits count as calls in flight"
        );
        drop(a);
        assert!(l.admit_submit(None).is_ok());
        let off = Limits::new(&LimitConfig {
            max_in_flight: 4,
            max_submits_in_flight: 0,
            ..LimitConfig::default()
        });
        let held: Vec<_> = (0..4).map(|_| off.admit_submit(None).unwrap()).collect();
        assert_eq!(held.len(), 4, "0 leaves only max_in_flight");
    }
}
