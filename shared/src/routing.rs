//! The writer's routing (seed 000's Region pinning, done so that no write
//! is lost when the pin does not hold): which Region each write goes to.
//!
//! - `route`: each write goes to the item's home Region (a cross-Region
//!   call), so the owner reads its own writes strongly consistent there.
//! - `local`: each write goes to the caller's Region; the resolvers
//!   reconcile (or re-home) it.
//!
//! Both honour evacuated Regions: a write for an item homed in one is made
//! here and moves the item's home here, one epoch on (this Region adopts
//! the item's write duties).

use std::sync::Arc;
use std::time::Duration;

use serde_dynamo::{AttributeValue, Item};

use crate::control::{AssignError, Assignments, Evacuations};
use crate::dot::Region;
use crate::edit::Draft;
use crate::home::{HomeSource, HomeStrategy};
use crate::store::Store;
use crate::version::{Home, Version};
use crate::writer::{now_ms, WriteError, Writer};

/// Where writes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Route,
    Local,
}

impl Mode {
    /// Parses `route` or `local`.
    ///
    /// # Errors
    /// A message naming the accepted values.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "route" => Ok(Mode::Route),
            "local" => Ok(Mode::Local),
            other => Err(format!("`{other}` is not one of route, local")),
        }
    }
}

/// A write and the Region it was made in.
#[derive(Debug, Clone)]
pub struct Routed {
    pub region: Region,
    pub version: Version,
    /// Whether the write moved the item's home (failover or an explicit move).
    pub moved: bool,
}

/// The stamped writer of one Region, with a routing mode.
pub struct Router<S, C> {
    pub writer: Writer<S>,
    pub local: Region,
    pub mode: Mode,
    homes: HomeStrategy,
    control: Arc<C>,
    evacuations: Evacuations,
    assignments: Option<Assignments<Arc<C>>>,
}

impl<S: Store, C: Store> Router<S, C> {
    /// `control` is the journal table, which holds the evacuated Regions
    /// (read in `local`, re-read at most every `refresh`).
    pub fn new(
        mut writer: Writer<S>,
        local: Region,
        mode: Mode,
        homes: HomeStrategy,
        control: C,
        evacuations: Evacuations,
    ) -> Self {
        writer.home_attribute = homes.mirror().map(str::to_owned);
        Router {
            writer,
            local,
            mode,
            homes,
            control: Arc::new(control),
            evacuations,
            assignments: None,
        }
    }

    /// Negotiated homes: the assignments live in `store`, their own global
    /// table, read and written in this Region's replica (reachable whenever
    /// this Region is up), looked up through a cache trusted for `cache`.
    pub fn with_assignments(mut self, store: C, table: &str, cache: Duration) -> Self {
        let replica = self.local.clone();
        self.assignments = Some(Assignments::new(Arc::new(store), replica, table, cache));
        self
    }

    /// How long a claimed or renewed lease lasts (an hour unless set).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        if let Some(a) = &mut self.assignments {
            a.lease = lease;
        }
        self
    }

    pub fn homes(&self) -> &HomeStrategy {
        &self.homes
    }

    pub fn assignments(&self) -> Option<&Assignments<Arc<C>>> {
        self.assignments.as_ref()
    }

    /// The item's home as this Region sees it: the assignment (negotiated),
    /// or the local copy (eventually consistent; a stale view is fenced by
    /// the epoch the write carries).
    ///
    /// # Errors
    /// A store failure or an unreadable home.
    pub async fn home_of(&self, key: &Item) -> Result<Option<Home>, WriteError> {
        if let Some(assignments) = &self.assignments {
            return self.negotiated_home(assignments, key).await;
        }
        if let HomeSource::Table { region, .. } = &self.homes.source {
            return Ok(Some(Home::new(region.clone(), 0)));
        }
        match self.writer.store().get(&self.local, key).await? {
            None => Ok(None),
            Some(item) => self.homes.home_of(&item).map_err(WriteError::Home),
        }
    }

    /// Negotiated: the assignment, with its lease kept alive by writing. The
    /// holder renews its lease once half of it has run; a lease that ran
    /// out is claimed again: by its holder (same epoch, if nobody took it
    /// meanwhile) or by this Region (one epoch on: the home follows the
    /// writers). A holder that stopped writing, or went dark, is taken over
    /// once its lease ends.
    async fn negotiated_home(
        &self,
        assignments: &Assignments<Arc<C>>,
        key: &Item,
    ) -> Result<Option<Home>, WriteError> {
        let now = now_ms();
        let Some(a) = assignments.lookup(key).await.map_err(assign_error)? else {
            return Ok(None);
        };
        let half = assignments.lease.as_millis() as u64 / 2;
        let ours = a.home.region == self.local;
        let due = a.lease_until_ms <= now || (ours && a.lease_until_ms < now + half);
        if !due {
            return Ok(Some(a.home));
        }
        let held = assignments
            .claim(key, &self.local, now)
            .await
            .map_err(assign_error)?;
        if held.home != a.home {
            tracing::info!(from = %a.home.region, to = %held.home.region, epoch = held.home.epoch, "lease ran out: the assignment moved");
        }
        Ok(Some(held.home))
    }

    /// Creates an item. Its home comes from the item (intrinsic), the
    /// assignment (negotiated: claimed for this Region when there is none),
    /// or is this Region (`stamp`).
    ///
    /// # Errors
    /// As [`Writer::insert`].
    pub async fn insert(&self, mut item: Item) -> Result<Routed, WriteError> {
        let key = Item::from(
            self.writer
                .schema()
                .key_of(&item)
                .map_err(|e| WriteError::BadKey(e.to_string()))?
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        );
        let mut home = match (&self.assignments, &self.homes.source) {
            (Some(assignments), _) => Some(
                assignments
                    .claim(&key, &self.local, now_ms())
                    .await
                    .map_err(assign_error)?
                    .home,
            ),
            (None, HomeSource::Stamp) => Some(Home::new(self.local.clone(), 0)),
            _ => None,
        };
        let named = match &home {
            Some(h) => Some(h.region.clone()),
            None => self
                .homes
                .home_of(&item)
                .map_err(WriteError::Home)?
                .map(|h| h.region),
        };
        let evacuated = self.evacuations.current(&*self.control, &self.local).await;
        let mut moved = false;
        if let Some(gone) = named.as_ref().filter(|r| evacuated.contains(*r)) {
            if self.homes.can_rehome() && gone != &self.local && self.assignments.is_none() {
                // Born during an evacuation: homed here from the start.
                home = Some(Home::new(self.local.clone(), 1));
                if let Some(name) = self.homes.mirror() {
                    item.insert(name.into(), AttributeValue::S(self.local.to_string()));
                }
                moved = true;
            }
        }
        let region = match &home {
            Some(h) if moved => h.region.clone(),
            _ => self.target(named.as_ref()).await,
        };
        let version = self.writer.insert_homed(&region, item, home).await?;
        Ok(Routed {
            region,
            version,
            moved,
        })
    }

    /// Read-modify-write of an existing item, in the Region the mode picks.
    /// An item homed in an evacuated Region is written here and re-homed
    /// here.
    ///
    /// # Errors
    /// As [`Writer::update`].
    pub async fn update<F>(&self, key: &Item, mut change: F) -> Result<Routed, WriteError>
    where
        F: FnMut(&mut Draft),
    {
        let home = self.home_of(key).await?;
        let evacuated = self.evacuations.current(&*self.control, &self.local).await;
        if let Some(h) = home.as_ref().filter(|h| evacuated.contains(&h.region)) {
            if self.homes.can_rehome() && h.region != self.local {
                tracing::info!(home = %h.region, to = %self.local, "home evacuated: this Region adopts the item");
                return self.move_home_from(key, h, &self.local, change).await;
            }
        }
        let region = self.target(home.as_ref().map(|h| &h.region)).await;
        let written = self
            .update_in(&region, key, home.clone(), &mut change)
            .await;
        let (region, version) = match written {
            // The home Region does not answer (after the SDK's retries):
            // write here; the resolvers reconcile it when the home is back.
            Err(WriteError::Store(e)) if e.is_retryable() && region != self.local => {
                tracing::warn!(home = %region, error = %e, "home Region unreachable; writing in this Region");
                let local = self.local.clone();
                let version = self.update_in(&local, key, home, &mut change).await?;
                (local, version)
            }
            other => (region, other?),
        };
        Ok(Routed {
            region,
            version,
            moved: false,
        })
    }

    async fn update_in<F>(
        &self,
        region: &Region,
        key: &Item,
        home: Option<Home>,
        change: F,
    ) -> Result<Version, WriteError>
    where
        F: FnMut(&mut Draft),
    {
        match (&self.assignments, home) {
            // Negotiated: stamp the assignment the write was routed by.
            (Some(_), Some(h)) => self.writer.update_homed(region, key, h, change).await,
            _ => self.writer.update(region, key, change).await,
        }
    }

    /// Moves the item's home to `to`: written at the current home (or at
    /// `to` when the home is evacuated), one epoch on, the home attribute
    /// (if any) set to match.
    ///
    /// # Errors
    /// [`WriteError::BadKey`] when the strategy's homes cannot move; as
    /// [`Writer::update`] otherwise.
    pub async fn move_home(&self, key: &Item, to: &Region) -> Result<Routed, WriteError> {
        let home = self
            .home_of(key)
            .await?
            .unwrap_or_else(|| Home::new(self.local.clone(), 0));
        self.move_item(key, &home, to).await
    }

    /// [`Self::move_home`] for an item whose home is known to be `from`.
    /// Idempotent: nothing is written when the copy the move would be
    /// written to already shows the item homed in `to`.
    ///
    /// # Errors
    /// As [`Self::move_home`].
    pub async fn move_item(
        &self,
        key: &Item,
        from: &Home,
        to: &Region,
    ) -> Result<Routed, WriteError> {
        let evacuated = self.evacuations.current(&*self.control, &self.local).await;
        let at = if evacuated.contains(&from.region) {
            to
        } else {
            &from.region
        };
        if let Some(current) = self.writer.get(at, key).await? {
            let home = self
                .homes
                .home_of_version(&current)
                .map_err(WriteError::Home)?;
            if home.is_some_and(|h| &h.region == to) {
                return Ok(Routed {
                    region: at.clone(),
                    version: current,
                    moved: false,
                });
            }
        }
        self.move_home_from(key, from, to, |_| {}).await
    }

    async fn move_home_from<F>(
        &self,
        key: &Item,
        from: &Home,
        to: &Region,
        mut change: F,
    ) -> Result<Routed, WriteError>
    where
        F: FnMut(&mut Draft),
    {
        if let Some(reason) = self.homes.fixed_reason() {
            return Err(WriteError::Home(reason.into()));
        }
        let evacuated = self.evacuations.current(&*self.control, &self.local).await;
        let at = if evacuated.contains(&from.region) {
            to.clone()
        } else {
            from.region.clone()
        };
        let mut next = from
            .moved_to(to.clone())
            .map_err(|e| WriteError::Home(e.to_string()))?;
        if let Some(assignments) = &self.assignments {
            next = assignments
                .move_to(key, to, from.epoch, now_ms())
                .await
                .map_err(assign_error)?
                .home;
        }
        let mirror = self.homes.mirror().map(str::to_owned);
        let version = self
            .writer
            .update_homed(&at, key, next, |d| {
                change(d);
                if let Some(name) = &mirror {
                    d.set(name, AttributeValue::S(to.to_string()));
                }
            })
            .await?;
        Ok(Routed {
            region: at,
            version,
            moved: true,
        })
    }

    /// The Region a write for an item homed in `home` goes to.
    async fn target(&self, home: Option<&Region>) -> Region {
        match (self.mode, home) {
            (Mode::Route, Some(home)) => {
                let evacuated = self.evacuations.current(&*self.control, &self.local).await;
                if evacuated.contains(home) {
                    self.local.clone()
                } else {
                    home.clone()
                }
            }
            _ => self.local.clone(),
        }
    }
}

fn assign_error(e: AssignError) -> WriteError {
    match e {
        AssignError::Store(s) => WriteError::Store(s),
        other => WriteError::Home(format!("assignment: {other}")),
    }
}
