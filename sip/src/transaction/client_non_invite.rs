//! Non-INVITE client transaction (RFC 3261 §17.1.2, Figure 6).

use super::{Action, Timer, Timers};
use bytes::Bytes;
use rsip::Response;
use std::time::Duration;

/// States of Figure 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientNonInviteState {
    /// Request sent; Timer E retransmits (unreliable), Timer F guards.
    Trying,
    /// A provisional response arrived; retransmissions continue every T2.
    Proceeding,
    /// A final response arrived; Timer K absorbs retransmissions.
    Completed,
    /// Done; the layer removes the transaction.
    Terminated,
}

/// The non-INVITE client transaction machine.
#[derive(Debug)]
pub struct ClientNonInvite {
    state: ClientNonInviteState,
    bytes: Bytes,
    reliable: bool,
    timers: Timers,
    interval_e: Duration,
}

impl ClientNonInvite {
    /// Sends the request and arms Timers E (unreliable only) and F.
    pub(crate) fn start(
        bytes: Bytes,
        reliable: bool,
        timers: Timers,
        out: &mut Vec<Action>,
    ) -> Self {
        out.push(Action::Send(bytes.clone()));
        if !reliable {
            out.push(Action::Arm(Timer::E, timers.t1));
        }
        out.push(Action::Arm(Timer::F, timers.t1x64()));
        Self {
            state: ClientNonInviteState::Trying,
            bytes,
            reliable,
            timers,
            interval_e: timers.t1,
        }
    }

    /// Current state.
    pub fn state(&self) -> ClientNonInviteState {
        self.state
    }

    fn terminate(&mut self, out: &mut Vec<Action>) {
        self.state = ClientNonInviteState::Terminated;
        out.push(Action::Terminate);
    }

    /// A response matched this transaction.
    pub(crate) fn on_response(&mut self, response: Response, out: &mut Vec<Action>) {
        let code = response.status_code.code();
        match self.state {
            ClientNonInviteState::Trying | ClientNonInviteState::Proceeding => {
                if (100..200).contains(&code) {
                    self.state = ClientNonInviteState::Proceeding;
                    out.push(Action::Deliver(response));
                } else if (200..700).contains(&code) {
                    out.push(Action::Disarm(Timer::E));
                    out.push(Action::Disarm(Timer::F));
                    out.push(Action::Deliver(response));
                    self.state = ClientNonInviteState::Completed;
                    if self.reliable {
                        self.terminate(out);
                    } else {
                        out.push(Action::Arm(Timer::K, self.timers.t4_or_zero(false)));
                    }
                }
            }
            ClientNonInviteState::Completed | ClientNonInviteState::Terminated => {}
        }
    }

    /// A timer armed by this machine fired.
    pub(crate) fn on_timer(&mut self, timer: Timer, out: &mut Vec<Action>) {
        match (timer, self.state) {
            (Timer::E, ClientNonInviteState::Trying) => {
                out.push(Action::Send(self.bytes.clone()));
                self.interval_e = self.interval_e.saturating_mul(2).min(self.timers.t2);
                out.push(Action::Arm(Timer::E, self.interval_e));
            }
            (Timer::E, ClientNonInviteState::Proceeding) => {
                out.push(Action::Send(self.bytes.clone()));
                self.interval_e = self.timers.t2;
                out.push(Action::Arm(Timer::E, self.interval_e));
            }
            (Timer::F, ClientNonInviteState::Trying | ClientNonInviteState::Proceeding) => {
                out.push(Action::Timeout);
                self.terminate(out);
            }
            (Timer::K, ClientNonInviteState::Completed) => self.terminate(out),
            _ => {}
        }
    }
}
