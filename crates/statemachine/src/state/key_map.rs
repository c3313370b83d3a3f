//! The live idempotency entries, ordered by a hash of the key first and the key second.
//!
//! Why not by the key alone: clients' keys share long prefixes (`ci-1234-build-…`), and a
//! B-tree search over a million of them compared two heap strings at every step, a cache miss
//! each. That search was the largest cost of applying a keyed submit (ADR 0017). Comparing an
//! inline 64-bit hash first settles almost every step without leaving the node. The order is
//! still a pure function of the keys, so snapshots, the sled view and the state hash stay
//! deterministic; it is only not alphabetical.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::btree_map::{self, BTreeMap};
use std::sync::Arc;

use crate::codec::fnv_of;
use crate::{IdempotencyEntry, IdempotencyKey};

/// A key with its hash, in map order (hash, then key). The key is shared so that cloning the
/// map (a snapshot's freeze, ADR 0020) copies no string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Slot {
    hash: u64,
    key: Arc<IdempotencyKey>,
}

impl Slot {
    pub fn new(key: Arc<IdempotencyKey>) -> Slot {
        Slot {
            hash: fnv_of(&*key),
            key,
        }
    }

    /// The key, to share with the entry and the job rather than copy its strings.
    pub fn shared_key(&self) -> &Arc<IdempotencyKey> {
        &self.key
    }
}

/// What a search compares: implemented by the stored [`Slot`] and by a borrowed [`Probe`], so
/// that a lookup neither clones the key nor allocates.
trait Ranked {
    fn rank(&self) -> (u64, &IdempotencyKey);
}

impl Ranked for Slot {
    fn rank(&self) -> (u64, &IdempotencyKey) {
        (self.hash, &*self.key)
    }
}

/// A borrowed key and its hash, for lookups.
struct Probe<'a> {
    hash: u64,
    key: &'a IdempotencyKey,
}

impl<'a> Probe<'a> {
    fn new(key: &'a IdempotencyKey) -> Probe<'a> {
        Probe {
            hash: fnv_of(key),
            key,
        }
    }
}

impl Ranked for Probe<'_> {
    fn rank(&self) -> (u64, &IdempotencyKey) {
        (self.hash, self.key)
    }
}

impl<'a> Borrow<dyn Ranked + 'a> for Slot {
    fn borrow(&self) -> &(dyn Ranked + 'a) {
        self
    }
}

impl PartialEq for dyn Ranked + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}

impl Eq for dyn Ranked + '_ {}

impl PartialOrd for dyn Ranked + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn Ranked + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

/// The map itself; see the module docs for its order. Entries are shared like the jobs of the
/// state: a clone shares them, and `get_mut` copies an entry on its first change after one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyMap(BTreeMap<Slot, Arc<IdempotencyEntry>>);

impl KeyMap {
    /// Builds the map from entries in any order; on a duplicate key, returns that key.
    pub fn from_entries(entries: Vec<IdempotencyEntry>) -> Result<KeyMap, IdempotencyKey> {
        let mut slots: Vec<(Slot, Arc<IdempotencyEntry>)> = entries
            .into_iter()
            .map(|entry| (Slot::new(Arc::clone(&entry.key)), Arc::new(entry)))
            .collect();
        // Snapshots list entries in map order already; checking costs less than sorting.
        if !slots.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            slots.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            if let Some(pair) = slots.windows(2).find(|pair| pair[0].0 == pair[1].0) {
                return Err(IdempotencyKey::clone(&pair[0].0.key));
            }
        }
        Ok(KeyMap(slots.into_iter().collect()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn get(&self, key: &IdempotencyKey) -> Option<&IdempotencyEntry> {
        self.0
            .get(&Probe::new(key) as &dyn Ranked)
            .map(|entry| &**entry)
    }

    pub fn get_mut(&mut self, key: &IdempotencyKey) -> Option<&mut IdempotencyEntry> {
        self.0
            .get_mut(&Probe::new(key) as &dyn Ranked)
            .map(Arc::make_mut)
    }

    pub fn remove(&mut self, key: &IdempotencyKey) -> Option<IdempotencyEntry> {
        self.0
            .remove(&Probe::new(key) as &dyn Ranked)
            .map(Arc::unwrap_or_clone)
    }

    /// One search for a lookup-or-insert (the key is cloned once, for the slot; a new entry
    /// shares that copy through [`Slot::shared_key`]).
    pub fn entry(
        &mut self,
        key: &IdempotencyKey,
    ) -> btree_map::Entry<'_, Slot, Arc<IdempotencyEntry>> {
        self.0.entry(Slot::new(Arc::new(key.clone())))
    }

    /// Every entry, in map order.
    pub fn values(
        &self,
    ) -> impl DoubleEndedIterator<Item = &IdempotencyEntry> + ExactSizeIterator + Clone {
        self.0.values().map(|entry| &**entry)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::BodyHash;

    fn entry(key: &IdempotencyKey) -> IdempotencyEntry {
        IdempotencyEntry {
            key: Arc::new(key.clone()),
            body_hash: BodyHash(0),
            job: None,
            reserved_at_ms: 0,
            committed_at_ms: None,
            expires_at_ms: u64::MAX,
        }
    }

    fn key() -> impl Strategy<Value = IdempotencyKey> {
        ("[ab]{0,2}", "ci-run-[0-9]{1,3}").prop_map(|(ns, k)| IdempotencyKey::new(ns, k))
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(IdempotencyKey),
        Remove(IdempotencyKey),
    }

    proptest! {
        /// Against a map ordered by key: the same lookups, the same set of entries, and a
        /// rebuild from the entries in any order gives the same map.
        #[test]
        fn behaves_like_an_ordered_map(
            ops in proptest::collection::vec(
                prop_oneof![key().prop_map(Op::Insert), key().prop_map(Op::Remove)],
                0..200,
            ),
            probes in proptest::collection::vec(key(), 0..20),
        ) {
            let mut map = KeyMap::default();
            let mut model: BTreeMap<IdempotencyKey, IdempotencyEntry> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(key) => {
                        if let btree_map::Entry::Vacant(slot) = map.entry(&key) {
                            slot.insert(Arc::new(entry(&key)));
                        }
                        model.entry(key.clone()).or_insert_with(|| entry(&key));
                    }
                    Op::Remove(key) => {
                        prop_assert_eq!(map.remove(&key), model.remove(&key));
                    }
                }
            }
            prop_assert_eq!(map.len(), model.len());
            for key in probes.iter().chain(model.keys()) {
                prop_assert_eq!(map.get(key), model.get(key));
            }
            let mut listed: Vec<IdempotencyEntry> = map.values().cloned().collect();
            listed.reverse();
            let rebuilt = KeyMap::from_entries(listed.clone());
            prop_assert_eq!(rebuilt.as_ref(), Ok(&map));
            listed.sort_by(|a, b| a.key.cmp(&b.key));
            prop_assert_eq!(listed, model.values().cloned().collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_duplicate_is_named() {
        let key = IdempotencyKey::new("ns", "k");
        let other = IdempotencyKey::new("ns", "other");
        let result = KeyMap::from_entries(vec![entry(&key), entry(&other), entry(&key)]);
        assert_eq!(result, Err(key));
    }
}
