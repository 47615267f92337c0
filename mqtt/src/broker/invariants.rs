//! Fuzzing and test support only (feature `fuzzing`): the broker's internal
//! bookkeeping checked against itself, so a sequence driver (the
//! `mqtt_broker` fuzz target) can assert after every step that counters,
//! bounds and indexes agree. Never compiled into the gateway.

use std::collections::HashMap;

use super::{Broker, ConnState, Principal, Source};

/// One retained message as the fuzz target sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedEntry {
    /// Topic name.
    pub topic: String,
    /// The client id it is charged to (`None`: published by the gateway).
    pub owner: Option<String>,
    /// Topic + payload bytes.
    pub size: usize,
}

/// One session as the fuzz target sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    /// Its client id.
    pub client_id: String,
    /// Who owns it.
    pub principal: Principal,
    /// Its connection, if online.
    pub conn: Option<super::ConnId>,
    /// Its subscription filters.
    pub filters: Vec<String>,
    /// Messages queued.
    pub queued: usize,
    /// QoS 1 messages sent and not acknowledged.
    pub inflight: usize,
    /// Incoming QoS 2 messages waiting for PUBREL.
    pub incoming: usize,
}

impl Broker {
    /// Every retained message (fuzzing/tests only).
    pub fn retained_entries(&self) -> Vec<RetainedEntry> {
        self.retained
            .entries()
            .into_iter()
            .map(|(topic, owner, size)| RetainedEntry { topic, owner, size })
            .collect()
    }

    /// Every session (fuzzing/tests only).
    pub fn session_views(&self) -> Vec<SessionView> {
        self.sessions
            .values()
            .map(|s| SessionView {
                client_id: s.client_id.clone(),
                principal: s.principal.clone(),
                conn: s.conn,
                filters: s.subs.keys().cloned().collect(),
                queued: s.queued(),
                inflight: s.inflight(),
                incoming: s.incoming.len(),
            })
            .collect()
    }

    /// Check the broker's bookkeeping: counters match the connections,
    /// indexes match the sessions, every bound of [`super::Limits`] holds.
    /// Returns what is wrong (fuzzing/tests only).
    pub fn check_invariants(&self) -> Result<(), String> {
        let l = &self.limits;
        self.retained.check()?;
        let window = usize::from(l.max_inflight.max(1));
        let mut connected = 0;
        let mut awaiting = 0;
        let mut claimants = 0;
        let mut awaiting_by: HashMap<Source, usize> = HashMap::new();
        let mut claimants_by: HashMap<Source, usize> = HashMap::new();
        let mut timers = 0;
        for (id, c) in &self.conns {
            if let Some(t) = c.timer {
                timers += 1;
                if !self.timers.contains(&(t, *id)) {
                    return Err(format!("conn {id}: timer {t:?} not in the timer set"));
                }
            }
            match &c.state {
                ConnState::AwaitingConnect => {
                    awaiting += 1;
                    if let Some(s) = c.source {
                        *awaiting_by.entry(s).or_default() += 1;
                    }
                    if c.timer.is_none() {
                        return Err(format!("conn {id} awaits CONNECT with no deadline"));
                    }
                }
                ConnState::Connected { session, .. } => {
                    connected += 1;
                    let Some(s) = self.sessions.get(session) else {
                        return Err(format!("conn {id} has no session"));
                    };
                    if s.conn != Some(*id) {
                        return Err(format!("conn {id}: its session points to {:?}", s.conn));
                    }
                    if c.claimant != matches!(s.principal, Principal::Claimant(_)) {
                        return Err(format!("conn {id}: claimant flag disagrees"));
                    }
                    if c.claimant {
                        claimants += 1;
                        if let Some(src) = c.source {
                            *claimants_by.entry(src).or_default() += 1;
                        }
                    }
                }
            }
        }
        if timers != self.timers.len() {
            return Err(format!(
                "{} timers for {timers} connections",
                self.timers.len()
            ));
        }
        if connected != self.connected || awaiting != self.awaiting || claimants != self.claimants {
            return Err(format!(
                "counters: connected {connected}/{}, awaiting {awaiting}/{}, claimants {claimants}/{}",
                self.connected, self.awaiting, self.claimants
            ));
        }
        if awaiting_by != self.awaiting_by_source || claimants_by != self.claimants_by_source {
            return Err("per-source counters disagree".into());
        }
        if connected > l.max_clients || claimants > l.max_claimants {
            return Err(format!(
                "{connected} clients, {claimants} claimants over the limits"
            ));
        }
        if claimants_by
            .values()
            .any(|n| *n > l.max_claimants_per_source)
            || awaiting_by.values().any(|n| *n > l.max_awaiting_per_source)
        {
            return Err("a source is over its cap".into());
        }
        if self.sessions.len() > l.max_sessions {
            return Err(format!(
                "{} sessions > {}",
                self.sessions.len(),
                l.max_sessions
            ));
        }
        if self.by_client.len() != self.sessions.len() {
            return Err(format!(
                "{} client ids for {} sessions",
                self.by_client.len(),
                self.sessions.len()
            ));
        }
        for (key, s) in &self.sessions {
            if self.by_client.get(&s.client_id) != Some(key) {
                return Err(format!(
                    "session {} not indexed by its client id",
                    s.client_id
                ));
            }
            if let Some(conn) = s.conn {
                match self.conns.get(&conn).map(|c| &c.state) {
                    Some(ConnState::Connected { session, .. }) if session == key => {}
                    _ => return Err(format!("session {} points to a dead conn", s.client_id)),
                }
            }
            if s.queued() > l.max_queued || s.inflight() > window || s.incoming.len() > window {
                return Err(format!(
                    "session {}: queued {}, inflight {}, incoming {} over the limits",
                    s.client_id,
                    s.queued(),
                    s.inflight(),
                    s.incoming.len()
                ));
            }
            if s.subs.len() > l.max_subscriptions {
                return Err(format!(
                    "session {}: {} subscriptions",
                    s.client_id,
                    s.subs.len()
                ));
            }
        }
        let routes: usize = self.sessions.values().map(|s| s.subs.len()).sum();
        if routes != self.router.len() {
            return Err(format!(
                "router holds {} routes, sessions {routes}",
                self.router.len()
            ));
        }
        Ok(())
    }
}
