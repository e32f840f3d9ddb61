//! A small in-memory multi-Region store (no replication), with Regions
//! that do not answer: what the generator runs the real writer and router on.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use homeward::control::key_text;
use homeward::{PutCondition, Region, Schema, Store, StoreError};
use serde_dynamo::Item;

#[derive(Clone)]
pub struct MemStore {
    schema: Schema,
    items: Arc<Mutex<HashMap<(Region, String), Item>>>,
    pub unreachable: BTreeSet<Region>,
}

impl MemStore {
    pub fn new(schema: Schema) -> Self {
        MemStore {
            schema,
            items: Arc::default(),
            unreachable: BTreeSet::new(),
        }
    }

    fn key_of(&self, item: &Item) -> String {
        let key = self.schema.key_of(item).expect("items carry their key");
        key_text(&Item::from(key.into_iter().collect::<HashMap<_, _>>()))
    }

    /// Stores `item` in `region` as it is.
    pub fn seed(&self, region: &Region, item: Item) {
        let key = self.key_of(&item);
        self.items
            .lock()
            .unwrap()
            .insert((region.clone(), key), item);
    }

    /// Every (Region, item) written, in Region order.
    pub fn items_in(&self, region: &Region) -> Vec<Item> {
        self.items
            .lock()
            .unwrap()
            .iter()
            .filter(|((r, _), _)| r == region)
            .map(|(_, item)| item.clone())
            .collect()
    }

    fn down(&self, region: &Region) -> Result<(), StoreError> {
        if self.unreachable.contains(region) {
            Err(StoreError::Service {
                region: region.to_string(),
                retryable: true,
                message: "the Region does not answer".into(),
                source: None,
            })
        } else {
            Ok(())
        }
    }
}

impl Store for MemStore {
    async fn get(&self, region: &Region, key: &Item) -> Result<Option<Item>, StoreError> {
        self.down(region)?;
        let key = key_text(key);
        Ok(self
            .items
            .lock()
            .unwrap()
            .get(&(region.clone(), key))
            .cloned())
    }

    async fn put(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> Result<(), StoreError> {
        self.down(region)?;
        let key = self.key_of(item);
        let mut items = self.items.lock().unwrap();
        let slot = (region.clone(), key);
        if !condition.holds(items.get(&slot), &self.schema.stamp_attribute) {
            return Err(StoreError::ConditionFailed);
        }
        items.insert(slot, item.clone());
        Ok(())
    }
}
