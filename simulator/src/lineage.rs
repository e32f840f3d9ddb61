//! Which plain writes an item image includes: the checker's ground truth
//! for "a later write whose base state included the plain write" (plain
//! writes carry no dot, so their causality is tracked beside the data).
//!
//! Each plain write has an id. The lineage of an image is the set of plain
//! writes it derives from:
//!
//! - a plain write's image: its base image's lineage plus its own id;
//! - a stamped app write's image: its base image's lineage (the writer read
//!   that base, strongly consistent, in the Region it wrote);
//! - a replicated copy: the same image, the same lineage;
//! - a resolver's write: the lineage of the item it replaced plus the
//!   lineage of everything that Region's resolver has read of that item so
//!   far (its stream records' images, its gets, the items a failed
//!   conditional put handed back). An over-approximation: a resolver that
//!   read a plain write and dropped it is taken to have included it, so a
//!   later write over that resolver's version counts as superseding the
//!   plain write. (The hole is narrow: the plain write's own record was
//!   read by that resolver, which the current core journals.)
//!
//! Images are told apart by content (a canonical fingerprint): two images
//! with equal content share the union of their lineages.
//!
//! [`Traced`] is the store wrapper each Region's resolver gets when lineage
//! is on ([`crate::cluster::Spec::lineage`]); the checker registers the
//! images of its own writes.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use homeward::store::Page;
use homeward::{PutCondition, PutResult, Region, Schema, Store, StoreError};
use serde_dynamo::{AttributeValue, Item};

use crate::cluster::SimStore;
use crate::memory::MemStore;

/// Plain write ids.
pub type Ids = BTreeSet<usize>;

/// The lineage of every image seen; clones share it.
#[derive(Clone, Default)]
pub struct Lineage(Arc<Mutex<Inner>>);

#[derive(Default)]
struct Inner {
    images: HashMap<String, Ids>,
    /// (reader Region, key text): what that Region's resolver has read.
    read: HashMap<(Region, String), Ids>,
    /// (Region, key text): the lineage of the item's absence after a
    /// plain delete there.
    absent: HashMap<(Region, String), Ids>,
}

impl Lineage {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The plain writes `image` includes (none when unknown).
    pub fn of(&self, image: &Item) -> Ids {
        self.lock()
            .images
            .get(&fingerprint(image))
            .cloned()
            .unwrap_or_default()
    }

    /// The lineage of the state of `key` in `region`: `image`'s, or, when
    /// there is no item, that of the plain delete that removed it there.
    pub fn of_state(&self, region: &Region, key: &str, image: Option<&Item>) -> Ids {
        match image {
            Some(i) => self.of(i),
            None => self
                .lock()
                .absent
                .get(&(region.clone(), key.to_owned()))
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// Records that `image` includes `ids` (added to what it had).
    pub fn note(&self, image: &Item, ids: &Ids) {
        self.lock()
            .images
            .entry(fingerprint(image))
            .or_default()
            .extend(ids.iter().copied());
    }

    /// Records the lineage of `key`'s absence in `region`.
    pub fn note_absent(&self, region: &Region, key: &str, ids: &Ids) {
        self.lock()
            .absent
            .insert((region.clone(), key.to_owned()), ids.clone());
    }

    /// `reader`'s resolver read `image` of `key`.
    pub fn read_by(&self, reader: &Region, key: &str, image: &Item) {
        let ids = self.of(image);
        if ids.is_empty() {
            return;
        }
        self.lock()
            .read
            .entry((reader.clone(), key.to_owned()))
            .or_default()
            .extend(ids);
    }

    /// `reader`'s resolver wrote `new` over `old`.
    fn written_by(&self, reader: &Region, key: &str, old: Option<&Item>, new: &Item) {
        let mut ids = old.map(|o| self.of(o)).unwrap_or_default();
        if let Some(read) = self.lock().read.get(&(reader.clone(), key.to_owned())) {
            ids.extend(read.iter().copied());
        }
        if !ids.is_empty() {
            self.note(new, &ids);
        }
    }
}

/// Content, canonically: map keys and set elements sorted.
pub fn fingerprint(item: &Item) -> String {
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    let mut out = String::new();
    for n in names {
        out.push_str(n);
        out.push('=');
        canonical(&item[n.as_str()], &mut out);
        out.push(';');
    }
    out
}

fn canonical(v: &AttributeValue, out: &mut String) {
    match v {
        AttributeValue::M(m) => {
            let mut names: Vec<&String> = m.keys().collect();
            names.sort();
            out.push('{');
            for n in names {
                out.push_str(&format!("{n:?}:"));
                canonical(&m[n], out);
                out.push(',');
            }
            out.push('}');
        }
        AttributeValue::L(l) => {
            out.push('[');
            for e in l {
                canonical(e, out);
                out.push(',');
            }
            out.push(']');
        }
        AttributeValue::Ss(s) | AttributeValue::Ns(s) => {
            let mut s = s.clone();
            s.sort();
            out.push_str(&format!("<{}{s:?}>", matches!(v, AttributeValue::Ns(_))));
        }
        other => out.push_str(&format!("{other:?}")),
    }
}

/// A resolver's table store, recording what it reads and writes in the
/// lineage.
#[derive(Clone)]
pub struct Traced {
    pub(crate) inner: Base,
    pub(crate) reader: Region,
    pub(crate) lineage: Lineage,
    pub(crate) schema: Schema,
}

impl Traced {
    fn key_of(&self, item: &Item) -> Item {
        let mut key = item.clone();
        key.retain(|k, _| self.schema.key_attributes().any(|n| n == k));
        key
    }

    fn key_text(&self, item: &Item) -> String {
        resolver::journal::key_text(&self.key_of(item))
    }

    fn saw(&self, item: &Item) {
        self.lineage
            .read_by(&self.reader, &self.key_text(item), item);
    }
}

impl Store for Traced {
    async fn get(&self, region: &Region, key: &Item) -> Result<Option<Item>, StoreError> {
        let got = self.inner.get(region, key).await?;
        if let Some(item) = &got {
            self.saw(item);
        }
        Ok(got)
    }

    async fn put(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> Result<(), StoreError> {
        // Nothing runs between this read and the put but other resolvers,
        // whose puts change the dot the put is conditional on.
        let old = self.inner.get(region, &self.key_of(item)).await?;
        self.inner.put(region, item, condition).await?;
        let key = self.key_text(item);
        self.lineage
            .written_by(&self.reader, &key, old.as_ref(), item);
        Ok(())
    }

    async fn put_returning(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> Result<PutResult, StoreError> {
        let old = self.inner.get(region, &self.key_of(item)).await?;
        let result = self.inner.put_returning(region, item, condition).await?;
        match &result {
            PutResult::Written => {
                let key = self.key_text(item);
                self.lineage
                    .written_by(&self.reader, &key, old.as_ref(), item);
            }
            PutResult::Conflict(Some(current)) => self.saw(current),
            PutResult::Conflict(None) => {}
        }
        Ok(result)
    }

    async fn scan(
        &self,
        region: &Region,
        start: Option<&Item>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let page = self.inner.scan(region, start, limit).await?;
        for item in &page.items {
            self.saw(item);
        }
        Ok(page)
    }
}

/// The store under a [`Traced`] one: the cluster's own (never traced).
#[derive(Clone)]
pub(crate) enum Base {
    Moto(Box<homeward::dynamo::DynamoStore>),
    Memory(MemStore),
}

impl Base {
    /// # Panics
    /// On a traced store: tracing is one layer.
    pub(crate) fn of(store: SimStore) -> Self {
        match store {
            SimStore::Moto(s) => Base::Moto(s),
            SimStore::Memory(s) => Base::Memory(s),
            SimStore::Traced(_) => unreachable!("a traced store is not traced again"),
        }
    }
}

impl Store for Base {
    async fn get(&self, region: &Region, key: &Item) -> Result<Option<Item>, StoreError> {
        match self {
            Base::Moto(s) => s.get(region, key).await,
            Base::Memory(s) => s.get(region, key).await,
        }
    }

    async fn put(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> Result<(), StoreError> {
        match self {
            Base::Moto(s) => s.put(region, item, condition).await,
            Base::Memory(s) => s.put(region, item, condition).await,
        }
    }

    async fn put_returning(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> Result<PutResult, StoreError> {
        match self {
            Base::Moto(s) => s.put_returning(region, item, condition).await,
            Base::Memory(s) => s.put_returning(region, item, condition).await,
        }
    }

    async fn scan(
        &self,
        region: &Region,
        start: Option<&Item>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        match self {
            Base::Moto(s) => s.scan(region, start, limit).await,
            Base::Memory(s) => s.scan(region, start, limit).await,
        }
    }
}
