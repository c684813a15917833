//! Retry policy: attempts, exponential backoff with full jitter, timeout.
//! Pure: the random fraction is passed in, so tests are deterministic.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a step is retried. Persisted with each step at run start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubled for each later one.
    pub initial_backoff: Duration,
    /// Upper bound of any backoff.
    pub max_backoff: Duration,
    /// An attempt running longer than this fails retryably (`None`: no limit).
    pub timeout: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            timeout: Some(Duration::from_secs(3600)),
        }
    }
}

impl RetryPolicy {
    /// A policy with `n` attempts and otherwise the defaults.
    pub fn attempts(n: u32) -> Self {
        Self { max_attempts: n.max(1), ..Self::default() }
    }

    /// The same policy with another initial backoff.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// The same policy with another timeout.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// True when an attempt numbered `attempt` (1-based) may be followed by another.
    pub fn has_attempts_left(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The delay before the attempt after `attempt` (1-based), with "equal
    /// jitter": half the exponential delay fixed, half scaled by `jitter` in
    /// `[0, 1)`, so retries of many steps failing together spread out but a
    /// retry never comes sooner than half the nominal delay.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let nominal = self.initial_backoff.saturating_mul(1u32 << exp).min(self.max_backoff);
        let half = nominal / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy::attempts(10).with_backoff(Duration::from_secs(1), Duration::from_secs(10));
        assert_eq!(p.backoff(1, 1.0), Duration::from_secs(1));
        assert_eq!(p.backoff(2, 1.0), Duration::from_secs(2));
        assert_eq!(p.backoff(3, 1.0), Duration::from_secs(4));
        assert_eq!(p.backoff(9, 1.0), Duration::from_secs(10));
        assert_eq!(p.backoff(40, 1.0), Duration::from_secs(10));
    }

    #[test]
    fn jitter_keeps_at_least_half_the_delay() {
        let p = RetryPolicy::attempts(5).with_backoff(Duration::from_secs(4), Duration::from_secs(60));
        assert_eq!(p.backoff(1, 0.0), Duration::from_secs(2));
        assert_eq!(p.backoff(1, 0.5), Duration::from_secs(3));
    }

    #[test]
    fn attempts_left() {
        let p = RetryPolicy::attempts(3);
        assert!(p.has_attempts_left(2));
        assert!(!p.has_attempts_left(3));
        assert_eq!(RetryPolicy::attempts(0).max_attempts, 1);
    }
}
