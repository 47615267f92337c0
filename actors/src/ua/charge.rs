//! Charging the calls the gateway places itself (a device's `dial`, an ingest `call:`
//! stream, any later originator of an audio call) exactly like a B2BUA call (issue 11): the
//! route is rated before the trunk is dialled, the payer must afford the first block
//! (admission), the longest affordable call is reserved on answer and the call released
//! when it runs out, and the real cost is posted when it ends, before the CDR
//! (see [`crate::call::charge`], whose steps these are).
//!
//! Nobody has proven a number on these calls (a device's `from`, a stream's `start.from`
//! are claims): the payer is the route's or `[billing]`'s fixed account, never `caller`
//! ([`crate::billing::Origin::Unproven`]). Fax jobs are charged per page by the fax
//! supervisor, not per minute here.

use std::time::{Duration, Instant};

use switchboard_call::{CallFailure, EndpointCommand, HangupCause};
use switchboard_config::{RouteConfig, TrunkConfig};

use super::{UaMode, UaState};
use crate::billing::{rate_call, Charge, Origin};
use crate::call::charge::{spawn_admission, spawn_reservation, ChargeEvent, Charging};
use crate::context::mask_number;

impl UaState {
    /// Whether the call may send its INVITE through `trunk` now. A rated call asks the
    /// ledger first and dials again when [`ChargeEvent::Admitted`] comes back; a call that
    /// nobody pays for ends here with `[billing] reject_status`.
    pub(super) fn admitted(
        &mut self,
        now: Instant,
        route: &RouteConfig,
        trunk: &TrunkConfig,
    ) -> bool {
        if self.mode == UaMode::Fax || self.admitted {
            return true;
        }
        let refuse = self.ctx.config.billing.reject_status;
        match rate_call(&self.ctx.config, route, trunk, Origin::Unproven, &self.src) {
            Charge::Free => true,
            Charge::NoAccount => {
                tracing::warn!(call = %self.id, dst = %mask_number(&self.dst), "rated route without a payer for a call the gateway places: set a fixed account on the route or [billing]");
                metrics::counter!("switchboard_calls_refused_total", "cause" => "no account")
                    .increment(1);
                let failure = CallFailure::NoAccount { status: refuse };
                self.fail(now, failure, Some(refuse));
                false
            }
            Charge::Rated(rating) => {
                if self.charging.is_some() {
                    return false; // asked already; the answer is on its way
                }
                let Some(ledger) = self.ctx.ledger.clone() else {
                    self.fail(now, CallFailure::LedgerUnavailable, Some(503));
                    return false;
                };
                spawn_admission(ledger, &rating, refuse, self.myself.clone());
                self.charging = Some(Charging {
                    rating,
                    number: None,
                    reserved: None,
                    answered_at: None,
                    credit_until: None,
                });
                false
            }
        }
    }

    /// What the ledger answered.
    pub(super) fn on_charge(&mut self, now: Instant, ev: ChargeEvent) {
        let ending = self.core.phase() == switchboard_call::Phase::Ending;
        match ev {
            ChargeEvent::Admitted(_) if ending => {}
            ChargeEvent::Admitted(Ok(())) => {
                self.admitted = true;
                self.dial(now);
            }
            ChargeEvent::Admitted(Err(failure)) => {
                let account = self
                    .charging
                    .as_ref()
                    .map(|c| mask_number(&c.rating.account))
                    .unwrap_or_default();
                tracing::info!(call = %self.id, %account, cause = %failure, "call refused by the ledger");
                metrics::counter!("switchboard_calls_refused_total", "cause" => failure.as_str())
                    .increment(1);
                self.fail(now, failure, Some(failure.status()));
            }
            ChargeEvent::Reserved(Ok(r)) => {
                if let Some(c) = self.charging.as_mut() {
                    c.reserved = Some(r);
                    c.credit_until = c.answered_at.map(|t| t + Duration::from_secs(r.secs));
                    let secs = Duration::from_secs(r.secs);
                    self.command(now, EndpointCommand::Reserved(Ok(secs)));
                }
            }
            ChargeEvent::Reserved(Err(cause)) => {
                tracing::info!(call = %self.id, %cause, "no reservation on answer; releasing the call");
                metrics::counter!("switchboard_calls_refused_total", "cause" => cause.as_str())
                    .increment(1);
                self.command(now, EndpointCommand::Reserved(Err(cause)));
            }
        }
    }

    /// On answer: reserve what the payer can afford (a rated call only).
    pub(super) fn reserve(&mut self, now: Instant) {
        let (Some(c), Some(ledger)) = (self.charging.as_mut(), self.ctx.ledger.clone()) else {
            return;
        };
        if c.answered_at.is_some() {
            return;
        }
        c.answered_at = Some(now);
        if !spawn_reservation(&ledger, &self.id, &c.rating, self.myself.clone()) {
            self.on_charge(now, ChargeEvent::Reserved(Err(HangupCause::LedgerError)));
        }
    }

    /// Post the real cost or void the reservation; the account and what was charged, for
    /// the CDR (`None` for a call that is not rated).
    pub(super) async fn settle(&mut self) -> Option<(String, u64)> {
        crate::call::charge::settle(&self.ctx, &self.id, self.charging.as_ref()).await
    }
}
