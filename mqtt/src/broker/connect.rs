//! Connection lifecycle of the broker (MQTT 3.1.1, OASIS §3.1 CONNECT, §3.2
//! CONNACK, §3.1.4 response, §3.14 DISCONNECT, §3.1.2.5 Will): accepting or
//! refusing a CONNECT, taking over a client id, resuming or discarding the
//! session, and ending a connection with or without its Last Will.
//!
//! Takeover (§3.1.4 step 2, "the Server MUST disconnect the existing
//! Client"): the old connection is closed with [`CloseReason::TakenOver`] and
//! its will is **not** published. The specification allows either, but a
//! device reconnecting after a network hiccup would otherwise flash
//! `offline` to every watcher while it is in fact back. Only the same
//! principal may take over: a claimant never takes over (or inherits the
//! session of) a device, nor a device a claimant; a live client id held by
//! another principal is refused with CONNACK 0x02, so one client cannot kick
//! another off. A device's and a claimant's client id must be its device id
//! (its user name), so no one can squat another device's client id.
//!
//! Claimants (password-less, before their claim) are capped in all
//! ([`super::Limits::max_claimants`], a share of `max_clients` devices cannot
//! lose) and per source, and live at most
//! [`super::Limits::claimant_lifetime`] whatever their keep-alive.

use std::time::Instant;

use rumqttc::mqttbytes::v4::{ConnAck, Connect, ConnectReturnCode, Packet};
use rumqttc::mqttbytes::Protocol;

use super::router::valid_topic_name;
use super::session::Session;
use super::{
    count, uncount, AuthDecision, Authorizer, Broker, BrokerEvent, CloseReason, ConnId, ConnState,
    Principal, SessionKey,
};

impl Broker {
    /// Queue a refusing CONNACK (session present 0, §3.2.2.2).
    pub(super) fn refuse(&mut self, conn: ConnId, code: ConnectReturnCode) {
        self.transmits
            .push_back((conn, Packet::ConnAck(ConnAck::new(code, false))));
    }

    fn refuse_and_close(
        &mut self,
        now: Instant,
        conn: ConnId,
        code: ConnectReturnCode,
        reason: CloseReason,
    ) {
        self.refuse(conn, code);
        self.close(now, conn, reason, true);
    }

    pub(super) fn on_connect(
        &mut self,
        now: Instant,
        conn: ConnId,
        c: Connect,
        auth: &mut dyn Authorizer,
    ) {
        use ConnectReturnCode as Rc;
        // §3.1.2.2: only level 4 (3.1.1); the codec also lets level 5 through.
        if c.protocol != Protocol::V4 {
            return self.refuse_and_close(
                now,
                conn,
                Rc::RefusedProtocolVersion,
                CloseReason::ProtocolError,
            );
        }
        // §3.1.3.1: an empty client id needs CleanSession=1; we assign one.
        if c.client_id.len() > self.limits.max_client_id
            || (c.client_id.is_empty() && !c.clean_session)
        {
            return self.refuse_and_close(now, conn, Rc::BadClientId, CloseReason::ProtocolError);
        }
        let (username, password) = match &c.login {
            Some(l) => (
                Some(l.username.as_str()).filter(|s| !s.is_empty()),
                Some(l.password.as_str()).filter(|s| !s.is_empty()),
            ),
            None => (None, None),
        };
        let principal = match auth.authenticate(&c.client_id, username, password) {
            AuthDecision::Accept(p) => p,
            AuthDecision::Reject(code) => {
                let code = if code == Rc::Success {
                    Rc::NotAuthorized
                } else {
                    code
                };
                return self.refuse_and_close(now, conn, code, CloseReason::NotAuthorized);
            }
        };
        // A device's or claimant's client id is its device id: no one can
        // hold (squat) another device's client id.
        if let Principal::Device(id) | Principal::Claimant(id) = &principal {
            if c.client_id != id.as_str() {
                return self.refuse_and_close(
                    now,
                    conn,
                    Rc::BadClientId,
                    CloseReason::NotAuthorized,
                );
            }
        }
        let mut last_will = c.last_will;
        if let Some(w) = &mut last_will {
            if w.retain && !auth.may_retain(&principal, &w.topic) {
                w.retain = false;
            }
        }
        if let Some(w) = &last_will {
            if !valid_topic_name(&w.topic, self.limits.max_topic_levels) {
                // §3.1.2.5 / §4.7.3: a malformed CONNECT gets no CONNACK.
                return self.close(now, conn, CloseReason::ProtocolError, true);
            }
            if !auth.may_publish(&principal, &w.topic) {
                return self.refuse_and_close(
                    now,
                    conn,
                    Rc::NotAuthorized,
                    CloseReason::NotAuthorized,
                );
            }
        }
        let client_id = if c.client_id.is_empty() {
            self.auto_client_id()
        } else {
            c.client_id
        };

        let existing = self.by_client.get(&client_id).copied();
        let old_conn = existing
            .and_then(|k| self.sessions.get(&k))
            .and_then(|s| s.conn);
        if let (Some(_), Some(k)) = (old_conn, existing) {
            let holder = self.sessions.get(&k).map(|s| &s.principal);
            if holder != Some(&principal) {
                // Someone else's live client id: refuse rather than let any
                // authenticated client kick another off.
                return self.refuse_and_close(
                    now,
                    conn,
                    Rc::BadClientId,
                    CloseReason::NotAuthorized,
                );
            }
        }
        let claimant = matches!(principal, Principal::Claimant(_));
        let source = self.conns.get(&conn).and_then(|c| c.source);
        if claimant && old_conn.is_none() {
            let from_source = source.map_or(0, |s| count(&self.claimants_by_source, s));
            if self.claimants >= self.limits.max_claimants
                || from_source >= self.limits.max_claimants_per_source
            {
                return self.refuse_and_close(
                    now,
                    conn,
                    Rc::ServiceUnavailable,
                    CloseReason::TooManyClients,
                );
            }
        }
        if old_conn.is_none() && self.connected >= self.limits.max_clients {
            return self.refuse_and_close(
                now,
                conn,
                Rc::ServiceUnavailable,
                CloseReason::TooManyClients,
            );
        }
        if existing.is_none() && self.sessions.len() >= self.limits.max_sessions && !self.evict() {
            return self.refuse_and_close(
                now,
                conn,
                Rc::ServiceUnavailable,
                CloseReason::TooManyClients,
            );
        }
        if let Some(old) = old_conn {
            // §3.1.4: disconnect the existing client (no will, see module docs).
            self.close(now, old, CloseReason::TakenOver, true);
        }

        // §3.1.2.4: resume only a persistent session of the same principal.
        let mut key = self.by_client.get(&client_id).copied();
        if let Some(k) = key {
            let same = self.sessions.get(&k).map(|s| s.principal == principal);
            if c.clean_session || same != Some(true) {
                self.discard_session(k);
                key = None;
            }
        }
        let session_present = key.is_some();
        let key = match key {
            Some(k) => k,
            None => {
                let k = self.next_session;
                self.next_session += 1;
                self.sessions.insert(
                    k,
                    Session::new(client_id.clone(), principal.clone(), c.clean_session),
                );
                self.by_client.insert(client_id.clone(), k);
                k
            }
        };

        let Some(entry) = self.conns.get_mut(&conn) else {
            return;
        };
        entry.state = ConnState::Connected {
            session: key,
            keep_alive: c.keep_alive,
            last_rx: now,
            will: last_will,
            expires: if claimant {
                now.checked_add(self.limits.claimant_lifetime)
            } else {
                None
            },
        };
        entry.claimant = claimant;
        self.awaiting = self.awaiting.saturating_sub(1);
        if let Some(s) = source {
            uncount(&mut self.awaiting_by_source, s);
            if claimant {
                *self.claimants_by_source.entry(s).or_default() += 1;
            }
        }
        if claimant {
            self.claimants += 1;
        }
        self.connected += 1;
        self.schedule(conn);

        self.transmits.push_back((
            conn,
            Packet::ConnAck(ConnAck::new(Rc::Success, session_present)),
        ));
        let filters = if session_present {
            self.sessions
                .get(&key)
                .map(|s| s.subs.keys().cloned().collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        self.events.push_back(BrokerEvent::Connected {
            conn,
            client_id,
            principal,
            session_present,
            filters,
        });
        let limits = &self.limits;
        if let Some(s) = self.sessions.get_mut(&key) {
            s.conn = Some(conn);
            s.clean = c.clean_session;
            s.offline_since = None;
            // §4.4: resend unacknowledged PUBLISH packets with DUP=1.
            for p in s.resume(limits) {
                self.transmits.push_back((conn, Packet::Publish(p)));
            }
        }
    }

    fn auto_client_id(&mut self) -> String {
        loop {
            let id = format!("auto-{}", self.next_auto_id);
            self.next_auto_id += 1;
            if !self.by_client.contains_key(&id) {
                return id;
            }
        }
    }

    /// Drop the persistent session offline longest, to make room. O(sessions),
    /// run only when the session table is full.
    fn evict(&mut self) -> bool {
        let victim = self
            .sessions
            .iter()
            .filter_map(|(k, s)| s.offline_since.map(|t| (t, *k)))
            .min();
        match victim {
            Some((_, k)) => {
                self.discard_session(k);
                true
            }
            None => false,
        }
    }

    /// Remove a session and its subscriptions.
    pub(super) fn discard_session(&mut self, key: SessionKey) {
        let Some(s) = self.sessions.remove(&key) else {
            return;
        };
        for filter in s.subs.keys() {
            self.router.remove(filter, key);
        }
        self.dropped += (s.queued() + s.inflight()) as u64;
        if self.by_client.get(&s.client_id) == Some(&key) {
            self.by_client.remove(&s.client_id);
        }
    }

    /// End `conn`: forget the connection, publish its will if `will` (and it
    /// has one), report `Disconnected`, and discard a clean session.
    fn end(&mut self, now: Instant, conn: ConnId, reason: CloseReason, will: bool) {
        self.unschedule(conn);
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let (key, last_will) = match c.state {
            ConnState::AwaitingConnect => {
                self.awaiting = self.awaiting.saturating_sub(1);
                if let Some(s) = c.source {
                    uncount(&mut self.awaiting_by_source, s);
                }
                return;
            }
            ConnState::Connected { session, will, .. } => (session, will),
        };
        self.connected = self.connected.saturating_sub(1);
        if c.claimant {
            self.claimants = self.claimants.saturating_sub(1);
            if let Some(s) = c.source {
                uncount(&mut self.claimants_by_source, s);
            }
        }
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        s.conn = None;
        s.offline_since = Some(now);
        let client_id = s.client_id.clone();
        let principal = s.principal.clone();
        let clean = s.clean;
        let will_sent = match last_will {
            Some(w) if will => {
                self.events.push_back(BrokerEvent::Published {
                    from: Some(principal.clone()),
                    topic: w.topic.clone(),
                    payload: w.message.clone(),
                    qos: w.qos,
                    retain: w.retain,
                });
                self.route(&w.topic, w.message, w.qos, w.retain, Some(&client_id));
                true
            }
            _ => false,
        };
        if clean {
            self.discard_session(key);
        }
        self.events.push_back(BrokerEvent::Disconnected {
            conn,
            client_id,
            principal,
            reason,
            will_sent,
        });
    }

    /// Close `conn`: a `Close` event for the driver when `emit_close` (false
    /// when the transport is already gone), then end the connection. The will
    /// is published (§3.1.2.5) unless the client sent DISCONNECT or was taken
    /// over (see module docs).
    pub(super) fn close(
        &mut self,
        now: Instant,
        conn: ConnId,
        reason: CloseReason,
        emit_close: bool,
    ) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        if emit_close {
            self.events.push_back(BrokerEvent::Close {
                conn,
                reason: reason.clone(),
            });
        }
        let will = !matches!(
            reason,
            CloseReason::TakenOver | CloseReason::ClientDisconnect
        );
        self.end(now, conn, reason, will);
    }
}
