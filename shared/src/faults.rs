//! Fault injection over any [`Store`]: the errors DynamoDB and its client
//! really produce, drawn at random from a seed, so tests and the simulator
//! meet them on every call the functions make.
//!
//! [`FaultyStore`] wraps a store. On each `get`, `put` and `scan`, with
//! probability [`Faults::rate`], one [`FaultKind`] is drawn:
//!
//! - [`FaultKind::Throttling`]: `ThrottlingException`, retryable, nothing done;
//! - [`FaultKind::ServerError`]: a 5xx (`InternalServerError`), retryable,
//!   nothing done;
//! - [`FaultKind::TimeoutAfterEffect`]: the call is made (a put is written)
//!   and then reported as [`StoreError::TimedOut`]: the caller cannot know
//!   it took effect;
//! - [`FaultKind::Hang`]: the call hangs for [`Faults::hang`] (the client's
//!   timeout) and is reported as [`StoreError::TimedOut`], not made.
//!
//! A [`KillSwitch`] plays Lambda's timeout killing an invocation between two
//! calls: once armed with `n`, the next `n` calls go through and every later
//! one never answers, so the harness can drop the invocation's future
//! (calls answered took effect; the rest did not). Wrappers made with
//! [`FaultyStore::wrap`] share one random source, one set of counters and
//! one kill switch: a resolver's table and journal stores fail as one
//! invocation.
//!
//! ```
//! use std::time::Duration;
//! use homeward::faults::{Faults, FaultyStore};
//! # #[derive(Clone)] struct Table;
//! # impl homeward::Store for Table {
//! #     async fn get(&self, _: &homeward::Region, _: &serde_dynamo::Item)
//! #         -> Result<Option<serde_dynamo::Item>, homeward::StoreError> { Ok(None) }
//! #     async fn put(&self, _: &homeward::Region, _: &serde_dynamo::Item, _: &homeward::PutCondition)
//! #         -> Result<(), homeward::StoreError> { Ok(()) }
//! # }
//! # let (table, journal) = (Table, Table);
//! // 20% of calls fail, from seed 7; hung calls wait 5 ms.
//! let faults = Faults::new(0.2, 7).hang(Duration::from_millis(5));
//! let table = FaultyStore::new(table, faults);
//! let journal = table.wrap(journal); // same seed stream, counters, kill switch
//! // ... give both to a resolver, then read what happened:
//! let stats = table.stats();
//! assert_eq!(stats.faulted(), 0);
//! ```

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_dynamo::Item;
use tokio::sync::Notify;

use crate::dot::Region;
use crate::store::{Page, PutCondition, PutResult, Store, StoreError};

/// One kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// `ThrottlingException`: retryable; the call was not made.
    Throttling,
    /// `InternalServerError` (500): retryable; the call was not made.
    ServerError,
    /// The call took effect, then the client timed out waiting for the
    /// answer ([`StoreError::TimedOut`]).
    TimeoutAfterEffect,
    /// The call hung until the client's timeout ([`Faults::hang`]), then
    /// [`StoreError::TimedOut`]; the call was not made.
    Hang,
}

impl FaultKind {
    /// Every kind, each drawn equally often by default.
    pub const ALL: [FaultKind; 4] = [
        FaultKind::Throttling,
        FaultKind::ServerError,
        FaultKind::TimeoutAfterEffect,
        FaultKind::Hang,
    ];
}

/// What to inject.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Probability that a call is faulted (0 turns injection off).
    pub rate: f64,
    /// Seeds the random source: the same seed and the same calls in the
    /// same order give the same faults.
    pub seed: u64,
    /// How long a hung call waits before it times out (the client's
    /// timeout).
    pub hang: Duration,
    /// The kinds drawn, equally likely.
    pub kinds: Vec<FaultKind>,
    /// Yield to the runtime before every call, so that concurrent callers
    /// (several Regions' resolvers on one thread, over an in-memory store
    /// that never waits) interleave at every call as they would over the
    /// network.
    pub interleave: bool,
}

impl Faults {
    /// `rate` of calls faulted, every kind, hung calls waiting 10 ms, no
    /// forced interleaving.
    pub fn new(rate: f64, seed: u64) -> Self {
        Faults {
            rate,
            seed,
            hang: Duration::from_millis(10),
            kinds: FaultKind::ALL.to_vec(),
            interleave: false,
        }
    }

    /// No faults (the wrapper still counts calls and has a kill switch).
    pub fn none() -> Self {
        Faults::new(0.0, 0)
    }

    pub fn hang(mut self, hang: Duration) -> Self {
        self.hang = hang;
        self
    }

    pub fn kinds(mut self, kinds: &[FaultKind]) -> Self {
        self.kinds = kinds.to_vec();
        self
    }

    pub fn interleave(mut self, on: bool) -> Self {
        self.interleave = on;
        self
    }
}

/// Counts of what a [`FaultyStore`] (and the wrappers sharing its state)
/// did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FaultStats {
    /// Every call made through the wrapper.
    pub calls: u64,
    pub throttled: u64,
    pub server_errors: u64,
    /// Calls that took effect and were reported as timed out.
    pub timed_out_after_effect: u64,
    /// Calls that hung until the client's timeout.
    pub hung: u64,
    /// Calls that never answered because the kill switch had fired.
    pub killed_calls: u64,
}

impl FaultStats {
    /// Calls that failed on purpose (the kill switch aside).
    pub fn faulted(&self) -> u64 {
        self.throttled + self.server_errors + self.timed_out_after_effect + self.hung
    }

    /// Calls reported as timed out (after effect, or hung).
    pub fn timeouts(&self) -> u64 {
        self.timed_out_after_effect + self.hung
    }

    /// The sum of two counts (totals over several wrappers).
    pub fn add(&self, other: &FaultStats) -> FaultStats {
        FaultStats {
            calls: self.calls + other.calls,
            throttled: self.throttled + other.throttled,
            server_errors: self.server_errors + other.server_errors,
            timed_out_after_effect: self.timed_out_after_effect + other.timed_out_after_effect,
            hung: self.hung + other.hung,
            killed_calls: self.killed_calls + other.killed_calls,
        }
    }
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    throttled: AtomicU64,
    server_errors: AtomicU64,
    timed_out_after_effect: AtomicU64,
    hung: AtomicU64,
    killed_calls: AtomicU64,
}

/// Plays Lambda's timeout: armed with `n`, lets `n` more calls through and
/// holds every later one forever. Shared by every wrapper of one
/// [`FaultyStore`] family.
#[derive(Default)]
pub struct KillSwitch {
    /// Calls still allowed; `u64::MAX`: not armed.
    left: Mutex<Option<u64>>,
    fired: AtomicBool,
    notify: Notify,
}

impl KillSwitch {
    /// From now on, `calls` more calls answer; the next one and every later
    /// one never do.
    pub fn arm(&self, calls: u64) {
        *self.left.lock().unwrap_or_else(|e| e.into_inner()) = Some(calls);
        self.fired.store(false, Ordering::SeqCst);
    }

    /// Calls answer again (a new invocation).
    pub fn disarm(&self) {
        *self.left.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.fired.store(false, Ordering::SeqCst);
    }

    /// Whether a call has been held since the switch was armed.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Resolves once a call has been held: the moment the harness drops
    /// the invocation.
    pub async fn tripped(&self) {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.fired() {
                return;
            }
            notified.await;
        }
    }

    /// Whether this call may go through (and counts it against the switch).
    fn pass(&self) -> bool {
        let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        match left.as_mut() {
            None => true,
            Some(0) => {
                drop(left);
                self.fired.store(true, Ordering::SeqCst);
                self.notify.notify_waiters();
                false
            }
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }
}

struct State {
    faults: Faults,
    rng: Mutex<StdRng>,
    counters: Counters,
    kill: KillSwitch,
}

/// A [`Store`] that injects [`Faults`] into the calls made through it.
/// Clones share their state.
pub struct FaultyStore<S> {
    inner: S,
    state: Arc<State>,
}

impl<S: Clone> Clone for FaultyStore<S> {
    fn clone(&self) -> Self {
        FaultyStore {
            inner: self.inner.clone(),
            state: self.state.clone(),
        }
    }
}

/// What to do with one call.
enum Plan {
    Pass,
    Fail(FaultKind),
    Killed,
}

impl<S: Store> FaultyStore<S> {
    pub fn new(inner: S, faults: Faults) -> Self {
        let rng = Mutex::new(StdRng::seed_from_u64(faults.seed));
        FaultyStore {
            inner,
            state: Arc::new(State {
                faults,
                rng,
                counters: Counters::default(),
                kill: KillSwitch::default(),
            }),
        }
    }

    /// Another store wrapped with this one's state: the same random source,
    /// counters and kill switch (a resolver's table and journal stores).
    pub fn wrap<T: Store>(&self, inner: T) -> FaultyStore<T> {
        FaultyStore {
            inner,
            state: self.state.clone(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// What was injected so far (over every wrapper sharing this state).
    pub fn stats(&self) -> FaultStats {
        let c = &self.state.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultStats {
            calls: get(&c.calls),
            throttled: get(&c.throttled),
            server_errors: get(&c.server_errors),
            timed_out_after_effect: get(&c.timed_out_after_effect),
            hung: get(&c.hung),
            killed_calls: get(&c.killed_calls),
        }
    }

    /// The kill switch shared by every wrapper of this state.
    pub fn kill_switch(&self) -> &KillSwitch {
        &self.state.kill
    }

    fn plan(&self) -> Plan {
        let state = &self.state;
        state.counters.calls.fetch_add(1, Ordering::Relaxed);
        if !state.kill.pass() {
            state.counters.killed_calls.fetch_add(1, Ordering::Relaxed);
            return Plan::Killed;
        }
        let faults = &state.faults;
        if faults.rate <= 0.0 || faults.kinds.is_empty() {
            return Plan::Pass;
        }
        let mut rng = state.rng.lock().unwrap_or_else(|e| e.into_inner());
        if !rng.random_bool(faults.rate.min(1.0)) {
            return Plan::Pass;
        }
        let kind = faults.kinds[rng.random_range(0..faults.kinds.len())];
        let counter = match kind {
            FaultKind::Throttling => &state.counters.throttled,
            FaultKind::ServerError => &state.counters.server_errors,
            FaultKind::TimeoutAfterEffect => &state.counters.timed_out_after_effect,
            FaultKind::Hang => &state.counters.hung,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Plan::Fail(kind)
    }

    /// Runs one call under the plan drawn for it.
    async fn call<T, F>(&self, region: &Region, call: F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>>,
    {
        if self.state.faults.interleave {
            tokio::task::yield_now().await;
        }
        let timed_out = || StoreError::TimedOut {
            region: region.to_string(),
        };
        let service = |message: &str| StoreError::Service {
            region: region.to_string(),
            retryable: true,
            message: message.to_owned(),
            source: None,
        };
        match self.plan() {
            Plan::Pass => call.await,
            Plan::Killed => std::future::pending().await,
            Plan::Fail(FaultKind::Throttling) => Err(service(
                "ThrottlingException (injected): rate of requests exceeds the allowed throughput",
            )),
            Plan::Fail(FaultKind::ServerError) => Err(service(
                "InternalServerError (injected): status 500, internal server error",
            )),
            Plan::Fail(FaultKind::TimeoutAfterEffect) => {
                // Made, answered, and the answer lost.
                let _ = call.await;
                Err(timed_out())
            }
            Plan::Fail(FaultKind::Hang) => {
                tokio::time::sleep(self.state.faults.hang).await;
                Err(timed_out())
            }
        }
    }
}

impl<S: Store> Store for FaultyStore<S> {
    async fn get(&self, region: &Region, key: &Item) -> Result<Option<Item>, StoreError> {
        self.call(region, self.inner.get(region, key)).await
    }

    async fn put(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> Result<(), StoreError> {
        self.call(region, self.inner.put(region, item, condition))
            .await
    }

    async fn put_returning(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> Result<PutResult, StoreError> {
        self.call(region, self.inner.put_returning(region, item, condition))
            .await
    }

    async fn scan(
        &self,
        region: &Region,
        start: Option<&Item>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.call(region, self.inner.scan(region, start, limit))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::time::Instant;

    use serde_dynamo::AttributeValue;

    use super::*;

    /// A tiny table: items by (Region, `pk`).
    #[derive(Clone, Default)]
    struct Tiny(Arc<Mutex<BTreeMap<(String, String), Item>>>);

    fn pk(item: &Item) -> String {
        match item.get("pk") {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => String::new(),
        }
    }

    impl Store for Tiny {
        async fn get(&self, region: &Region, key: &Item) -> Result<Option<Item>, StoreError> {
            let items = self.0.lock().unwrap();
            Ok(items.get(&(region.to_string(), pk(key))).cloned())
        }

        async fn put(
            &self,
            region: &Region,
            item: &Item,
            condition: &PutCondition,
        ) -> Result<(), StoreError> {
            let mut items = self.0.lock().unwrap();
            let at = (region.to_string(), pk(item));
            if !condition.holds(items.get(&at), "_hw") {
                return Err(StoreError::ConditionFailed);
            }
            items.insert(at, item.clone());
            Ok(())
        }

        async fn scan(
            &self,
            region: &Region,
            _start: Option<&Item>,
            _limit: usize,
        ) -> Result<Page, StoreError> {
            let items = self.0.lock().unwrap();
            Ok(Page {
                items: items
                    .iter()
                    .filter(|((r, _), _)| r == region.as_str())
                    .map(|(_, i)| i.clone())
                    .collect(),
                next: None,
            })
        }
    }

    fn item(key: &str) -> Item {
        Item::from(HashMap::from([(
            "pk".to_string(),
            AttributeValue::S(key.into()),
        )]))
    }

    fn region() -> Region {
        Region::parse("us-east-1").unwrap()
    }

    fn only(kind: FaultKind) -> Faults {
        Faults::new(1.0, 1)
            .kinds(&[kind])
            .hang(Duration::from_millis(5))
    }

    #[tokio::test]
    async fn without_faults_every_call_goes_through_and_is_counted() {
        let store = FaultyStore::new(Tiny::default(), Faults::none());
        let r = region();
        store
            .put(&r, &item("a"), &PutCondition::NotExists)
            .await
            .unwrap();
        assert_eq!(store.get(&r, &item("a")).await.unwrap(), Some(item("a")));
        assert_eq!(store.scan(&r, None, 10).await.unwrap().items.len(), 1);
        assert!(matches!(
            store.put(&r, &item("a"), &PutCondition::NotExists).await,
            Err(StoreError::ConditionFailed)
        ));
        let stats = store.stats();
        assert_eq!(stats.calls, 4);
        assert_eq!(stats.faulted(), 0);
    }

    #[tokio::test]
    async fn throttling_and_5xx_are_retryable_and_do_nothing() {
        let r = region();
        for (kind, text) in [
            (FaultKind::Throttling, "ThrottlingException"),
            (FaultKind::ServerError, "InternalServerError"),
        ] {
            let tiny = Tiny::default();
            let store = FaultyStore::new(tiny.clone(), only(kind));
            for call in 0..3 {
                let err = match call {
                    0 => store
                        .put(&r, &item("a"), &PutCondition::Always)
                        .await
                        .unwrap_err(),
                    1 => store.get(&r, &item("a")).await.unwrap_err(),
                    _ => store.scan(&r, None, 10).await.unwrap_err(),
                };
                assert!(err.is_retryable(), "{err}");
                assert!(err.to_string().contains(text), "{err}");
                assert!(err.to_string().contains("(injected)"), "{err}");
            }
            assert!(tiny.get(&r, &item("a")).await.unwrap().is_none());
            let stats = store.stats();
            assert_eq!(stats.faulted(), 3);
            assert_eq!(stats.throttled + stats.server_errors, 3);
        }
    }

    #[tokio::test]
    async fn a_timeout_after_effect_wrote_the_item() {
        let tiny = Tiny::default();
        let store = FaultyStore::new(tiny.clone(), only(FaultKind::TimeoutAfterEffect));
        let r = region();
        let err = store
            .put(&r, &item("a"), &PutCondition::NotExists)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::TimedOut { .. }) && err.is_retryable());
        // The caller cannot tell, but the write happened.
        assert_eq!(tiny.get(&r, &item("a")).await.unwrap(), Some(item("a")));
        assert_eq!(store.stats().timed_out_after_effect, 1);
        assert_eq!(store.stats().timeouts(), 1);
    }

    #[tokio::test]
    async fn a_hung_call_waits_for_the_client_timeout_and_does_nothing() {
        let tiny = Tiny::default();
        let store = FaultyStore::new(tiny.clone(), only(FaultKind::Hang));
        let r = region();
        let started = Instant::now();
        let err = store
            .put(&r, &item("a"), &PutCondition::NotExists)
            .await
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(5));
        assert!(matches!(err, StoreError::TimedOut { .. }));
        assert!(tiny.get(&r, &item("a")).await.unwrap().is_none());
        assert_eq!(store.stats().hung, 1);
    }

    /// Which calls fail, and how, as one string.
    async fn pattern(seed: u64) -> (String, FaultStats) {
        let faults = Faults::new(0.2, seed).hang(Duration::ZERO);
        let store = FaultyStore::new(Tiny::default(), faults);
        let r = region();
        let mut out = String::new();
        for i in 0..1_000 {
            let result = store
                .put(&r, &item(&format!("k{i}")), &PutCondition::Always)
                .await;
            out.push(match result {
                Ok(()) => '.',
                Err(StoreError::TimedOut { .. }) => 't',
                Err(_) => 'x',
            });
        }
        (out, store.stats())
    }

    #[tokio::test]
    async fn a_seed_repeats_its_faults_and_the_rate_holds() {
        let (a, stats) = pattern(42).await;
        assert_eq!(a, pattern(42).await.0);
        assert_ne!(a, pattern(43).await.0);
        assert_eq!(stats.calls, 1_000);
        // 20% of 1,000 calls, give or take.
        assert!((150..=250).contains(&stats.faulted()), "{stats:?}");
        for n in [
            stats.throttled,
            stats.server_errors,
            stats.timed_out_after_effect,
            stats.hung,
        ] {
            assert!(n > 20, "every kind is drawn: {stats:?}");
        }
    }

    #[tokio::test]
    async fn wrapped_stores_share_counters_and_the_kill_switch() {
        let table = FaultyStore::new(Tiny::default(), Faults::none().interleave(true));
        let journal = table.wrap(Tiny::default());
        let r = region();
        table.kill_switch().arm(2);
        table
            .put(&r, &item("a"), &PutCondition::Always)
            .await
            .unwrap();
        journal
            .put(&r, &item("j"), &PutCondition::Always)
            .await
            .unwrap();
        assert!(!journal.kill_switch().fired());
        // The third call never answers: Lambda's timeout kills the
        // invocation there.
        let held = tokio::time::timeout(
            Duration::from_millis(20),
            table.put(&r, &item("b"), &PutCondition::Always),
        )
        .await;
        assert!(held.is_err(), "a call after the kill answered");
        assert!(journal.kill_switch().fired());
        journal.kill_switch().tripped().await;
        assert!(table.inner().get(&r, &item("b")).await.unwrap().is_none());
        let stats = journal.stats();
        assert_eq!((stats.calls, stats.killed_calls), (3, 1));
        // The next invocation.
        table.kill_switch().disarm();
        journal.get(&r, &item("j")).await.unwrap();
    }

    #[tokio::test]
    async fn the_harness_drops_an_invocation_when_the_switch_trips() {
        let table = FaultyStore::new(Tiny::default(), Faults::none().interleave(true));
        let r = region();
        table.kill_switch().arm(1);
        let invocation = async {
            table.put(&r, &item("home"), &PutCondition::Always).await?;
            table.put(&r, &item("journal"), &PutCondition::Always).await
        };
        let killed = tokio::select! {
            _ = invocation => false,
            () = table.kill_switch().tripped() => true,
        };
        assert!(killed);
        // The home put took effect, the journal put did not.
        let inner = table.inner();
        assert!(inner.get(&r, &item("home")).await.unwrap().is_some());
        assert!(inner.get(&r, &item("journal")).await.unwrap().is_none());
    }
}
