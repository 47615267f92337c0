//! Per-client session state of the broker (MQTT 3.1.1, OASIS §3.1.2.4
//! "Clean Session" and §4.4 "Message delivery retry"): subscriptions, the
//! outgoing QoS 1 messages sent but not acknowledged (at most `max_inflight`,
//! with packet identifiers per §2.3.1), the messages waiting behind them (at
//! most `max_queued`), and the incoming QoS 2 messages waiting for PUBREL
//! (§4.3.3, "method A": stored, routed on PUBREL). Sessions live in memory
//! only: a broker restart loses persistent sessions.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use rumqttc::mqttbytes::v4::Publish;
use rumqttc::mqttbytes::QoS;

use super::{ConnId, Limits, Principal};

/// A message on its way to one subscriber, QoS already reduced to what the
/// subscription grants.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) topic: String,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
}

impl Message {
    fn to_publish(&self, pkid: u16, dup: bool) -> Publish {
        Publish {
            dup,
            qos: self.qos,
            retain: self.retain,
            topic: self.topic.clone(),
            pkid,
            payload: self.payload.clone(),
        }
    }
}

/// What [`Session::deliver`] did with a message.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// Transmit this now.
    Send(Publish),
    /// Waiting in the session queue; `evicted` when the oldest queued
    /// message of an offline session was dropped to make room.
    Queued {
        /// An older message was dropped.
        evicted: bool,
    },
    /// Dropped: QoS 0 for an offline client (or a zero-length queue).
    Dropped,
    /// The client is connected and both inflight window and queue are full.
    Overflow,
}

/// One client's session.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) client_id: String,
    pub(crate) principal: Principal,
    /// CleanSession of the connection that owns it: discarded on disconnect.
    pub(crate) clean: bool,
    pub(crate) conn: Option<ConnId>,
    /// Filter to granted QoS; at most `max_subscriptions`.
    pub(crate) subs: HashMap<String, QoS>,
    /// Outgoing QoS 1 messages not yet acknowledged, oldest first.
    inflight: VecDeque<(u16, Message)>,
    /// Messages waiting for room in `inflight` (or for the client to return).
    queue: VecDeque<Message>,
    /// Incoming QoS 2 messages between PUBREC and PUBREL, by packet id.
    pub(crate) incoming: HashMap<u16, Publish>,
    next_pkid: u16,
    /// Messages dropped for this session since it was created.
    pub(crate) dropped: u64,
    /// When the session lost its connection (persistent sessions only).
    pub(crate) offline_since: Option<Instant>,
}

impl Session {
    pub(crate) fn new(client_id: String, principal: Principal, clean: bool) -> Self {
        Self {
            client_id,
            principal,
            clean,
            conn: None,
            subs: HashMap::new(),
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            incoming: HashMap::new(),
            next_pkid: 1,
            dropped: 0,
            offline_since: None,
        }
    }

    fn window(limits: &Limits) -> usize {
        usize::from(limits.max_inflight.max(1))
    }

    /// Next free packet identifier in 1..=65535 (§2.3.1). The inflight
    /// window is at most 65535 entries, so one is always free when called
    /// with room in the window.
    fn alloc_pkid(&mut self) -> u16 {
        for _ in 0..=u16::MAX {
            let id = self.next_pkid;
            self.next_pkid = if id == u16::MAX { 1 } else { id + 1 };
            if !self.inflight.iter().any(|(p, _)| *p == id) {
                return id;
            }
        }
        // Unreachable while the window is below 65535; stay total anyway.
        1
    }

    fn send_qos1(&mut self, msg: Message) -> Publish {
        let pkid = self.alloc_pkid();
        let p = msg.to_publish(pkid, false);
        self.inflight.push_back((pkid, msg));
        p
    }

    /// Deliver one message (§3.3.5 / §4.3): QoS 0 goes out at once to a
    /// connected client; QoS 1 takes a packet id if the inflight window has
    /// room, else waits in the queue.
    pub(crate) fn deliver(&mut self, msg: Message, limits: &Limits) -> Delivery {
        let connected = self.conn.is_some();
        if msg.qos == QoS::AtMostOnce {
            return if connected {
                Delivery::Send(msg.to_publish(0, false))
            } else {
                Delivery::Dropped
            };
        }
        if connected && self.queue.is_empty() && self.inflight.len() < Self::window(limits) {
            return Delivery::Send(self.send_qos1(msg));
        }
        if self.queue.len() < limits.max_queued {
            self.queue.push_back(msg);
            return Delivery::Queued { evicted: false };
        }
        if connected {
            self.dropped += 1;
            return Delivery::Overflow;
        }
        if limits.max_queued > 0 {
            self.queue.pop_front();
            self.dropped += 1;
            self.queue.push_back(msg);
            Delivery::Queued { evicted: true }
        } else {
            self.dropped += 1;
            Delivery::Dropped
        }
    }

    /// Whether a QoS 1 message would be accepted without overflow.
    pub(crate) fn has_room(&self, limits: &Limits) -> bool {
        self.queue.len() < limits.max_queued
            || (self.queue.is_empty() && self.inflight.len() < Self::window(limits))
    }

    /// Move queued messages into the inflight window while it has room.
    pub(crate) fn fill(&mut self, limits: &Limits) -> Vec<Publish> {
        let mut out = Vec::new();
        if self.conn.is_none() {
            return out;
        }
        while self.inflight.len() < Self::window(limits) {
            let Some(msg) = self.queue.pop_front() else {
                break;
            };
            out.push(self.send_qos1(msg));
        }
        out
    }

    /// PUBACK for `pkid` (§4.3.2): free it and send what was waiting.
    pub(crate) fn acked(&mut self, pkid: u16, limits: &Limits) -> Vec<Publish> {
        if let Some(i) = self.inflight.iter().position(|(p, _)| *p == pkid) {
            self.inflight.remove(i);
        }
        self.fill(limits)
    }

    /// A persistent session got a connection back (§4.4): resend every
    /// unacknowledged message with DUP=1 and its original packet id, then
    /// fill the window from the queue.
    pub(crate) fn resume(&mut self, limits: &Limits) -> Vec<Publish> {
        let mut out: Vec<Publish> = self
            .inflight
            .iter()
            .map(|(pkid, m)| m.to_publish(*pkid, true))
            .collect();
        out.extend(self.fill(limits));
        out
    }

    /// Messages waiting in the queue.
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Messages sent and not yet acknowledged.
    pub(crate) fn inflight(&self) -> usize {
        self.inflight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u8) -> Message {
        Message {
            topic: "t".into(),
            payload: Bytes::copy_from_slice(&[n]),
            qos: QoS::AtLeastOnce,
            retain: false,
        }
    }

    #[test]
    fn pkids_skip_those_in_use_and_wrap() {
        let limits = Limits {
            max_inflight: 3,
            ..Limits::default()
        };
        let mut s = Session::new("c".into(), Principal::Service("s".into()), false);
        s.conn = Some(1);
        s.next_pkid = u16::MAX;
        let ids: Vec<u16> = (0..3)
            .map(|i| match s.deliver(msg(i), &limits) {
                Delivery::Send(p) => p.pkid,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, vec![u16::MAX, 1, 2]);
        assert!(matches!(
            s.deliver(msg(9), &limits),
            Delivery::Queued { .. }
        ));
        let sent = s.acked(1, &limits);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].pkid, 3);
        assert_eq!(sent[0].payload[0], 9);
    }

    #[test]
    fn offline_queue_drops_oldest() {
        let limits = Limits {
            max_queued: 2,
            ..Limits::default()
        };
        let mut s = Session::new("c".into(), Principal::Service("s".into()), false);
        for i in 0..3 {
            assert!(matches!(
                s.deliver(msg(i), &limits),
                Delivery::Queued { .. }
            ));
        }
        assert_eq!(s.dropped, 1);
        assert_eq!(s.queued(), 2);
        s.conn = Some(1);
        let out = s.resume(&limits);
        assert_eq!(
            out.iter().map(|p| p.payload[0]).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(s.inflight(), 2);
    }
}
