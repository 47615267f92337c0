//! A map capped by entry count that forgets its least recently used entry: the guard's
//! bans, rate buckets, failure windows and nonce counts stay bounded whatever the number of
//! sources, and no operation ever scans the map (O(log n) per touch).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// A least-recently-used map holding at most `cap` entries.
#[derive(Debug)]
pub struct Lru<K, V> {
    map: HashMap<K, (V, u64)>,
    /// Use stamp → key, oldest first.
    order: BTreeMap<u64, K>,
    tick: u64,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// An empty map keeping at most `cap` (at least one) entries.
    pub fn new(cap: usize) -> Self {
        Lru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            cap: cap.max(1),
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The value of `k`, marked as just used.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let tick = self.next_tick();
        let (_, stamp) = self.map.get_mut(k)?;
        let old = std::mem::replace(stamp, tick);
        if let Some(key) = self.order.remove(&old) {
            self.order.insert(tick, key);
        }
        self.map.get_mut(k).map(|(v, _)| v)
    }

    /// The value of `k`, without marking it used.
    pub fn peek(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|(v, _)| v)
    }

    /// Inserts or replaces `k` as the most recently used entry. Returns the entry forgotten
    /// to make room, if any.
    pub fn insert(&mut self, k: K, v: V) -> Option<(K, V)> {
        let tick = self.next_tick();
        if let Some((_, old)) = self.map.insert(k.clone(), (v, tick)) {
            self.order.remove(&old);
            self.order.insert(tick, k);
            return None;
        }
        self.order.insert(tick, k);
        if self.map.len() <= self.cap {
            return None;
        }
        let (_, oldest) = self.order.pop_first()?;
        self.map.remove(&oldest).map(|(v, _)| (oldest, v))
    }

    /// Removes `k`.
    pub fn remove(&mut self, k: &K) -> Option<V> {
        let (v, stamp) = self.map.remove(k)?;
        self.order.remove(&stamp);
        Some(v)
    }

    /// Every entry, in no particular order (for the admin API, never per packet).
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, (v, _))| (k, v))
    }

    /// Keeps only the entries `f` accepts (for the admin API, never per packet).
    pub fn retain(&mut self, mut f: impl FnMut(&K, &V) -> bool) {
        let order = &mut self.order;
        self.map.retain(|k, (v, stamp)| {
            let keep = f(k, v);
            if !keep {
                order.remove(stamp);
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    #[test]
    fn forgets_the_least_recently_used_and_stays_capped() {
        let mut l = Lru::new(3);
        assert!(l.insert(1, "a").is_none());
        assert!(l.insert(2, "b").is_none());
        assert!(l.insert(3, "c").is_none());
        // Touch 1: now 2 is the oldest.
        assert_eq!(l.get_mut(&1).copied(), Some("a"));
        assert_eq!(l.insert(4, "d"), Some((2, "b")));
        assert_eq!(l.len(), 3);
        assert!(l.peek(&2).is_none());
        // Replacing an entry never evicts and refreshes it.
        assert!(l.insert(3, "c2").is_none());
        assert_eq!(l.insert(5, "e"), Some((1, "a")));
        assert_eq!(l.remove(&4), Some("d"));
        assert_eq!(l.len(), 2);
        l.retain(|k, _| *k == 5);
        assert_eq!(l.iter().count(), 1);
        assert_eq!(l.insert(6, "f"), None);
        assert_eq!(l.insert(7, "g"), None);
        assert_eq!(l.insert(8, "h"), Some((5, "e")));
        for i in 0..10_000 {
            l.insert(100 + i, "x");
            assert!(l.len() <= 3);
        }
        assert_eq!(l.order.len(), l.map.len());
    }
}
