//! Subscription index for the broker (MQTT 3.1.1, OASIS §4.7 "Topic Names and
//! Topic Filters"): a trie keyed by topic level, so that routing one PUBLISH
//! costs a walk over the topic's levels rather than a scan of every filter.
//! `+` and `#` are stored as ordinary children and followed while matching;
//! wildcards in the first level do not match topics that start with `$`
//! (§4.7.2). Topic and filter validation (§4.7.1, §4.7.3) lives here too.

use std::collections::HashMap;

use rumqttc::mqttbytes::QoS;

/// Internal key of a session (stable across connections of one client id).
pub(crate) type SessionKey = u64;

/// Whether `topic` is a valid topic name for PUBLISH (§4.7.3, §1.5.3): not
/// empty, no wildcards, no NUL, at most `max_levels` levels.
pub(crate) fn valid_topic_name(topic: &str, max_levels: usize) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0']) && topic.split('/').count() <= max_levels
}

/// Whether `filter` is a valid topic filter for SUBSCRIBE (§4.7.1): not
/// empty, `+` and `#` occupy whole levels, `#` only last, no NUL, at most
/// `max_levels` levels.
pub(crate) fn valid_topic_filter(filter: &str, max_levels: usize) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    if levels.len() > max_levels {
        return false;
    }
    let last = levels.len() - 1;
    levels.iter().enumerate().all(|(i, l)| {
        if *l == "#" {
            i == last
        } else if *l == "+" {
            true
        } else {
            !l.contains(['+', '#'])
        }
    })
}

/// Whether `topic` matches `filter` (both already validated). Used for the
/// retained store and in tests; the router walks its trie instead.
#[cfg(test)]
pub(crate) fn topic_matches(topic: &str, filter: &str) -> bool {
    let dollar = topic.starts_with('$');
    let mut t = topic.split('/');
    for (i, f) in filter.split('/').enumerate() {
        if f == "#" {
            return !(dollar && i == 0);
        }
        match t.next() {
            None => return false,
            Some(_) if f == "+" => {
                if dollar && i == 0 {
                    return false;
                }
            }
            Some(level) if level != f => return false,
            Some(_) => {}
        }
    }
    t.next().is_none()
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<String, Node>,
    subs: HashMap<SessionKey, QoS>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subs.is_empty()
    }
}

/// The subscription trie: filter levels to the sessions subscribed with
/// their granted QoS.
#[derive(Debug, Default)]
pub(crate) struct Router {
    root: Node,
    count: usize,
}

impl Router {
    /// Add or replace the subscription of `session` to `filter`.
    pub(crate) fn insert(&mut self, filter: &str, session: SessionKey, qos: QoS) {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            node = node.children.entry(level.to_string()).or_default();
        }
        if node.subs.insert(session, qos).is_none() {
            self.count += 1;
        }
    }

    /// Remove the subscription of `session` to `filter`, pruning empty nodes.
    pub(crate) fn remove(&mut self, filter: &str, session: SessionKey) {
        let levels: Vec<&str> = filter.split('/').collect();
        if Self::remove_at(&mut self.root, &levels, session) {
            self.count = self.count.saturating_sub(1);
        }
    }

    fn remove_at(node: &mut Node, levels: &[&str], session: SessionKey) -> bool {
        let Some((first, rest)) = levels.split_first() else {
            return node.subs.remove(&session).is_some();
        };
        let Some(child) = node.children.get_mut(*first) else {
            return false;
        };
        let removed = Self::remove_at(child, rest, session);
        if child.is_empty() {
            node.children.remove(*first);
        }
        removed
    }

    /// Number of (filter, session) subscriptions.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Every session with a filter matching `topic`, each once with the
    /// highest granted QoS among its matching filters (§3.3.5).
    pub(crate) fn matches(&self, topic: &str) -> HashMap<SessionKey, QoS> {
        let levels: Vec<&str> = topic.split('/').collect();
        let mut out = HashMap::new();
        let dollar = topic.starts_with('$');
        Self::walk(&self.root, &levels, dollar, true, &mut out);
        out
    }

    fn add(out: &mut HashMap<SessionKey, QoS>, subs: &HashMap<SessionKey, QoS>) {
        for (k, q) in subs {
            out.entry(*k)
                .and_modify(|old| {
                    if *q > *old {
                        *old = *q;
                    }
                })
                .or_insert(*q);
        }
    }

    fn walk(
        node: &Node,
        levels: &[&str],
        dollar: bool,
        first: bool,
        out: &mut HashMap<SessionKey, QoS>,
    ) {
        let wild_ok = !(first && dollar);
        if wild_ok {
            // `#` matches the parent level and any number of child levels (§4.7.1.2).
            if let Some(hash) = node.children.get("#") {
                Self::add(out, &hash.subs);
            }
        }
        let Some((level, rest)) = levels.split_first() else {
            Self::add(out, &node.subs);
            return;
        };
        if let Some(child) = node.children.get(*level) {
            Self::walk(child, rest, dollar, false, out);
        }
        if wild_ok && *level != "+" {
            if let Some(plus) = node.children.get("+") {
                Self::walk(plus, rest, dollar, false, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(valid_topic_name("a/b", 8));
        assert!(!valid_topic_name("", 8));
        assert!(!valid_topic_name("a/+", 8));
        assert!(!valid_topic_name("a/#", 8));
        assert!(!valid_topic_name("a\0b", 8));
        assert!(!valid_topic_name("a/b/c", 2));
        assert!(valid_topic_filter("a/+/#", 8));
        assert!(valid_topic_filter("#", 8));
        assert!(valid_topic_filter("+", 8));
        assert!(!valid_topic_filter("a/#/b", 8));
        assert!(!valid_topic_filter("a/b#", 8));
        assert!(!valid_topic_filter("a+/b", 8));
        assert!(!valid_topic_filter("", 8));
        assert!(!valid_topic_filter(&"a/".repeat(20), 8));
    }

    #[test]
    fn matching_rules_of_4_7() {
        assert!(topic_matches(
            "sport/tennis/player1",
            "sport/tennis/player1/#"
        ));
        assert!(topic_matches("sport", "sport/#"));
        assert!(topic_matches("sport/tennis", "sport/+"));
        assert!(!topic_matches("sport", "sport/+"));
        assert!(topic_matches("/finance", "+/+"));
        assert!(!topic_matches("$SYS/x", "#"));
        assert!(!topic_matches("$SYS/x", "+/x"));
        assert!(topic_matches("$SYS/x", "$SYS/#"));
        assert!(
            topic_matches("é/x", "+/x"),
            "multi-byte first level must not panic"
        );
    }

    #[test]
    fn trie_agrees_with_matcher_and_dedups() {
        let filters = [
            "a/b/c", "a/+/c", "a/#", "#", "+/b/+", "a/b", "$SYS/#", "+/+", "a/b/c/#",
        ];
        let topics = ["a/b/c", "a/b", "a", "x/b/y", "$SYS/a", "a/b/c/d", "/b/"];
        let mut r = Router::default();
        for (i, f) in filters.iter().enumerate() {
            r.insert(f, i as u64, QoS::AtLeastOnce);
        }
        for t in topics {
            let got = r.matches(t);
            for (i, f) in filters.iter().enumerate() {
                assert_eq!(
                    got.contains_key(&(i as u64)),
                    topic_matches(t, f),
                    "topic {t} filter {f}"
                );
            }
        }
        // One session with overlapping filters: one entry, highest QoS.
        let mut r = Router::default();
        r.insert("a/+", 7, QoS::AtMostOnce);
        r.insert("a/b", 7, QoS::AtLeastOnce);
        let m = r.matches("a/b");
        assert_eq!(m.len(), 1);
        assert_eq!(m[&7], QoS::AtLeastOnce);
        r.remove("a/b", 7);
        r.remove("a/+", 7);
        assert_eq!(r.len(), 0);
        assert!(r.root.is_empty(), "empty nodes are pruned");
    }
}
