//! Retained messages (MQTT 3.1.1, OASIS §3.3.1.3): the last message published
//! with RETAIN=1 on each topic, kept in a trie by topic level so a new
//! subscription (wildcards included) finds its matches without scanning the
//! whole store. A zero-byte retained payload deletes the topic's message. The
//! store is capped by count, by bytes (topic + payload) in total and by bytes
//! per owner (the client that published it); it lives in memory only.

use std::collections::HashMap;

use bytes::Bytes;
use rumqttc::mqttbytes::QoS;

/// One retained message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Retained {
    pub(crate) topic: String,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
    /// The client charged for it (`None`: the gateway itself).
    owner: Option<String>,
}

impl Retained {
    fn size(&self) -> usize {
        self.topic.len() + self.payload.len()
    }
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<String, Node>,
    msg: Option<Retained>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.msg.is_none()
    }
}

/// What [`RetainedStore::store`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreOutcome {
    /// Stored or replaced.
    Stored,
    /// An empty payload removed the message (or there was none).
    Deleted,
    /// Over the count or a byte budget: not kept (a message the topic
    /// already had stays).
    Full,
}

/// The retained store: at most `max` messages, `max_bytes` in total and
/// `max_owner_bytes` per owner.
#[derive(Debug)]
pub(crate) struct RetainedStore {
    root: Node,
    count: usize,
    max: usize,
    bytes: usize,
    max_bytes: usize,
    /// Bytes per owner (no zero entries; at most one entry per message).
    owners: HashMap<String, usize>,
    max_owner_bytes: usize,
}

impl RetainedStore {
    pub(crate) fn new(max: usize, max_bytes: usize, max_owner_bytes: usize) -> Self {
        Self {
            root: Node::default(),
            count: 0,
            max,
            bytes: 0,
            max_bytes,
            owners: HashMap::new(),
            max_owner_bytes,
        }
    }

    /// Bytes (topic + payload) stored.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    fn release(&mut self, old: &Retained) {
        self.bytes = self.bytes.saturating_sub(old.size());
        if let Some(o) = &old.owner {
            if let Some(n) = self.owners.get_mut(o) {
                *n = n.saturating_sub(old.size());
                if *n == 0 {
                    self.owners.remove(o);
                }
            }
        }
    }

    fn charge(&mut self, new: &Retained) {
        self.bytes += new.size();
        if let Some(o) = &new.owner {
            *self.owners.entry(o.clone()).or_default() += new.size();
        }
    }

    /// Number of retained messages.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Store, replace or (empty payload) delete the message of `topic`,
    /// charging it to `owner`.
    pub(crate) fn store(
        &mut self,
        topic: &str,
        payload: Bytes,
        qos: QoS,
        owner: Option<&str>,
    ) -> StoreOutcome {
        let levels: Vec<&str> = topic.split('/').collect();
        if payload.is_empty() {
            if let Some(old) = Self::delete_at(&mut self.root, &levels) {
                self.count = self.count.saturating_sub(1);
                self.release(&old);
            }
            return StoreOutcome::Deleted;
        }
        let msg = Retained {
            topic: topic.to_string(),
            payload,
            qos,
            owner: owner.map(str::to_string),
        };
        // Replacing never needs room in the count, and frees the old bytes;
        // look before creating nodes.
        let old = self.get(&levels);
        let old_size = old.map_or(0, Retained::size);
        if self.count >= self.max && old.is_none() {
            return StoreOutcome::Full;
        }
        if self.bytes - old_size.min(self.bytes) + msg.size() > self.max_bytes {
            return StoreOutcome::Full;
        }
        if let Some(o) = owner {
            let mine = self.owners.get(o).copied().unwrap_or(0);
            let freed = old
                .filter(|m| m.owner.as_deref() == Some(o))
                .map_or(0, Retained::size);
            if mine - freed.min(mine) + msg.size() > self.max_owner_bytes {
                return StoreOutcome::Full;
            }
        }
        self.charge(&msg);
        let mut node = &mut self.root;
        for level in levels {
            node = node.children.entry(level.to_string()).or_default();
        }
        match node.msg.replace(msg) {
            Some(old) => self.release(&old),
            None => self.count += 1,
        }
        StoreOutcome::Stored
    }

    fn get(&self, levels: &[&str]) -> Option<&Retained> {
        let mut node = &self.root;
        for level in levels {
            node = node.children.get(*level)?;
        }
        node.msg.as_ref()
    }

    fn delete_at(node: &mut Node, levels: &[&str]) -> Option<Retained> {
        let Some((first, rest)) = levels.split_first() else {
            return node.msg.take();
        };
        let child = node.children.get_mut(*first)?;
        let removed = Self::delete_at(child, rest);
        if child.is_empty() {
            node.children.remove(*first);
        }
        removed
    }

    /// Every retained message whose topic matches the (valid) `filter`.
    pub(crate) fn matching(&self, filter: &str) -> Vec<&Retained> {
        let levels: Vec<&str> = filter.split('/').collect();
        let mut out = Vec::new();
        Self::walk(&self.root, &levels, true, &mut out);
        out
    }

    fn walk<'a>(node: &'a Node, filter: &[&str], first: bool, out: &mut Vec<&'a Retained>) {
        let Some((level, rest)) = filter.split_first() else {
            if let Some(m) = &node.msg {
                out.push(m);
            }
            return;
        };
        match *level {
            "#" => {
                // `#` also matches the parent level itself (§4.7.1.2).
                if !first {
                    if let Some(m) = &node.msg {
                        out.push(m);
                    }
                }
                for (name, child) in &node.children {
                    if first && name.starts_with('$') {
                        continue;
                    }
                    Self::collect_all(child, out);
                }
            }
            "+" => {
                for (name, child) in &node.children {
                    if first && name.starts_with('$') {
                        continue;
                    }
                    Self::walk(child, rest, false, out);
                }
            }
            literal => {
                if let Some(child) = node.children.get(literal) {
                    Self::walk(child, rest, false, out);
                }
            }
        }
    }

    fn collect_all<'a>(node: &'a Node, out: &mut Vec<&'a Retained>) {
        if let Some(m) = &node.msg {
            out.push(m);
        }
        for child in node.children.values() {
            Self::collect_all(child, out);
        }
    }
}

/// Fuzzing/test only: every stored message as (topic, owner, size), and the
/// store's own bookkeeping checked against them.
#[cfg(any(test, feature = "fuzzing"))]
impl RetainedStore {
    pub(crate) fn entries(&self) -> Vec<(String, Option<String>, usize)> {
        let mut all = Vec::new();
        Self::collect_all(&self.root, &mut all);
        all.into_iter()
            .map(|m| (m.topic.clone(), m.owner.clone(), m.size()))
            .collect()
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        let entries = self.entries();
        let bytes: usize = entries.iter().map(|e| e.2).sum();
        let mut owners: HashMap<String, usize> = HashMap::new();
        for (_, o, size) in &entries {
            if let Some(o) = o {
                *owners.entry(o.clone()).or_default() += size;
            }
        }
        if entries.len() != self.count || self.count > self.max {
            return Err(format!(
                "retained count {} / {} / max {}",
                entries.len(),
                self.count,
                self.max
            ));
        }
        if bytes != self.bytes || bytes > self.max_bytes {
            return Err(format!(
                "retained bytes {bytes} / {} / max {}",
                self.bytes, self.max_bytes
            ));
        }
        if owners != self.owners {
            return Err(format!("owner bytes {owners:?} != {:?}", self.owners));
        }
        if let Some((o, n)) = owners.iter().find(|(_, n)| **n > self.max_owner_bytes) {
            return Err(format!(
                "owner {o} holds {n} retained bytes > {}",
                self.max_owner_bytes
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::router::topic_matches;
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn wildcard_lookup_agrees_with_matcher() {
        let topics = ["a", "a/b", "a/b/c", "x/b", "$SYS/up", "/b", "a//c"];
        let mut s = RetainedStore::new(100, 1 << 20, 1 << 20);
        for t in topics {
            assert_eq!(
                s.store(t, b(t), QoS::AtMostOnce, None),
                StoreOutcome::Stored
            );
        }
        for f in [
            "#", "a/#", "+", "+/b", "a/+/c", "$SYS/#", "+/+", "a/b/c", "a/+", "nope/#",
        ] {
            let mut got: Vec<&str> = s.matching(f).iter().map(|r| r.topic.as_str()).collect();
            got.sort();
            let mut want: Vec<&str> = topics
                .iter()
                .copied()
                .filter(|t| topic_matches(t, f))
                .collect();
            want.sort();
            assert_eq!(got, want, "filter {f}");
        }
    }

    #[test]
    fn empty_payload_deletes_and_cap_holds() {
        let mut s = RetainedStore::new(2, 1 << 20, 1 << 20);
        s.store("a", b("1"), QoS::AtMostOnce, None);
        s.store("b", b("1"), QoS::AtMostOnce, None);
        assert_eq!(
            s.store("c", b("1"), QoS::AtMostOnce, None),
            StoreOutcome::Full
        );
        assert_eq!(
            s.store("a", b("2"), QoS::AtMostOnce, None),
            StoreOutcome::Stored
        );
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.store("a", Bytes::new(), QoS::AtMostOnce, None),
            StoreOutcome::Deleted
        );
        assert_eq!(s.len(), 1);
        assert!(s.matching("a").is_empty());
        assert!(!s.root.children.contains_key("a"), "pruned");
        assert_eq!(
            s.store("c", b("1"), QoS::AtMostOnce, None),
            StoreOutcome::Stored
        );
    }

    #[test]
    fn byte_budgets_in_total_and_per_owner() {
        let big = |n: usize| Bytes::from(vec![b'x'; n]);
        // Owner budget 100 bytes, total 250.
        let mut s = RetainedStore::new(1000, 250, 100);
        assert_eq!(
            s.store("d/a", big(90), QoS::AtMostOnce, Some("a")),
            StoreOutcome::Stored
        );
        // A second topic of the same owner would pass its budget.
        assert_eq!(
            s.store("d/a2", big(20), QoS::AtMostOnce, Some("a")),
            StoreOutcome::Full
        );
        // Replacing its own message reuses the bytes it frees.
        assert_eq!(
            s.store("d/a", big(97), QoS::AtMostOnce, Some("a")),
            StoreOutcome::Stored
        );
        assert_eq!(s.bytes(), 100);
        assert_eq!(
            s.store("d/b", big(97), QoS::AtMostOnce, Some("b")),
            StoreOutcome::Stored
        );
        // The total budget holds, also for the gateway (no owner).
        assert_eq!(
            s.store("d/c", big(97), QoS::AtMostOnce, None),
            StoreOutcome::Full
        );
        assert_eq!(
            s.store("d/a", Bytes::new(), QoS::AtMostOnce, Some("a")),
            StoreOutcome::Deleted
        );
        assert_eq!(s.bytes(), 100);
        assert!(!s.owners.contains_key("a"));
        assert_eq!(
            s.store("d/c", big(97), QoS::AtMostOnce, None),
            StoreOutcome::Stored
        );
        assert_eq!(s.bytes(), 200);
    }
}
