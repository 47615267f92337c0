//! The timers of an [`EndpointCore`]: no answer, the ACK wait of our 2xx (64·T1), the T.38
//! switch and deadline, the call's maximum length, the credit reservation, the RTP check
//! (`[media] rtp_timeout_secs`) and the BYE guard of an ending call (RFC 3261 §13.3.1.4,
//! §17.2.1 for the ACK wait).

use std::time::Instant;

use super::{EndpointCore, EndpointEvent, Role, T38Failure, T38State};
use crate::api::Phase;
use crate::outcome::{CallFailure, HangupCause, Outcome};
use crate::timer::{rtp_next_check, Timer};

impl EndpointCore {
    /// Handle one timer; true when the rest of this instant's timers are moot.
    pub(super) fn on_timer(&mut self, now: Instant, t: Timer) -> bool {
        let answered = self.phase == Phase::Answered;
        match t {
            Timer::ByeGuard => {
                match &mut self.role {
                    Role::Inbound(u) => u.leg.abandon(),
                    Role::Outbound(Some(u)) => u.abandon(),
                    Role::Outbound(None) => {}
                }
                return true;
            }
            Timer::NoAnswer => {
                if matches!(self.phase, Phase::Trying | Phase::Ringing) {
                    self.cancel();
                    self.respond(480, None);
                    self.finish(
                        Outcome::Failed(CallFailure::NoAnswer { status: 408 }),
                        Some(408),
                    );
                }
            }
            Timer::AckWait if answered => {
                self.bye();
                self.finish(Outcome::Ended(HangupCause::NoAck), None);
            }
            Timer::T38Switch if answered && self.t38 == T38State::Audio => self.offer_t38(),
            Timer::T38Deadline if answered && self.t38 != T38State::Active => {
                self.emit(EndpointEvent::T38Failed(T38Failure::Timeout));
                self.bye();
                self.finish(Outcome::Ended(HangupCause::NoT38), None);
            }
            Timer::MaxDuration if answered => {
                self.bye();
                self.finish(Outcome::Ended(HangupCause::MaxDuration), None);
            }
            Timer::CreditDeadline if answered => {
                self.emit(EndpointEvent::CreditExhausted);
                self.bye();
                self.finish(Outcome::Ended(HangupCause::CreditExhausted), None);
            }
            Timer::RtpCheck if answered => self.check_rtp(now),
            _ => {}
        }
        false
    }

    /// `[media] rtp_timeout_secs`: hang up when the far end has sent nothing for that long
    /// (held calls, and fax calls before T.38, whose audio nobody reads, are exempt).
    fn check_rtp(&mut self, now: Instant) {
        let Some(timeout) = self.config.timing.rtp_timeout else {
            return;
        };
        let fax_audio = self.fax() && self.t38 != T38State::Active;
        let exempt = self.held || fax_audio;
        let next = rtp_next_check(now, timeout, exempt, self.rtp_since, self.media_activity);
        if let Some(at) = next {
            return self.timers.set(Timer::RtpCheck, at);
        }
        self.emit(EndpointEvent::RtpTimeout);
        self.bye();
        self.finish(Outcome::Ended(HangupCause::RtpTimeout), None);
    }
}
