//! The SIP transaction layer (RFC 3261 §17, with the Accepted state of RFC 6026 and the 2xx
//! retransmission of RFC 3261 §13.3.1.4), sans-IO on injected time.
//!
//! [`TransactionLayer`] multiplexes the four machines ([`ClientInvite`], [`ClientNonInvite`],
//! [`ServerInvite`], [`ServerNonInvite`]) by [`TransactionKey`]. Feed it parsed messages with
//! [`handle_message`](TransactionLayer::handle_message) and requests/responses from the TU with
//! [`send_request`](TransactionLayer::send_request) and
//! [`send_response`](TransactionLayer::send_response); drive time with
//! [`handle_timeout`](TransactionLayer::handle_timeout) at
//! [`poll_timeout`](TransactionLayer::poll_timeout); drain
//! [`poll_transmit`](TransactionLayer::poll_transmit) and
//! [`poll_event`](TransactionLayer::poll_event). Every message is serialized once; the bytes
//! are kept for retransmission. Terminated transactions are dropped at once.

mod client_invite;
mod client_non_invite;
mod key;
mod server_invite;
mod server_non_invite;
mod timers;

#[cfg(test)]
mod tests;

pub use client_invite::{ClientInvite, ClientInviteState};
pub use client_non_invite::{ClientNonInvite, ClientNonInviteState};
pub use key::{Role, TransactionKey};
pub use server_invite::{ServerInvite, ServerInviteState};
pub use server_non_invite::{ServerNonInvite, ServerNonInviteState};
pub use timers::{Timer, Timers};

use crate::message::{make_response, new_tag, request_bytes, response_bytes, to_bytes, MessageExt};
use crate::transport::Peer;
use bytes::Bytes;
use rsip::{Method, Request, Response, SipMessage};
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Bytes to send to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send.
    pub peer: Peer,
    /// The serialized message.
    pub data: Bytes,
}

/// What the transaction layer reports to the transaction user.
#[derive(Debug, Clone)]
pub enum TransactionEvent {
    /// New request for the TU. `key` is the new server transaction; None for an ACK to a 2xx
    /// (no transaction). The first ACK only; retransmitted ACKs for a 2xx are absorbed while
    /// the server INVITE transaction is in Accepted.
    Request {
        /// The new server transaction, None for an ACK.
        key: Option<TransactionKey>,
        /// The request.
        request: Request,
        /// Where it came from.
        peer: Peer,
    },
    /// A CANCEL matched an INVITE server transaction still in Proceeding. The layer has
    /// already answered the CANCEL with 200 OK; the TU should send 487 on `invite`.
    Cancelled {
        /// The INVITE server transaction.
        invite: TransactionKey,
        /// The CANCEL request.
        cancel: Request,
    },
    /// A response for a client transaction (1xx, and every final; for INVITE 2xx,
    /// retransmitted 2xx received in Accepted are delivered again so the TU can re-ACK).
    Response {
        /// The client transaction.
        key: TransactionKey,
        /// The response.
        response: Response,
    },
    /// Client transaction gave up: Timer B or F fired (or a transport error was reported, or
    /// the request could not be written: see [`crate::message::WriteError`]).
    Timeout {
        /// The client transaction.
        key: TransactionKey,
    },
    /// Server INVITE transaction: a 2xx was never ACKed (Timer L fired; TU should hang up) —
    /// or non-2xx never ACKed (Timer H).
    AckTimeout {
        /// The server transaction.
        key: TransactionKey,
    },
    /// A response matching no transaction (e.g. a 2xx retransmission after Timer M):
    /// delivered so the TU can re-ACK or ignore.
    StrayResponse {
        /// The response.
        response: Response,
        /// Where it came from.
        peer: Peer,
    },
}

/// Errors of the TU-facing transaction API.
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    /// No server transaction with this key (never existed, or already terminated).
    #[error("no such server transaction")]
    NoSuchTransaction,
    /// The response is not allowed in the transaction's current state.
    #[error("cannot send a {code} response in state {state}")]
    InvalidState {
        /// The RFC name of the state.
        state: &'static str,
        /// The status code the TU tried to send.
        code: u16,
    },
    /// The status code is outside 100-699.
    #[error("invalid status code {code}")]
    InvalidStatus {
        /// The offending code.
        code: u16,
    },
    /// The writer refused the response (a control character in a header); nothing was sent.
    #[error(transparent)]
    Unwritable(#[from] crate::message::WriteError),
}

/// Effects requested by a machine; the layer applies them.
#[derive(Debug)]
pub(crate) enum Action {
    /// Send bytes to the transaction's peer.
    Send(Bytes),
    /// Arm (or re-arm) a timer to fire after the duration.
    Arm(Timer, Duration),
    /// Cancel a timer.
    Disarm(Timer),
    /// Pass a response up to the TU.
    Deliver(Response),
    /// Client transaction timed out.
    Timeout,
    /// Server INVITE transaction never got its ACK.
    AckTimeout,
    /// The machine reached Terminated.
    Terminate,
}

#[derive(Debug)]
#[allow(clippy::enum_variant_names)]
enum Machine {
    ClientInvite(Box<ClientInvite>),
    ClientNonInvite(ClientNonInvite),
    ServerInvite(ServerInvite),
    ServerNonInvite(ServerNonInvite),
}

#[derive(Debug)]
struct Txn {
    machine: Machine,
    peer: Peer,
    deadlines: [Option<Instant>; Timer::COUNT],
    /// Server INVITE: (Call-ID, CSeq number), to match the ACK of a 2xx.
    dialog_ack: Option<(String, u32)>,
    /// Server INVITE: the To tag the TU used, for the 200 to a CANCEL.
    to_tag: Option<String>,
}

impl Txn {
    fn new(machine: Machine, peer: Peer) -> Self {
        Self {
            machine,
            peer,
            deadlines: [None; Timer::COUNT],
            dialog_ack: None,
            to_tag: None,
        }
    }
}

#[derive(Debug)]
struct HeapEntry {
    deadline: Instant,
    seq: u64,
    timer: Timer,
    key: TransactionKey,
}

impl PartialEq for HeapEntry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for HeapEntry {}
impl PartialOrd for HeapEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

/// The transaction layer: all client and server transactions of one SIP endpoint.
#[derive(Debug)]
pub struct TransactionLayer {
    timers: Timers,
    txns: HashMap<TransactionKey, Txn>,
    /// (Call-ID, CSeq number) of server INVITE transactions in Accepted.
    accepted: HashMap<(String, u32), TransactionKey>,
    heap: BinaryHeap<Reverse<HeapEntry>>,
    seq: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TransactionEvent>,
}

impl TransactionLayer {
    /// An empty layer with the given timer values.
    pub fn new(timers: Timers) -> Self {
        Self {
            timers,
            txns: HashMap::new(),
            accepted: HashMap::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.txns.len()
    }

    /// True when a server transaction for `req` is alive: `req` is a retransmission the
    /// layer absorbs (or answers with its last response). Lets the TU screen only new
    /// requests, for example to challenge strangers statelessly.
    pub fn has_server_transaction(&self, req: &Request) -> bool {
        self.txns.contains_key(&TransactionKey::server_of(req))
    }

    /// True when no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    /// Carries out a machine's actions for transaction `key`.
    fn apply(&mut self, now: Instant, key: &TransactionKey, actions: Vec<Action>) {
        let mut terminate = false;
        for action in actions {
            let Some(txn) = self.txns.get_mut(key) else {
                return;
            };
            match action {
                Action::Send(data) => self.transmits.push_back(Transmit {
                    peer: txn.peer,
                    data,
                }),
                Action::Arm(timer, after) => {
                    let deadline = now + after;
                    txn.deadlines[timer.index()] = Some(deadline);
                    self.seq += 1;
                    self.heap.push(Reverse(HeapEntry {
                        deadline,
                        seq: self.seq,
                        timer,
                        key: key.clone(),
                    }));
                }
                Action::Disarm(timer) => txn.deadlines[timer.index()] = None,
                Action::Deliver(response) => self.events.push_back(TransactionEvent::Response {
                    key: key.clone(),
                    response,
                }),
                Action::Timeout => {
                    self.events
                        .push_back(TransactionEvent::Timeout { key: key.clone() });
                }
                Action::AckTimeout => {
                    self.events
                        .push_back(TransactionEvent::AckTimeout { key: key.clone() });
                }
                Action::Terminate => terminate = true,
            }
        }
        if terminate {
            self.remove(key);
        }
    }

    fn remove(&mut self, key: &TransactionKey) -> Option<Txn> {
        let txn = self.txns.remove(key)?;
        if let Some(d) = &txn.dialog_ack {
            if self.accepted.get(d) == Some(key) {
                self.accepted.remove(d);
            }
        }
        Some(txn)
    }

    /// Feed one parsed inbound message from `peer`.
    ///
    /// New INVITE: creates a server INVITE transaction, queues a `100 Trying` and emits
    /// [`TransactionEvent::Request`]. Retransmitted requests are absorbed (the last response,
    /// if any, is resent). CANCEL: answered 200 when it matches an INVITE server transaction
    /// (emitting [`TransactionEvent::Cancelled`] if that is still in Proceeding), 481
    /// otherwise. ACK: absorbed by a server INVITE transaction in Completed, passed up once
    /// for a 2xx in Accepted (matched by Call-ID and CSeq number), otherwise passed up.
    /// Responses go to the client transaction matching the top Via branch and CSeq method,
    /// else are reported as [`TransactionEvent::StrayResponse`].
    pub fn handle_message(&mut self, now: Instant, peer: Peer, msg: SipMessage) {
        match msg {
            SipMessage::Request(req) => self.handle_request(now, peer, req),
            SipMessage::Response(resp) => self.handle_response(now, peer, resp),
        }
    }

    fn handle_request(&mut self, now: Instant, peer: Peer, req: Request) {
        let method = req.method;
        match method {
            Method::Ack => self.handle_ack(now, peer, req),
            Method::Cancel => self.handle_cancel(now, peer, req),
            _ => {
                let key = TransactionKey::of(&req, method, Role::Server);
                let mut out = Vec::new();
                if let Some(txn) = self.txns.get_mut(&key) {
                    match &mut txn.machine {
                        Machine::ServerInvite(m) => m.on_request_retransmit(&mut out),
                        Machine::ServerNonInvite(m) => m.on_request_retransmit(&mut out),
                        _ => {}
                    }
                    self.apply(now, &key, out);
                    return;
                }
                let reliable = peer.transport.is_reliable();
                if method == Method::Invite {
                    let mut txn = Txn::new(
                        Machine::ServerInvite(ServerInvite::new(reliable, self.timers)),
                        peer,
                    );
                    txn.dialog_ack = req.call_id().and_then(|c| req.cseq().map(|(n, _)| (c, n)));
                    self.txns.insert(key.clone(), txn);
                    let trying = make_response(&req, 100, None);
                    // A parsed request always gives a writable 100.
                    let bytes = Bytes::from(response_bytes(&trying).unwrap_or_default());
                    if let (
                        false,
                        Some(Txn {
                            machine: Machine::ServerInvite(m),
                            ..
                        }),
                    ) = (bytes.is_empty(), self.txns.get_mut(&key))
                    {
                        // Cannot fail: a fresh transaction is in Proceeding.
                        let _ = m.send_response(100, bytes, &mut out);
                    }
                    self.apply(now, &key, out);
                } else {
                    let txn = Txn::new(
                        Machine::ServerNonInvite(ServerNonInvite::new(reliable, self.timers)),
                        peer,
                    );
                    self.txns.insert(key.clone(), txn);
                }
                self.events.push_back(TransactionEvent::Request {
                    key: Some(key),
                    request: req,
                    peer,
                });
            }
        }
    }

    fn handle_ack(&mut self, now: Instant, peer: Peer, req: Request) {
        let key = TransactionKey::of(&req, Method::Invite, Role::Server);
        let target = if matches!(
            self.txns.get(&key).map(|t| &t.machine),
            Some(Machine::ServerInvite(_))
        ) {
            Some(key)
        } else {
            req.call_id()
                .zip(req.cseq().map(|(n, _)| n))
                .and_then(|d| self.accepted.get(&d).cloned())
        };
        let Some(key) = target else {
            self.events.push_back(TransactionEvent::Request {
                key: None,
                request: req,
                peer,
            });
            return;
        };
        let mut out = Vec::new();
        let mut pass_up = false;
        if let Some(Txn {
            machine: Machine::ServerInvite(m),
            ..
        }) = self.txns.get_mut(&key)
        {
            pass_up = m.on_ack(&mut out);
        }
        self.apply(now, &key, out);
        if pass_up {
            self.events.push_back(TransactionEvent::Request {
                key: None,
                request: req,
                peer,
            });
        }
    }

    fn handle_cancel(&mut self, now: Instant, peer: Peer, req: Request) {
        let key = TransactionKey::of(&req, Method::Cancel, Role::Server);
        let mut out = Vec::new();
        if let Some(txn) = self.txns.get_mut(&key) {
            if let Machine::ServerNonInvite(m) = &mut txn.machine {
                m.on_request_retransmit(&mut out);
            }
            self.apply(now, &key, out);
            return;
        }
        let invite_key = key.with_method(Method::Invite);
        let (code, to_tag, cancelled) = match self.txns.get(&invite_key) {
            Some(Txn {
                machine: Machine::ServerInvite(m),
                to_tag,
                ..
            }) => (
                200,
                to_tag.clone().unwrap_or_else(new_tag),
                m.state() == ServerInviteState::Proceeding,
            ),
            _ => (481, new_tag(), false),
        };
        let mut machine = ServerNonInvite::new(peer.transport.is_reliable(), self.timers);
        let resp = make_response(&req, code, Some(&to_tag));
        // Cannot fail: a fresh transaction is in Trying (and a parsed CANCEL gives a writable
        // answer).
        if let Ok(bytes) = response_bytes(&resp) {
            let _ = machine.send_response(code, Bytes::from(bytes), &mut out);
        }
        self.txns.insert(
            key.clone(),
            Txn::new(Machine::ServerNonInvite(machine), peer),
        );
        self.apply(now, &key, out);
        if cancelled {
            self.events.push_back(TransactionEvent::Cancelled {
                invite: invite_key,
                cancel: req,
            });
        }
    }

    fn handle_response(&mut self, now: Instant, peer: Peer, resp: Response) {
        let Some((_, method)) = resp.cseq() else {
            return;
        };
        let key = TransactionKey::of(&resp, method, Role::Client);
        let mut out = Vec::new();
        match self.txns.get_mut(&key).map(|t| &mut t.machine) {
            Some(Machine::ClientInvite(m)) => m.on_response(resp, &mut out),
            Some(Machine::ClientNonInvite(m)) => m.on_response(resp, &mut out),
            _ => {
                self.events.push_back(TransactionEvent::StrayResponse {
                    response: resp,
                    peer,
                });
                return;
            }
        }
        self.apply(now, &key, out);
    }

    /// Starts a client transaction for `request` (which carries its own top Via with a
    /// branch) towards `peer`, and sends it. An ACK is sent statelessly (no transaction). A
    /// CANCEL also arms the 64*T1 give-up timer of the INVITE it cancels (RFC 3261 §9.1).
    pub fn send_request(&mut self, now: Instant, peer: Peer, request: Request) -> TransactionKey {
        let method = request.method;
        let key = TransactionKey::of(&request, method, Role::Client);
        let bytes = match request_bytes(&request) {
            Ok(b) => Bytes::from(b),
            Err(_) => {
                // The writer refused it (a control character in a header): nothing is sent,
                // and the TU hears of it as of a transport failure.
                if method != Method::Ack {
                    self.events
                        .push_back(TransactionEvent::Timeout { key: key.clone() });
                }
                return key;
            }
        };
        if method == Method::Ack {
            self.transmits.push_back(Transmit { peer, data: bytes });
            return key;
        }
        // A reused key replaces the old transaction.
        self.remove(&key);
        let reliable = peer.transport.is_reliable();
        let mut out = Vec::new();
        if method == Method::Cancel {
            let invite_key = key.with_method(Method::Invite);
            if let Some(Txn {
                machine: Machine::ClientInvite(m),
                ..
            }) = self.txns.get_mut(&invite_key)
            {
                m.on_cancel_sent(&mut out);
                self.apply(now, &invite_key, std::mem::take(&mut out));
            }
        }
        let machine = if method == Method::Invite {
            Machine::ClientInvite(Box::new(ClientInvite::start(
                request,
                bytes,
                reliable,
                self.timers,
                &mut out,
            )))
        } else {
            Machine::ClientNonInvite(ClientNonInvite::start(
                bytes,
                reliable,
                self.timers,
                &mut out,
            ))
        };
        self.txns.insert(key.clone(), Txn::new(machine, peer));
        self.apply(now, &key, out);
        key
    }

    /// Sends `response` through server transaction `key`, to the peer the request came from.
    ///
    /// INVITE: 1xx keeps Proceeding; 2xx moves to Accepted, where the layer retransmits it
    /// (T1 doubling up to T2) until the ACK or Timer L; 300-699 moves to Completed
    /// (Timer G retransmissions, Timer H). Non-INVITE: Trying/Proceeding/Completed, Timer J.
    pub fn send_response(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        response: Response,
    ) -> Result<(), TransactionError> {
        let code = response.status_code.code();
        if !(100..700).contains(&code) {
            return Err(TransactionError::InvalidStatus { code });
        }
        let txn = self
            .txns
            .get_mut(key)
            .ok_or(TransactionError::NoSuchTransaction)?;
        let bytes = Bytes::from(response_bytes(&response).map_err(TransactionError::Unwritable)?);
        let mut out = Vec::new();
        let result = match &mut txn.machine {
            Machine::ServerInvite(m) => {
                let r = m.send_response(code, bytes, &mut out);
                if r.is_ok() {
                    if let Some(tag) = response.to_tag() {
                        txn.to_tag = Some(tag);
                    }
                    if m.state() == ServerInviteState::Accepted {
                        if let Some(d) = &txn.dialog_ack {
                            self.accepted.insert(d.clone(), key.clone());
                        }
                    }
                }
                r
            }
            Machine::ServerNonInvite(m) => m.send_response(code, bytes, &mut out),
            _ => return Err(TransactionError::NoSuchTransaction),
        };
        result.map_err(|e| TransactionError::InvalidState { state: e.0, code })?;
        self.apply(now, key, out);
        Ok(())
    }

    /// Sends a message outside any transaction (the ACK for a 2xx, which the TU builds).
    /// A message the writer refuses (a control character in a header) is not sent.
    pub fn send_stateless(&mut self, peer: Peer, msg: SipMessage) {
        if let Ok(data) = to_bytes(&msg) {
            self.transmits.push_back(Transmit {
                peer,
                data: Bytes::from(data),
            });
        }
    }

    /// The transport could not deliver for transaction `key` (e.g. TCP connect failed). A
    /// client transaction reports [`TransactionEvent::Timeout`]; either kind is terminated.
    pub fn transport_error(&mut self, key: &TransactionKey) {
        if self.remove(key).is_some() && key.is_client() {
            self.events
                .push_back(TransactionEvent::Timeout { key: key.clone() });
        }
    }

    /// Fires every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.deadline > now {
                break;
            }
            let Some(Reverse(entry)) = self.heap.pop() else {
                break;
            };
            let Some(txn) = self.txns.get_mut(&entry.key) else {
                continue;
            };
            let slot = &mut txn.deadlines[entry.timer.index()];
            if *slot != Some(entry.deadline) {
                continue;
            }
            *slot = None;
            let mut out = Vec::new();
            match &mut txn.machine {
                Machine::ClientInvite(m) => m.on_timer(entry.timer, &mut out),
                Machine::ClientNonInvite(m) => m.on_timer(entry.timer, &mut out),
                Machine::ServerInvite(m) => m.on_timer(entry.timer, &mut out),
                Machine::ServerNonInvite(m) => m.on_timer(entry.timer, &mut out),
            }
            // Re-arm relative to `now`: a late caller gets one retransmission, not a burst.
            self.apply(now, &entry.key, out);
        }
    }

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the TU, if any.
    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }

    /// Earliest pending timer deadline (possibly of a cancelled timer: a spurious wake-up is
    /// harmless).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.deadline)
    }
}
