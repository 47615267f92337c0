//! INVITE client transaction (RFC 3261 §17.1.1, Figure 5, as amended by RFC 6026 §7.2 and
//! RFC 3261 §9.1 for CANCEL).

use super::{Action, Timer, Timers};
use crate::message::{make_non2xx_ack, request_bytes};
use bytes::Bytes;
use rsip::{Request, Response};
use std::time::Duration;

/// States of Figure 5 plus Accepted (RFC 6026).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientInviteState {
    /// INVITE sent, nothing heard yet; Timer A retransmits (unreliable), Timer B guards.
    Calling,
    /// A provisional response arrived.
    Proceeding,
    /// A 300-699 arrived and was ACKed; Timer D absorbs retransmissions.
    Completed,
    /// A 2xx arrived (RFC 6026); Timer M lets retransmitted 2xx reach the TU.
    Accepted,
    /// Done; the layer removes the transaction.
    Terminated,
}

/// The INVITE client transaction machine. Plain state, no clock, no IO: inputs return
/// [`Action`]s the layer carries out.
#[derive(Debug)]
pub struct ClientInvite {
    state: ClientInviteState,
    request: Request,
    bytes: Bytes,
    ack: Option<Bytes>,
    reliable: bool,
    timers: Timers,
    interval_a: Duration,
}

impl ClientInvite {
    /// Sends the INVITE and arms Timers A (unreliable only) and B.
    pub(crate) fn start(
        request: Request,
        bytes: Bytes,
        reliable: bool,
        timers: Timers,
        out: &mut Vec<Action>,
    ) -> Self {
        out.push(Action::Send(bytes.clone()));
        if !reliable {
            out.push(Action::Arm(Timer::A, timers.t1));
        }
        out.push(Action::Arm(Timer::B, timers.t1x64()));
        Self {
            state: ClientInviteState::Calling,
            request,
            bytes,
            ack: None,
            reliable,
            timers,
            interval_a: timers.t1,
        }
    }

    /// Current state.
    pub fn state(&self) -> ClientInviteState {
        self.state
    }

    fn terminate(&mut self, out: &mut Vec<Action>) {
        self.state = ClientInviteState::Terminated;
        out.push(Action::Terminate);
    }

    /// A response matched this transaction.
    pub(crate) fn on_response(&mut self, response: Response, out: &mut Vec<Action>) {
        let code = response.status_code.code();
        match self.state {
            ClientInviteState::Calling | ClientInviteState::Proceeding => {
                if (100..200).contains(&code) {
                    if self.state == ClientInviteState::Calling {
                        out.push(Action::Disarm(Timer::A));
                        out.push(Action::Disarm(Timer::B));
                        self.state = ClientInviteState::Proceeding;
                    }
                    out.push(Action::Deliver(response));
                } else if (200..300).contains(&code) {
                    out.push(Action::Disarm(Timer::A));
                    out.push(Action::Disarm(Timer::B));
                    self.state = ClientInviteState::Accepted;
                    out.push(Action::Arm(Timer::M, self.timers.t1x64()));
                    out.push(Action::Deliver(response));
                } else if (300..700).contains(&code) {
                    out.push(Action::Disarm(Timer::A));
                    out.push(Action::Disarm(Timer::B));
                    // Built from our own INVITE and a parsed response: always writable; if
                    // not, no ACK goes out (the far end's retransmissions stop at Timer H).
                    if let Ok(ack) = request_bytes(&make_non2xx_ack(&self.request, &response)) {
                        let ack = Bytes::from(ack);
                        out.push(Action::Send(ack.clone()));
                        self.ack = Some(ack);
                    }
                    out.push(Action::Deliver(response));
                    self.state = ClientInviteState::Completed;
                    if self.reliable {
                        self.terminate(out);
                    } else {
                        out.push(Action::Arm(Timer::D, self.timers.timer_d(false)));
                    }
                }
            }
            ClientInviteState::Accepted => {
                if (200..300).contains(&code) {
                    out.push(Action::Deliver(response));
                }
            }
            ClientInviteState::Completed => {
                if (300..700).contains(&code) {
                    if let Some(ack) = &self.ack {
                        out.push(Action::Send(ack.clone()));
                    }
                }
            }
            ClientInviteState::Terminated => {}
        }
    }

    /// A CANCEL was sent for this INVITE: if no final response arrives within 64*T1, give
    /// up (RFC 3261 §9.1).
    pub(crate) fn on_cancel_sent(&mut self, out: &mut Vec<Action>) {
        if matches!(
            self.state,
            ClientInviteState::Calling | ClientInviteState::Proceeding
        ) {
            out.push(Action::Arm(Timer::B, self.timers.t1x64()));
        }
    }

    /// A timer armed by this machine fired.
    pub(crate) fn on_timer(&mut self, timer: Timer, out: &mut Vec<Action>) {
        match (timer, self.state) {
            (Timer::A, ClientInviteState::Calling) => {
                out.push(Action::Send(self.bytes.clone()));
                // RFC 3261 §17.1.1.2: A doubles each time, without the T2 cap of E and G.
                self.interval_a = self.interval_a.saturating_mul(2);
                out.push(Action::Arm(Timer::A, self.interval_a));
            }
            (Timer::B, ClientInviteState::Calling | ClientInviteState::Proceeding) => {
                out.push(Action::Timeout);
                self.terminate(out);
            }
            (Timer::D, ClientInviteState::Completed) | (Timer::M, ClientInviteState::Accepted) => {
                self.terminate(out)
            }
            _ => {}
        }
    }
}
