//! The platform's hostility, as the simulator plays it to the resolvers:
//! store calls that fail ([`homeward::faults`]: throttling, 5xx, timeouts
//! after the call took effect, hung calls) and invocations killed at
//! Lambda's timeout between two calls.
//!
//! Each Region's resolver gets its table and journal stores wrapped in one
//! [`FaultyStore`] family with its own random stream (seeded from the
//! spec's seed and the Region's place), so its table and journal calls fail
//! as one invocation's do and share one kill switch. Every wrapper yields to
//! the runtime before each call, so the Regions' resolvers, run at once,
//! interleave at every call even over the in-memory store.
//!
//! In-memory runs use virtual time ([`VirtualTime`]): the resolvers'
//! backoffs and hung calls cost no wall-clock time, so histories stay fast
//! with a fifth of all calls failing.

use std::fmt;
use std::time::Duration;

use homeward::faults::{FaultStats, Faults, FaultyStore};
use serde::Deserialize;

use crate::cluster::SimStore;

/// How hostile the platform is: a scenario's `"faults"`, the checker's
/// `--fault-rate`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Share of the resolvers' store calls that fail (0 to 1).
    pub rate: f64,
    /// Seeds which calls fail and which invocations are killed.
    #[serde(default)]
    pub seed: u64,
    /// Share of invocations killed at a random call, as Lambda's timeout
    /// kills a function between two awaits (default: half of `rate`).
    #[serde(default)]
    pub kill_rate: Option<f64>,
    /// How long a hung call waits for the client's timeout, in ms (short,
    /// so histories stay fast).
    #[serde(default = "default_hang_ms")]
    pub hang_ms: u64,
}

fn default_hang_ms() -> u64 {
    5
}

impl FaultSpec {
    pub fn new(rate: f64, seed: u64) -> Self {
        FaultSpec {
            rate,
            seed,
            kill_rate: None,
            hang_ms: default_hang_ms(),
        }
    }

    /// The share of invocations killed.
    pub fn kill_rate(&self) -> f64 {
        self.kill_rate.unwrap_or(self.rate / 2.0).clamp(0.0, 1.0)
    }

    /// The store faults of the resolver of the Region at `place`.
    pub fn faults(&self, place: usize) -> Faults {
        Faults::new(self.rate.clamp(0.0, 1.0), mix(self.seed, place as u64))
            .hang(Duration::from_millis(self.hang_ms))
    }
}

/// A seed per Region from one seed.
pub(crate) fn mix(seed: u64, place: u64) -> u64 {
    // SplitMix64's finaliser: nearby seeds give unrelated streams.
    let mut z = seed ^ place.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One Region's resolver stores: the table, the journal (control items
/// included) and, for negotiated homes, the assignments, faulted as one.
#[derive(Clone)]
pub struct ResolverStores {
    pub table: FaultyStore<SimStore>,
    pub journal: FaultyStore<SimStore>,
    pub assignments: Option<FaultyStore<SimStore>>,
}

impl ResolverStores {
    /// `faults`: `None` wraps without faults (calls still interleave and
    /// the kill switch still works).
    pub fn new(table: SimStore, journal: SimStore, faults: Option<Faults>) -> Self {
        let faults = faults.unwrap_or_else(Faults::none).interleave(true);
        let table = FaultyStore::new(table, faults);
        let journal = table.wrap(journal);
        ResolverStores {
            table,
            journal,
            assignments: None,
        }
    }

    pub fn stats(&self) -> FaultStats {
        self.table.stats()
    }
}

/// What the platform did to the resolvers over a run, for reports.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Injected {
    /// Store calls, faulted by kind.
    pub calls: FaultStats,
    /// Invocations killed at a random call (Lambda's timeout).
    pub killed_invocations: u64,
    /// Invocations that failed whole (killed, or an invalid response), and
    /// how many of them Lambda bisected.
    pub whole_failures: u64,
    pub bisects: u64,
    /// Records given up on after `MaximumRetryAttempts` (sent to the
    /// on-failure destination).
    pub on_failure: u64,
    /// Records the resolver quarantined in the journal.
    pub quarantined: u64,
}

impl Injected {
    /// The sum of two counts.
    pub fn add(&self, other: &Injected) -> Injected {
        Injected {
            calls: self.calls.add(&other.calls),
            killed_invocations: self.killed_invocations + other.killed_invocations,
            whole_failures: self.whole_failures + other.whole_failures,
            bisects: self.bisects + other.bisects,
            on_failure: self.on_failure + other.on_failure,
            quarantined: self.quarantined + other.quarantined,
        }
    }
}

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.calls;
        write!(
            f,
            "{} resolver store calls, {} faulted ({} throttled, {} 5xx, {} timed out after taking effect, {} hung until the client timeout); {} invocations killed at a call ({} whole-batch failures, {} bisected); {} records sent to the on-failure destination; {} records quarantined",
            c.calls,
            c.faulted(),
            c.throttled,
            c.server_errors,
            c.timed_out_after_effect,
            c.hung,
            self.killed_invocations,
            self.whole_failures,
            self.bisects,
            self.on_failure,
            self.quarantined
        )
    }
}

/// Virtual time while it lives: sleeps (backoffs, hung calls, Lambda's
/// timeout) advance a paused clock instantly when nothing else can run.
/// Only for in-memory runs (over moto, real HTTP needs real time), on a
/// current-thread runtime whose time is not already paused.
pub struct VirtualTime(());

impl VirtualTime {
    /// # Panics
    /// Outside a current-thread Tokio runtime, or when time is already
    /// paused.
    pub fn start() -> Self {
        tokio::time::pause();
        VirtualTime(())
    }
}

impl Drop for VirtualTime {
    fn drop(&mut self) {
        // Unwinding may happen outside the runtime: resuming there would
        // panic again.
        if !std::thread::panicking() {
            tokio::time::resume();
        }
    }
}
