//! Log lines an attacker can cause (failed admin authentication, calls
//! refused at a limit) are rate-limited here, so a flood of refusals cannot
//! flood the log: at most one line per kind per interval, and that line
//! says how many of its kind were left out since the last one.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// How often a line of one kind may be written.
const EVERY: Duration = Duration::from_secs(1);

struct Window {
    last: Instant,
    suppressed: u64,
}

pub(crate) struct Throttle {
    every: Duration,
    kinds: Mutex<HashMap<&'static str, Window>>,
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new(EVERY)
    }
}

impl Throttle {
    pub(crate) fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a line of `kind` may be written now: `Some(n)` with the `n`
    /// lines of its kind left out since the last one written, or `None`
    /// (counted as left out).
    pub(crate) fn pass(&self, kind: &'static str) -> Option<u64> {
        let now = Instant::now();
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        match kinds.get_mut(kind) {
            None => {
                kinds.insert(
                    kind,
                    Window {
                        last: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
            Some(w) if now.duration_since(w.last) >= self.every => {
                w.last = now;
                Some(std::mem::take(&mut w.suppressed))
            }
            Some(w) => {
                w.suppressed += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_interval_with_the_count_left_out() {
        let t = Throttle::new(Duration::from_millis(50));
        assert_eq!(t.pass("auth"), Some(0));
        assert_eq!(t.pass("auth"), None);
        assert_eq!(t.pass("auth"), None);
        assert_eq!(t.pass("limit"), Some(0), "kinds are apart");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.pass("auth"), Some(2));
        assert_eq!(t.pass("auth"), None);
    }
}
