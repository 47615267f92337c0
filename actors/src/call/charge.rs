//! Charging a rated call against the credits ledger (the design's "reserve on answer, post
//! on hangup, void on failure"):
//!
//! 1. **Admission**, before the trunk is dialled: the payer's account must exist and afford
//!    the first billing block, or the caller gets `[billing] reject_status` (402 or 403).
//! 2. **Reservation**, on answer: one pending transfer for the longest call the balance pays
//!    for (at most `max_call_secs`), read and written by the ledger actor with nothing in
//!    between, so concurrent calls never spend the same credit. The call is released with
//!    cause `credit exhausted` when that time is up, or at once (`no credit`) when the
//!    reservation is refused.
//! 3. **Settlement**, when the call ends: the real cost (capped at the reservation) is posted,
//!    or the reservation voided when nothing is owed, before the CDR is written. A call that
//!    never answered reserved nothing. If the gateway dies mid-call (`kill -9`), the call
//!    journal settles the reservation at the next start for the time up to the journal's last
//!    checkpoint ([`crate::journal`]), with the same fixed transfer ids, so an interrupted call
//!    is never charged twice, nor more than it reserved.
//!
//! The three steps are free functions ([`spawn_admission`], [`spawn_reservation`],
//! [`settle_reservation`]) shared by every originator: the B2BUA call here, and the calls the
//! gateway places itself for a device's dial or an ingest `call:` stream
//! ([`crate::ua::UaCall`], issue 11).

use std::time::{Duration, Instant};

use ractor::rpc::CallResult;
use ractor::{ActorRef, RpcReplyPort};
use switchboard_call::{CallFailure, Command, HangupCause};

use super::{CallMsg, CallState};
use crate::billing::{refusal, Rating, CALLS_ACCOUNT, LEDGER_WAIT};
pub use crate::call_msg::{ChargeEvent, ChargeView};
use crate::context::mask_number;
use crate::ledger::{LedgerMsg, Reservation};
/// How long a reservation outlives the call's longest duration before it lapses.
const RESERVATION_GRACE_SECS: u64 = 300;

/// A rated call's charging state.
#[derive(Debug)]
pub(crate) struct Charging {
    pub rating: Rating,
    /// The number to dial once admitted.
    pub number: Option<String>,
    pub reserved: Option<Reservation>,
    /// When the callee answered; set when the reservation is asked for, so also "a
    /// reservation was asked for".
    pub answered_at: Option<Instant>,
    /// When the reservation runs out.
    pub credit_until: Option<Instant>,
}

/// The id of call `call`'s reservation (pending transfer).
pub(crate) fn pending_id(call: &super::CallId) -> String {
    call.pending_id()
}

/// Admission: ask the ledger whether `rating`'s payer affords the first block; the verdict
/// comes back to `me` as [`ChargeEvent::Admitted`] (`refuse` as the status when it does not;
/// 503 when the ledger cannot say).
pub(crate) fn spawn_admission(
    ledger: ActorRef<LedgerMsg>,
    rating: &Rating,
    refuse: u16,
    me: ActorRef<CallMsg>,
) {
    let account = rating.account.clone();
    let need = rating.tariff.admission_cost();
    tokio::spawn(async move {
        let answer = ledger
            .call(
                |reply| LedgerMsg::Account(account, reply),
                Some(LEDGER_WAIT),
            )
            .await;
        let verdict = match answer {
            Ok(CallResult::Success(Ok(Some(a)))) if a.available() >= i128::from(need) => Ok(()),
            Ok(CallResult::Success(Ok(Some(_)))) => Err(CallFailure::NoCredit { status: refuse }),
            Ok(CallResult::Success(Ok(None))) => Err(CallFailure::NoAccount { status: refuse }),
            _ => Err(CallFailure::LedgerError),
        };
        let _ = me.send_message(CallMsg::Charge(ChargeEvent::Admitted(verdict)));
    });
}

/// Reservation for call `id`, answered: the reservation comes back to `me` as
/// [`ChargeEvent::Reserved`]. Sent to the ledger from the caller's own task, so a settlement
/// sent later reaches the ledger after it. False when the ledger is gone.
pub(crate) fn spawn_reservation(
    ledger: &ActorRef<LedgerMsg>,
    id: &super::CallId,
    rating: &Rating,
    me: ActorRef<CallMsg>,
) -> bool {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let msg = LedgerMsg::Reserve {
        id: pending_id(id),
        account: rating.account.clone(),
        credit_account: CALLS_ACCOUNT.to_string(),
        tariff: rating.tariff,
        grace_secs: RESERVATION_GRACE_SECS,
        reference: id.to_string(),
        reply: RpcReplyPort::from(tx),
    };
    if ledger.send_message(msg).is_err() {
        return false;
    }
    tokio::spawn(async move {
        let r = match tokio::time::timeout(LEDGER_WAIT, rx).await {
            Ok(Ok(r)) => {
                r.map_err(|e| HangupCause::parse(refusal(&e)).unwrap_or(HangupCause::LedgerError))
            }
            _ => Err(HangupCause::LedgerError),
        };
        let _ = me.send_message(CallMsg::Charge(ChargeEvent::Reserved(r)));
    });
    true
}

/// Settlement of call `id`, answered at `answered_at`: post the real cost (capped at the
/// reservation, read from the ledger when its answer has not arrived yet) or void it; what
/// was charged (0 when nothing was, or the settlement failed and the reservation lapses).
pub(crate) async fn settle_reservation(
    ledger: &ActorRef<LedgerMsg>,
    id: &super::CallId,
    rating: &Rating,
    answered_at: Instant,
    now: Instant,
    reserved: Option<Reservation>,
) -> u64 {
    let pending = pending_id(id);
    let reserved = match reserved {
        Some(r) => Some(r.amount),
        // The answer is still on its way: the ledger has handled the reservation before
        // this read (one mailbox, in order), so read what it made.
        None => {
            let tid = pending.clone();
            match ledger
                .call(|reply| LedgerMsg::Transfer(tid, reply), Some(LEDGER_WAIT))
                .await
            {
                Ok(CallResult::Success(Ok(t))) => t.map(|t| t.amount),
                _ => None,
            }
        }
    };
    let Some(reserved) = reserved else {
        return 0;
    };
    let ms =
        u64::try_from(now.saturating_duration_since(answered_at).as_millis()).unwrap_or(u64::MAX);
    let cost = rating.tariff.cost(ms).min(reserved);
    match crate::billing::settle(ledger, &pending, cost, &id.to_string()).await {
        Ok(()) => {
            metrics::counter!("switchboard_call_credits_charged_total").increment(cost);
            cost
        }
        Err(err) => {
            // The reservation lapses at its timeout: the call is not charged.
            tracing::warn!(call = %id, err, "could not settle the call's reservation");
            0
        }
    }
}

impl Charging {
    pub(crate) fn view(&self) -> ChargeView {
        ChargeView {
            account: self.rating.account.clone(),
            price_per_minute: self.rating.tariff.price_per_minute,
        }
    }
}

impl CallState {
    /// Ask the ledger whether the payer can afford the first block; the answer comes back
    /// as [`ChargeEvent::Admitted`] and the call dials only then.
    pub(super) fn ask_admission(&mut self, now: Instant, rating: Rating, number: String) {
        let Some(ledger) = self.ctx.ledger.clone() else {
            return self.fail(now, CallFailure::LedgerUnavailable);
        };
        // No payer or no credit: the configured refusal; an unreachable ledger is our
        // failure, not the caller's (503).
        let refuse = self.ctx.config.billing.reject_status;
        spawn_admission(ledger, &rating, refuse, self.myself.clone());
        self.charging = Some(Charging {
            rating,
            number: Some(number),
            reserved: None,
            answered_at: None,
            credit_until: None,
        });
    }

    /// Reserve for the call answered at `answered_at`. Sent from the actor itself, so the
    /// settlement sent later reaches the ledger after it.
    pub(super) fn reserve(&mut self, answered_at: Instant) {
        let (Some(c), Some(ledger)) = (self.charging.as_mut(), self.ctx.ledger.clone()) else {
            return;
        };
        if c.answered_at.is_some() {
            return;
        }
        c.answered_at = Some(answered_at);
        if !spawn_reservation(&ledger, &self.id, &c.rating, self.myself.clone()) {
            self.on_charge(
                answered_at,
                ChargeEvent::Reserved(Err(HangupCause::LedgerError)),
            );
        }
    }

    pub(super) fn on_charge(&mut self, now: Instant, ev: ChargeEvent) {
        match ev {
            ChargeEvent::Admitted(verdict) => {
                let number = self.charging.as_mut().and_then(|c| c.number.take());
                if self.core.phase() == switchboard_call::Phase::Ending {
                    return;
                }
                match (verdict, number) {
                    (Ok(()), Some(number)) => self.dial(now, number),
                    (Ok(()), None) => {}
                    (Err(failure), _) => {
                        let account = self
                            .charging
                            .as_ref()
                            .map(|c| mask_number(&c.rating.account))
                            .unwrap_or_default();
                        tracing::info!(call = %self.id, %account, cause = %failure, "call refused by the ledger");
                        metrics::counter!("switchboard_calls_refused_total", "cause" => failure.as_str())
                            .increment(1);
                        self.fail(now, failure);
                    }
                }
            }
            ChargeEvent::Reserved(Ok(r)) => {
                let Some(c) = self.charging.as_mut() else {
                    return;
                };
                c.reserved = Some(r);
                c.credit_until = c.answered_at.map(|t| t + Duration::from_secs(r.secs));
                tracing::debug!(call = %self.id, amount = r.amount, secs = r.secs, "credit reserved");
                self.command(now, Command::Reserved(Ok(Duration::from_secs(r.secs))));
            }
            ChargeEvent::Reserved(Err(cause)) => {
                tracing::info!(call = %self.id, %cause, "no reservation on answer; releasing the call");
                metrics::counter!("switchboard_calls_refused_total", "cause" => cause.as_str())
                    .increment(1);
                self.command(now, Command::Reserved(Err(cause)));
            }
        }
    }

    /// Post the real cost (capped at the reservation) or void the reservation; returns the
    /// account and what was charged, for the CDR.
    pub(super) async fn settle(&mut self) -> Option<(String, u64)> {
        settle(&self.ctx, &self.id, self.charging.as_ref()).await
    }
}

/// Settle a call's charging at its end, for both call actors ([`crate::call`] and
/// [`crate::ua`]): `None` for an unrated call, else its account and what was charged (0 when
/// it was never answered or there is no ledger).
pub(crate) async fn settle(
    ctx: &crate::context::CallContext,
    id: &super::CallId,
    charging: Option<&Charging>,
) -> Option<(String, u64)> {
    let c = charging?;
    let account = c.rating.account.clone();
    let (Some(answered_at), Some(ledger)) = (c.answered_at, ctx.ledger.as_ref()) else {
        return Some((account, 0));
    };
    let now = ctx.clock.now();
    let cost = settle_reservation(ledger, id, &c.rating, answered_at, now, c.reserved).await;
    Some((account, cost))
}

/// Journal a call answered now in the crash journal ([`crate::journal`]); the answer hook of
/// [`crate::call`] and [`crate::ua`]:
/// `snap` is the call as of its answer, `charging` its rating, for a rated call.
pub(crate) fn on_answer(
    ctx: &crate::context::CallContext,
    snap: &crate::call_msg::CallSnapshot,
    charging: Option<&Charging>,
) -> Option<crate::journal::JournalTicket> {
    let answered_ms = snap.answer_ms.unwrap_or_else(|| ctx.clock.unix_ms());
    let cdr = snap.cdr_at(
        ctx.clock.unix_ms(),
        switchboard_storage::Disposition::Answered,
        crate::journal::CRASH_CAUSE,
        None,
    );
    ctx.journal
        .answered(cdr, snap.start_ms, answered_ms, charging.map(|c| &c.rating))
}
