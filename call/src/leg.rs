//! The two kinds of call leg (RFC 3261 §12–§15): [`UacLeg`], a dialog we start with an
//! INVITE, and [`UasLeg`], a dialog a peer starts with an INVITE we answer. Both sit on the
//! transaction layer (they get [`SipEvent`]s already matched to transactions and emit
//! [`SipOutput`]s to start client transactions or answer server ones) and share [`Leg`],
//! the in-dialog part: requests built from [`Dialog`], ACK of 2xx (kept to re-ACK
//! retransmissions), BYE with its outstanding branches, and the checks on requests the
//! peer sends inside the dialog (481, 500 on an old CSeq).
//!
//! # Using a leg alone (one-leg calls)
//! A call that is one leg plus a local media endpoint (fax, app, device, webhook) drives a
//! leg directly:
//! - **Outbound**: [`UacLeg::new`] with the INVITE (its SDP offer already built) and the
//!   trunk's credentials; feed it every [`SipEvent::Response`] and [`SipEvent::Timeout`] of
//!   its Call-ID with [`UacLeg::on_response`] / [`UacLeg::on_timeout`], which classify what
//!   happened ([`UacEvent`]): a provisional (maybe early media), the answer (the leg has
//!   ACKed it and holds the dialog), a failure ([`CallFailure`], digest challenges already
//!   retried up to the limit), or nothing for the caller. [`UacLeg::cancel`] cancels, deferred
//!   until a provisional arrives (RFC 3261 §9.1); [`Leg::bye`] hangs up an answered leg.
//! - **Inbound**: [`UasLeg::new`] with the server transaction and the INVITE; answer with
//!   [`UasLeg::respond`] (provisionals, failures) or [`UasLeg::answer`] (200 with our tag,
//!   the dialog formed), then wait for [`UasLeg::on_ack`]; a CANCEL is
//!   [`UasLeg::on_cancel`] (487 if not answered yet).
//! - In-dialog requests from the peer go through [`Leg::check_request`] (481/500 answered
//!   for you), then the caller answers them with [`Leg::respond`]; a BYE is answered with
//!   200 the same way.
//! - Drain [`Leg::poll_transmit`] after every call; a leg is finished when
//!   [`UacLeg::is_idle`] / [`Leg::is_idle`] says no transaction it cares about is open.
//!
//! Legs hold no timers: the owner keeps the call timers ([`crate::TimerTable`]).

use std::collections::{HashMap, VecDeque};

use rsip::{Header, Method};
use switchboard_sip::dialog::Dialog;
use switchboard_sip::message::{make_cancel, make_response, new_branch, MessageExt};
use switchboard_sip::transaction::TransactionKey;
use switchboard_sip::transport::Peer;

use crate::build;
use crate::outcome::CallFailure;

/// Most ACKs kept for re-sending (one per INVITE CSeq we sent in the dialog).
const MAX_ACKS: usize = 16;
/// Most BYE (and other fire-and-forget) branches tracked per leg.
const MAX_BYES: usize = 8;

/// A SIP event for a leg, as the transaction layer reports it (already matched).
#[derive(Debug, Clone)]
pub enum SipEvent {
    /// A request: `key` is its server transaction (None for an ACK to a 2xx).
    Request {
        /// The server transaction.
        key: Option<TransactionKey>,
        /// The request.
        request: rsip::Request,
        /// Where it came from.
        peer: Peer,
    },
    /// The peer cancelled the INVITE of server transaction `invite` (the layer answered
    /// the CANCEL itself).
    Cancelled {
        /// The INVITE server transaction.
        invite: TransactionKey,
    },
    /// A response to a request we sent (or a retransmitted 2xx).
    Response {
        /// The response.
        response: rsip::Response,
    },
    /// The client transaction with this branch timed out (Timer B/F).
    Timeout {
        /// Its Via branch.
        branch: String,
    },
}

/// SIP to send: a new client transaction, a response on a server transaction, or a
/// message outside any transaction (ACK of a 2xx).
#[derive(Debug, Clone)]
pub enum SipOutput {
    /// Start a client transaction.
    Request {
        /// Where to.
        peer: Peer,
        /// The request.
        request: rsip::Request,
    },
    /// Answer on a server transaction.
    Response {
        /// The server transaction.
        key: TransactionKey,
        /// The response.
        response: rsip::Response,
    },
    /// Send outside a transaction (ACK of a 2xx).
    Stateless {
        /// Where to.
        peer: Peer,
        /// The request.
        request: rsip::Request,
    },
}

/// Digest credentials for a trunk (RFC 3261 §22.2).
#[derive(Clone)]
pub struct Credentials {
    /// Username.
    pub user: String,
    /// Password (never logged).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Why a request from the peer was refused by [`Leg::check_request`] (already answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LegError {
    /// No dialog (yet, or any more): answered 481.
    #[error("no dialog for the request (481)")]
    NoDialog,
    /// The CSeq is not higher than the last one: answered 500.
    #[error("CSeq out of order (500)")]
    OutOfOrder,
    /// The request has no server transaction to answer on.
    #[error("request without a transaction")]
    NoTransaction,
}

/// The in-dialog part shared by both legs.
#[derive(Debug)]
pub struct Leg {
    /// The signalling peer.
    pub peer: Peer,
    /// Via sent-by for requests we start.
    pub via_host: String,
    /// Our Contact URI.
    pub contact: String,
    /// The leg's Call-ID.
    pub call_id: String,
    /// The dialog, once formed.
    pub dialog: Option<Dialog>,
    acks: HashMap<u32, rsip::Request>,
    byes: Vec<String>,
    out: VecDeque<SipOutput>,
}

impl Leg {
    fn new(peer: Peer, via_host: String, contact: String, call_id: String) -> Self {
        Self {
            peer,
            via_host,
            contact,
            call_id,
            dialog: None,
            acks: HashMap::new(),
            byes: Vec::new(),
            out: VecDeque::new(),
        }
    }

    /// The next SIP message to send.
    pub fn poll_transmit(&mut self) -> Option<SipOutput> {
        self.out.pop_front()
    }

    /// Answer a request of this leg on its server transaction.
    pub fn respond(&mut self, key: TransactionKey, response: rsip::Response) {
        self.out.push_back(SipOutput::Response { key, response });
    }

    /// Answer `req` with a bare `code`.
    pub fn respond_code(&mut self, key: TransactionKey, req: &rsip::Request, code: u16) {
        let response = make_response(req, code, None);
        self.respond(key, response);
    }

    /// Check an in-dialog request from the peer: without a dialog it is answered 481,
    /// with an old CSeq 500 (RFC 3261 §12.2.2); else the dialog learns its CSeq (and new
    /// target for INVITE/UPDATE) and the caller answers it.
    pub fn check_request(
        &mut self,
        key: &TransactionKey,
        req: &rsip::Request,
    ) -> Result<(), LegError> {
        let verdict = match self.dialog.as_mut().map(|d| d.accept_remote_request(req)) {
            None => Err((LegError::NoDialog, 481)),
            Some(true) => Ok(()),
            Some(false) => Err((LegError::OutOfOrder, 500)),
        };
        verdict.map_err(|(err, code)| {
            self.respond_code(key.clone(), req, code);
            err
        })
    }

    /// Send a new in-dialog request (`method`, with `body` and its content type), returning
    /// its branch; `None` without a dialog.
    pub fn request(
        &mut self,
        method: Method,
        extra: rsip::Headers,
        body: Vec<u8>,
        content_type: Option<String>,
    ) -> Option<String> {
        let branch = new_branch();
        let d = self.dialog.as_mut()?;
        let mut req = d.make_request(
            method,
            &self.via_host,
            self.peer.transport,
            &branch,
            &self.contact,
        );
        req.headers.extend(extra.into_iter().collect());
        if !body.is_empty() {
            if let Some(ct) = content_type {
                req.headers.push(Header::ContentType(ct.into()));
            }
        }
        req.body = body;
        self.out.push_back(SipOutput::Request {
            peer: self.peer,
            request: req,
        });
        Some(branch)
    }

    /// ACK a 2xx to the INVITE with CSeq `cseq` we sent in this dialog, keeping the ACK to
    /// answer retransmissions of that 2xx (RFC 3261 §13.2.2.4).
    pub fn ack_2xx(&mut self, cseq: u32) {
        let Some(d) = self.dialog.as_ref() else {
            return;
        };
        let ack = d.make_ack(
            cseq,
            &self.via_host,
            self.peer.transport,
            &new_branch(),
            &self.contact,
        );
        if self.acks.len() >= MAX_ACKS && !self.acks.contains_key(&cseq) {
            if let Some(oldest) = self.acks.keys().min().copied() {
                self.acks.remove(&oldest);
            }
        }
        self.acks.insert(cseq, ack.clone());
        self.out.push_back(SipOutput::Stateless {
            peer: self.peer,
            request: ack,
        });
    }

    /// A 2xx to an INVITE we already ACKed (a retransmission): ACK it again. True when it
    /// was one.
    pub fn reack(&mut self, cseq: u32) -> bool {
        let Some(ack) = self.acks.get(&cseq).cloned() else {
            return false;
        };
        self.out.push_back(SipOutput::Stateless {
            peer: self.peer,
            request: ack,
        });
        true
    }

    /// Send BYE if the dialog is confirmed; the branch is tracked until its final response
    /// or timeout. False when there is no dialog.
    pub fn bye(&mut self) -> bool {
        if self.byes.len() >= MAX_BYES {
            return false;
        }
        let Some(branch) = self.request(Method::Bye, rsip::Headers::default(), Vec::new(), None)
        else {
            return false;
        };
        self.byes.push(branch);
        true
    }

    /// A response or timeout on `branch` ends one of our BYEs (true: it was one).
    fn end_bye(&mut self, branch: &str, final_: bool) -> bool {
        match self.byes.iter().position(|b| b == branch) {
            Some(pos) => {
                if final_ {
                    self.byes.remove(pos);
                }
                true
            }
            None => false,
        }
    }

    /// No BYE of ours awaits its answer.
    pub fn is_idle(&self) -> bool {
        self.byes.is_empty()
    }

    /// Stop waiting for BYE answers (the guard timer fired).
    pub fn abandon(&mut self) {
        self.byes.clear();
    }
}

/// What a response or timeout meant for a [`UacLeg`]'s INVITE.
#[derive(Debug, Clone, PartialEq)]
pub enum UacEvent {
    /// Nothing for the owner (a retransmission, our BYE's answer, a 100, a stray).
    None,
    /// A provisional (101-199) to the INVITE; the early dialog is formed when it has a tag.
    Provisional(rsip::Response),
    /// A 2xx: the leg has ACKed it and holds the confirmed dialog.
    Answered(rsip::Response),
    /// The INVITE failed (after digest retries); `status` is the code received.
    Failed {
        /// Why.
        failure: CallFailure,
        /// The final status received, if any (`None` for Timer B).
        status: Option<u16>,
    },
    /// A 2xx arrived after we gave up on the call (cancelled, hung up): the leg ACKed it
    /// and sent BYE.
    AnsweredLate,
    /// The 2xx cannot form a dialog.
    BadAnswer(rsip::Response),
}

/// A leg we start with an INVITE (we are the UAC).
#[derive(Debug)]
pub struct UacLeg {
    /// The in-dialog part.
    pub leg: Leg,
    invite: rsip::Request,
    credentials: Option<Credentials>,
    auth_tries: u8,
    max_auth_tries: u8,
    provisional: bool,
    cancel_pending: bool,
    cancel_sent: bool,
    invite_done: bool,
    /// The owner has given up on the call: a late 2xx is ACKed and BYEd.
    abandoned: bool,
}

impl UacLeg {
    /// Start the leg: the INVITE goes out at once. `max_auth_tries` bounds the digest
    /// retries (each answered challenge is one).
    pub fn new(
        peer: Peer,
        via_host: String,
        contact: String,
        invite: rsip::Request,
        credentials: Option<Credentials>,
        max_auth_tries: u8,
    ) -> Self {
        let call_id = invite.call_id().unwrap_or_default();
        let mut leg = Leg::new(peer, via_host, contact, call_id);
        leg.out.push_back(SipOutput::Request {
            peer,
            request: invite.clone(),
        });
        Self {
            leg,
            invite,
            credentials,
            auth_tries: 0,
            max_auth_tries,
            provisional: false,
            cancel_pending: false,
            cancel_sent: false,
            invite_done: false,
            abandoned: false,
        }
    }

    /// The INVITE as last sent (with credentials after a challenge).
    pub fn invite(&self) -> &rsip::Request {
        &self.invite
    }

    /// A provisional (or a final) came back for the current INVITE.
    pub fn has_provisional(&self) -> bool {
        self.provisional
    }

    /// The INVITE transaction is over (final response or Timer B).
    pub fn invite_done(&self) -> bool {
        self.invite_done
    }

    /// Confirmed: a 2xx was received and ACKed.
    pub fn is_confirmed(&self) -> bool {
        self.invite_done && self.leg.dialog.is_some()
    }

    /// Nothing outstanding: INVITE over and no BYE waiting.
    pub fn is_idle(&self) -> bool {
        self.invite_done && self.leg.is_idle()
    }

    fn invite_branch(&self) -> Option<String> {
        self.invite.top_via_branch()
    }

    /// Give up on the INVITE: CANCEL it if a provisional came back, else as soon as one
    /// does (RFC 3261 §9.1); a 2xx that still arrives is ACKed and BYEd.
    pub fn cancel(&mut self) {
        self.abandoned = true;
        self.cancel_pending = true;
        if self.invite_done || self.cancel_sent || !self.provisional {
            return;
        }
        self.cancel_sent = true;
        self.leg.out.push_back(SipOutput::Request {
            peer: self.leg.peer,
            request: make_cancel(&self.invite),
        });
    }

    /// End the leg whatever its state: BYE when confirmed, CANCEL before.
    pub fn hangup(&mut self) {
        self.abandoned = true;
        if self.is_confirmed() {
            self.leg.bye();
        } else {
            self.cancel();
        }
    }

    /// Stop waiting (the guard timer fired): the INVITE and BYEs count as over.
    pub fn abandon(&mut self) {
        self.abandoned = true;
        self.invite_done = true;
        self.leg.abandon();
    }

    /// A response for this leg's Call-ID.
    pub fn on_response(&mut self, resp: &rsip::Response) -> UacEvent {
        let (Some(branch), Some((cseq, method))) = (resp.top_via_branch(), resp.cseq()) else {
            return UacEvent::None;
        };
        let code = resp.status_code.code();
        if self.leg.end_bye(&branch, code >= 200) {
            return UacEvent::None;
        }
        if method == Method::Invite && (200..300).contains(&code) && self.leg.reack(cseq) {
            return UacEvent::None;
        }
        if method != Method::Invite || self.invite_branch().as_deref() != Some(branch.as_str()) {
            return UacEvent::None;
        }
        if code < 200 {
            return self.on_provisional(resp, code);
        }
        self.provisional = true;
        self.invite_done = true;
        if code < 300 {
            return self.on_2xx(resp, cseq);
        }
        if (code == 401 || code == 407) && !self.abandoned && self.retry_with_auth(resp) {
            return UacEvent::None;
        }
        UacEvent::Failed {
            failure: CallFailure::from_status(code),
            status: Some(code),
        }
    }

    fn on_provisional(&mut self, resp: &rsip::Response, code: u16) -> UacEvent {
        self.provisional = true;
        if self.cancel_pending {
            if !self.cancel_sent {
                self.cancel();
            }
            return UacEvent::None;
        }
        if code == 100 {
            return UacEvent::None;
        }
        if resp.to_tag().is_some() && self.leg.dialog.is_none() {
            self.leg.dialog = Dialog::uac(&self.invite, resp).ok();
        }
        UacEvent::Provisional(resp.clone())
    }

    fn on_2xx(&mut self, resp: &rsip::Response, cseq: u32) -> UacEvent {
        match Dialog::uac(&self.invite, resp) {
            Ok(d) => self.leg.dialog = Some(d),
            Err(_) => return UacEvent::BadAnswer(resp.clone()),
        }
        self.leg.ack_2xx(cseq);
        if self.abandoned {
            self.leg.bye();
            return UacEvent::AnsweredLate;
        }
        UacEvent::Answered(resp.clone())
    }

    fn retry_with_auth(&mut self, resp: &rsip::Response) -> bool {
        let Some(c) = self.credentials.as_ref() else {
            return false;
        };
        if self.auth_tries >= self.max_auth_tries {
            return false;
        }
        let Some(invite) = build::with_credentials(
            &self.invite,
            resp,
            &c.user,
            &c.password,
            &self.leg.via_host,
            self.leg.peer.transport,
        ) else {
            return false;
        };
        self.auth_tries += 1;
        self.invite = invite.clone();
        self.provisional = false;
        self.invite_done = false;
        self.leg.out.push_back(SipOutput::Request {
            peer: self.leg.peer,
            request: invite,
        });
        true
    }

    /// A client transaction of this leg timed out. For the INVITE: a failure, Timer B
    /// before any provisional being [`CallFailure::TrunkTimeout`] (the trunk is
    /// unreachable) and after one [`CallFailure::Timeout`].
    pub fn on_timeout(&mut self, branch: &str) -> UacEvent {
        if self.leg.end_bye(branch, true) {
            return UacEvent::None;
        }
        if self.invite_branch().as_deref() != Some(branch) || self.invite_done {
            return UacEvent::None;
        }
        self.invite_done = true;
        let failure = if self.provisional {
            CallFailure::Timeout
        } else {
            CallFailure::TrunkTimeout
        };
        UacEvent::Failed {
            failure,
            status: None,
        }
    }
}

/// A leg a peer started with an INVITE (we are the UAS).
#[derive(Debug)]
pub struct UasLeg {
    /// The in-dialog part.
    pub leg: Leg,
    invite: rsip::Request,
    key: TransactionKey,
    tag: String,
    final_sent: bool,
    ack_pending: bool,
}

impl UasLeg {
    /// A leg for the INVITE of server transaction `key` from `peer`, answered with our
    /// To tag `tag`.
    pub fn new(
        peer: Peer,
        via_host: String,
        contact: String,
        key: TransactionKey,
        invite: rsip::Request,
        tag: String,
    ) -> Self {
        let call_id = invite.call_id().unwrap_or_default();
        Self {
            leg: Leg::new(peer, via_host, contact, call_id),
            invite,
            key,
            tag,
            final_sent: false,
            ack_pending: false,
        }
    }

    /// The INVITE.
    pub fn invite(&self) -> &rsip::Request {
        &self.invite
    }

    /// Its server transaction.
    pub fn key(&self) -> &TransactionKey {
        &self.key
    }

    /// Our To tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// A final response was sent.
    pub fn final_sent(&self) -> bool {
        self.final_sent
    }

    /// Our 2xx awaits its ACK.
    pub fn ack_pending(&self) -> bool {
        self.ack_pending
    }

    /// Respond to the INVITE with `code` (no-op after a final): our tag, our Contact on
    /// 1xx/2xx, the SDP if any, and `extra` headers.
    pub fn respond(&mut self, code: u16, sdp: Option<Vec<u8>>, extra: rsip::Headers) {
        if self.final_sent {
            return;
        }
        if code >= 200 {
            self.final_sent = true;
        }
        let contact = (code < 300).then_some(self.leg.contact.as_str());
        let mut resp = build::response_to(&self.invite, code, Some(&self.tag), contact, sdp);
        resp.headers.extend(extra.into_iter().collect());
        self.leg.respond(self.key.clone(), resp);
    }

    /// Answer 200 and form the dialog; an INVITE that cannot form one is answered 400
    /// and [`CallFailure::BadCallerDialog`] returned.
    pub fn answer(
        &mut self,
        sdp: Option<Vec<u8>>,
        extra: rsip::Headers,
    ) -> Result<(), CallFailure> {
        if self.final_sent {
            return Err(CallFailure::Internal);
        }
        match Dialog::uas(&self.invite, &self.tag) {
            Ok(d) => self.leg.dialog = Some(d),
            Err(_) => {
                self.respond(400, None, rsip::Headers::default());
                return Err(CallFailure::BadCallerDialog);
            }
        }
        self.respond(200, sdp, extra);
        self.ack_pending = true;
        Ok(())
    }

    /// The ACK of our 2xx arrived.
    pub fn on_ack(&mut self) {
        self.ack_pending = false;
    }

    /// The peer cancelled the INVITE: 487 if no final was sent (true then).
    pub fn on_cancel(&mut self) -> bool {
        if self.final_sent {
            return false;
        }
        self.respond(487, None, rsip::Headers::default());
        true
    }

    /// End the leg: BYE when answered (true), else nothing to do here (the owner answers
    /// the INVITE with a failure).
    pub fn hangup(&mut self) -> bool {
        self.leg.dialog.is_some() && self.leg.bye()
    }

    /// A response for this leg's Call-ID (our BYE's, a retransmitted 2xx to a re-INVITE
    /// we sent): handled here; true when it was ours.
    pub fn on_response(&mut self, resp: &rsip::Response) -> bool {
        let (Some(branch), Some((cseq, method))) = (resp.top_via_branch(), resp.cseq()) else {
            return false;
        };
        let code = resp.status_code.code();
        if self.leg.end_bye(&branch, code >= 200) {
            return true;
        }
        method == Method::Invite && (200..300).contains(&code) && self.leg.reack(cseq)
    }

    /// A timeout on one of our BYEs (true when it was one).
    pub fn on_timeout(&mut self, branch: &str) -> bool {
        self.leg.end_bye(branch, true)
    }
}
