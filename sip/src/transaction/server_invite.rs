//! INVITE server transaction (RFC 3261 §17.2.1, Figure 7, as amended by RFC 6026 §7.1), with
//! the 2xx retransmissions of RFC 3261 §13.3.1.4 done while in Accepted.

use super::{Action, Timer, Timers};
use bytes::Bytes;
use std::time::Duration;

/// States of Figure 7 plus Accepted (RFC 6026).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerInviteState {
    /// INVITE received (100 Trying sent); the TU may send provisionals.
    Proceeding,
    /// A 300-699 was sent; Timer G retransmits it (unreliable) until the ACK, Timer H guards.
    Completed,
    /// The ACK for the 300-699 arrived; Timer I absorbs ACK retransmissions.
    Confirmed,
    /// A 2xx was sent (RFC 6026); it is retransmitted until the ACK, Timer L guards.
    Accepted,
    /// Done; the layer removes the transaction.
    Terminated,
}

impl ServerInviteState {
    /// The RFC name of the state.
    pub fn name(self) -> &'static str {
        match self {
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Confirmed => "Confirmed",
            Self::Accepted => "Accepted",
            Self::Terminated => "Terminated",
        }
    }
}

/// The INVITE server transaction machine.
#[derive(Debug)]
pub struct ServerInvite {
    state: ServerInviteState,
    last_response: Option<Bytes>,
    reliable: bool,
    timers: Timers,
    interval_g: Duration,
    acked: bool,
}

/// Why a response could not be sent in the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadState(pub(crate) &'static str);

impl ServerInvite {
    /// A new transaction in Proceeding; the layer sends the 100 Trying through it.
    pub(crate) fn new(reliable: bool, timers: Timers) -> Self {
        Self {
            state: ServerInviteState::Proceeding,
            last_response: None,
            reliable,
            timers,
            interval_g: timers.t1,
            acked: false,
        }
    }

    /// Current state.
    pub fn state(&self) -> ServerInviteState {
        self.state
    }

    fn terminate(&mut self, out: &mut Vec<Action>) {
        self.state = ServerInviteState::Terminated;
        out.push(Action::Terminate);
    }

    /// The TU sends a response with status `code`, serialized as `bytes`.
    pub(crate) fn send_response(
        &mut self,
        code: u16,
        bytes: Bytes,
        out: &mut Vec<Action>,
    ) -> Result<(), BadState> {
        match (self.state, code) {
            (ServerInviteState::Proceeding, 100..=199) => {}
            (ServerInviteState::Proceeding, 200..=299) => {
                self.state = ServerInviteState::Accepted;
                // RFC 3261 §13.3.1.4: the 2xx is retransmitted end to end (whatever the
                // transport of this hop) from T1 doubling up to T2 until the ACK arrives.
                out.push(Action::Arm(Timer::G, self.timers.t1));
                out.push(Action::Arm(Timer::L, self.timers.t1x64()));
            }
            (ServerInviteState::Proceeding, 300..=699) => {
                self.state = ServerInviteState::Completed;
                if !self.reliable {
                    out.push(Action::Arm(Timer::G, self.timers.t1));
                }
                out.push(Action::Arm(Timer::H, self.timers.t1x64()));
            }
            // RFC 6026 §7.1: further 2xx responses are passed to the transport.
            (ServerInviteState::Accepted, 200..=299) => {}
            (state, _) => return Err(BadState(state.name())),
        }
        out.push(Action::Send(bytes.clone()));
        self.last_response = Some(bytes);
        Ok(())
    }

    /// A retransmission of the INVITE arrived: resend the last response, if any.
    pub(crate) fn on_request_retransmit(&mut self, out: &mut Vec<Action>) {
        match self.state {
            ServerInviteState::Proceeding
            | ServerInviteState::Completed
            | ServerInviteState::Accepted => {
                if let Some(b) = &self.last_response {
                    out.push(Action::Send(b.clone()));
                }
            }
            ServerInviteState::Confirmed | ServerInviteState::Terminated => {}
        }
    }

    /// An ACK matched. Returns true when it is the first ACK for a 2xx, which goes to the TU.
    pub(crate) fn on_ack(&mut self, out: &mut Vec<Action>) -> bool {
        match self.state {
            ServerInviteState::Completed => {
                out.push(Action::Disarm(Timer::G));
                out.push(Action::Disarm(Timer::H));
                self.state = ServerInviteState::Confirmed;
                if self.reliable {
                    self.terminate(out);
                } else {
                    out.push(Action::Arm(Timer::I, self.timers.t4_or_zero(false)));
                }
                false
            }
            ServerInviteState::Accepted if !self.acked => {
                self.acked = true;
                out.push(Action::Disarm(Timer::G));
                true
            }
            _ => false,
        }
    }

    /// A timer armed by this machine fired.
    pub(crate) fn on_timer(&mut self, timer: Timer, out: &mut Vec<Action>) {
        match (timer, self.state) {
            (Timer::G, ServerInviteState::Completed) | (Timer::G, ServerInviteState::Accepted) => {
                if self.state == ServerInviteState::Accepted && self.acked {
                    return;
                }
                if let Some(b) = &self.last_response {
                    out.push(Action::Send(b.clone()));
                }
                self.interval_g = self.interval_g.saturating_mul(2).min(self.timers.t2);
                out.push(Action::Arm(Timer::G, self.interval_g));
            }
            (Timer::H, ServerInviteState::Completed) => {
                out.push(Action::AckTimeout);
                self.terminate(out);
            }
            (Timer::I, ServerInviteState::Confirmed) => self.terminate(out),
            (Timer::L, ServerInviteState::Accepted) => {
                if !self.acked {
                    out.push(Action::AckTimeout);
                }
                self.terminate(out);
            }
            _ => {}
        }
    }
}
