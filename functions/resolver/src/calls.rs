//! The time budget of one invocation: every store call is bounded by the
//! time left, transient errors are retried with full-jitter backoff while
//! that time allows, and no record starts that could not finish. The
//! invocation always answers Lambda before its timeout, so a slow or hung
//! call never turns into a whole-batch failure.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use homeward::{Region, StoreError};
use rand::Rng;

/// Time kept back from the Lambda deadline to report the batch.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(1_500);
/// A record starts only with at least this much time left (beyond the
/// margin): a read, a conditional put and a journal put.
pub const RECORD_MIN_TIME: Duration = Duration::from_millis(500);
/// The first backoff's upper bound; each retry doubles it up to the cap.
const BACKOFF_BASE: Duration = Duration::from_millis(20);
const BACKOFF_CAP: Duration = Duration::from_millis(1_000);

/// One try of a DynamoDB call (a same-Region call takes milliseconds, a
/// cross-Region one a few hundred).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// A call with the SDK's own retries (3 attempts with backoff).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The SDK timeouts both functions use; every call is further bounded by
/// the invocation's time left ([`Budget::bounded`]).
pub fn sdk_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// What the store's transient errors cost one invocation (for metrics).
#[derive(Debug, Default)]
pub struct CallStats {
    /// Calls tried again after a transient error.
    pub retries: AtomicU64,
    /// Of those, throttling (the table's or the account's limits).
    pub throttles: AtomicU64,
    /// Of those, calls that did not answer in time.
    pub timeouts: AtomicU64,
}

impl CallStats {
    fn record(&self, e: &StoreError) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        if e.is_throttling() {
            self.throttles.fetch_add(1, Ordering::Relaxed);
        }
        if matches!(e, StoreError::TimedOut { .. }) {
            self.timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (retries, throttles, timeouts) so far.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.retries.load(Ordering::Relaxed),
            self.throttles.load(Ordering::Relaxed),
            self.timeouts.load(Ordering::Relaxed),
        )
    }
}

/// The deadline of one invocation, and where its retries are counted.
/// Measured on tokio's clock, so a simulator that pauses time (and jumps
/// over backoffs) sees the budget run out as the platform would.
#[derive(Debug, Clone, Copy)]
pub struct Budget<'a> {
    deadline: tokio::time::Instant,
    stats: &'a CallStats,
}

impl<'a> Budget<'a> {
    pub fn new(deadline: Instant, stats: &'a CallStats) -> Self {
        // The time left now, on tokio's clock (the same as the system's
        // unless time is paused).
        let left = deadline.saturating_duration_since(Instant::now());
        Budget {
            deadline: tokio::time::Instant::now() + left,
            stats,
        }
    }

    /// Time left for work: until the deadline, less the margin.
    pub fn left(&self) -> Duration {
        self.deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .saturating_sub(DEADLINE_MARGIN)
    }

    /// Whether a record may start.
    pub fn can_start(&self) -> bool {
        self.left() >= RECORD_MIN_TIME
    }

    /// Runs one store call, bounded by the time left: a call still pending
    /// then is abandoned and reported as timed out (it may have happened).
    ///
    /// # Errors
    /// The call's own error, or [`StoreError::TimedOut`].
    pub async fn bounded<T, E: From<StoreError>>(
        &self,
        region: &Region,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        match tokio::time::timeout(self.left(), call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::TimedOut {
                region: region.to_string(),
            }
            .into()),
        }
    }

    /// Sleeps before retry number `attempt` (from 1): a random time up to
    /// `BACKOFF_BASE * 2^attempt`, capped (full jitter, so retries from
    /// several Regions on one hot item spread out). Returns `false`, without
    /// sleeping, when the sleep and one more record's worth of work would
    /// not fit in the time left.
    pub async fn backoff(&self, attempt: u32) -> bool {
        let ceiling = BACKOFF_BASE
            .saturating_mul(1 << attempt.min(10))
            .min(BACKOFF_CAP);
        let sleep =
            Duration::from_micros(rand::rng().random_range(0..=ceiling.as_micros().max(1) as u64));
        if sleep + RECORD_MIN_TIME > self.left() {
            return false;
        }
        tokio::time::sleep(sleep).await;
        true
    }

    /// Runs `call` bounded by the time left, retrying transient errors
    /// (throttling, 5xx, timeouts) with backoff while time allows.
    ///
    /// # Errors
    /// A permanent error at once; the last transient one when time runs out.
    pub async fn retrying<T, F, Fut>(&self, region: &Region, mut call: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.bounded(region, call()).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() => {
                    self.stats.record(&e);
                    if !self.backoff(attempt).await {
                        tracing::warn!(error = %e, attempt, "transient error, out of time");
                        return Err(e);
                    }
                    tracing::debug!(error = %e, attempt, "transient error, retrying");
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static STATS: CallStats = CallStats {
        retries: AtomicU64::new(0),
        throttles: AtomicU64::new(0),
        timeouts: AtomicU64::new(0),
    };

    fn region() -> Region {
        Region::parse("us-east-1").unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_call_is_cut_at_the_time_left() {
        let budget = Budget::new(Instant::now() + Duration::from_secs(3), &STATS);
        let started = tokio::time::Instant::now();
        let result: Result<(), StoreError> =
            budget.bounded(&region(), std::future::pending()).await;
        assert!(matches!(result, Err(StoreError::TimedOut { .. })));
        // 3 s less the margin, never the whole deadline.
        assert!(started.elapsed() <= Duration::from_millis(1_600));
    }

    #[tokio::test]
    async fn no_record_starts_without_time_for_it() {
        let budget = Budget::new(
            Instant::now() + DEADLINE_MARGIN + RECORD_MIN_TIME / 2,
            &STATS,
        );
        assert!(!budget.can_start());
        assert!(!budget.backoff(1).await);
        let budget = Budget::new(Instant::now() + Duration::from_secs(60), &STATS);
        assert!(budget.can_start());
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let budget = Budget::new(Instant::now() + Duration::from_secs(60), &STATS);
        let mut calls = 0;
        let result: Result<(), _> = budget
            .retrying(&region(), || {
                calls += 1;
                async { Err(StoreError::Rejected("ValidationException".into())) }
            })
            .await;
        assert!(matches!(result, Err(StoreError::Rejected(_))));
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_they_pass() {
        let budget = Budget::new(Instant::now() + Duration::from_secs(60), &STATS);
        let mut calls = 0;
        let result = budget
            .retrying(&region(), || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 4 {
                        Err(StoreError::TimedOut {
                            region: "us-east-1".into(),
                        })
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(result.unwrap(), 4);
    }
}
