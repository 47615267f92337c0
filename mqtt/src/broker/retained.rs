//! Retained messages (MQTT 3.1.1, OASIS §3.3.1.3): the last message published
//! with RETAIN=1 on each topic, kept in a trie by topic level so a new
//! subscription (wildcards included) finds its matches without scanning the
//! whole store. A zero-byte retained payload deletes the topic's message. The
//! store is capped; it lives in memory only.

use std::collections::HashMap;

use bytes::Bytes;
use rumqttc::mqttbytes::QoS;

/// One retained message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Retained {
    pub(crate) topic: String,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
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
    /// The store is full and the topic had no message yet: not kept.
    Full,
}

/// The retained store, at most `max` messages.
#[derive(Debug)]
pub(crate) struct RetainedStore {
    root: Node,
    count: usize,
    max: usize,
}

impl RetainedStore {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            root: Node::default(),
            count: 0,
            max,
        }
    }

    /// Number of retained messages.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Store, replace or (empty payload) delete the message of `topic`.
    pub(crate) fn store(&mut self, topic: &str, payload: Bytes, qos: QoS) -> StoreOutcome {
        let levels: Vec<&str> = topic.split('/').collect();
        if payload.is_empty() {
            if Self::delete_at(&mut self.root, &levels) {
                self.count = self.count.saturating_sub(1);
            }
            return StoreOutcome::Deleted;
        }
        let msg = Retained {
            topic: topic.to_string(),
            payload,
            qos,
        };
        // Replacing never needs room; look before creating nodes.
        if self.count >= self.max && !self.contains(&levels) {
            return StoreOutcome::Full;
        }
        let mut node = &mut self.root;
        for level in levels {
            node = node.children.entry(level.to_string()).or_default();
        }
        if node.msg.replace(msg).is_none() {
            self.count += 1;
        }
        StoreOutcome::Stored
    }

    fn contains(&self, levels: &[&str]) -> bool {
        let mut node = &self.root;
        for level in levels {
            match node.children.get(*level) {
                Some(n) => node = n,
                None => return false,
            }
        }
        node.msg.is_some()
    }

    fn delete_at(node: &mut Node, levels: &[&str]) -> bool {
        let Some((first, rest)) = levels.split_first() else {
            return node.msg.take().is_some();
        };
        let Some(child) = node.children.get_mut(*first) else {
            return false;
        };
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
        let mut s = RetainedStore::new(100);
        for t in topics {
            assert_eq!(s.store(t, b(t), QoS::AtMostOnce), StoreOutcome::Stored);
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
        let mut s = RetainedStore::new(2);
        s.store("a", b("1"), QoS::AtMostOnce);
        s.store("b", b("1"), QoS::AtMostOnce);
        assert_eq!(s.store("c", b("1"), QoS::AtMostOnce), StoreOutcome::Full);
        assert_eq!(s.store("a", b("2"), QoS::AtMostOnce), StoreOutcome::Stored);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.store("a", Bytes::new(), QoS::AtMostOnce),
            StoreOutcome::Deleted
        );
        assert_eq!(s.len(), 1);
        assert!(s.matching("a").is_empty());
        assert!(!s.root.children.contains_key("a"), "pruned");
        assert_eq!(s.store("c", b("1"), QoS::AtMostOnce), StoreOutcome::Stored);
    }
}
