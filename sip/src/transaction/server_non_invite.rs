//! Non-INVITE server transaction (RFC 3261 §17.2.2, Figure 8).

use super::server_invite::BadState;
use super::{Action, Timer, Timers};
use bytes::Bytes;

/// States of Figure 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerNonInviteState {
    /// Request received, passed to the TU; retransmissions are absorbed.
    Trying,
    /// A provisional was sent; retransmissions get it again.
    Proceeding,
    /// A final response was sent; Timer J absorbs retransmissions.
    Completed,
    /// Done; the layer removes the transaction.
    Terminated,
}

impl ServerNonInviteState {
    /// The RFC name of the state.
    pub fn name(self) -> &'static str {
        match self {
            Self::Trying => "Trying",
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Terminated => "Terminated",
        }
    }
}

/// The non-INVITE server transaction machine.
#[derive(Debug)]
pub struct ServerNonInvite {
    state: ServerNonInviteState,
    last_response: Option<Bytes>,
    reliable: bool,
    timers: Timers,
}

impl ServerNonInvite {
    /// A new transaction in Trying.
    pub(crate) fn new(reliable: bool, timers: Timers) -> Self {
        Self {
            state: ServerNonInviteState::Trying,
            last_response: None,
            reliable,
            timers,
        }
    }

    /// Current state.
    pub fn state(&self) -> ServerNonInviteState {
        self.state
    }

    /// The TU sends a response with status `code`, serialized as `bytes`.
    pub(crate) fn send_response(
        &mut self,
        code: u16,
        bytes: Bytes,
        out: &mut Vec<Action>,
    ) -> Result<(), BadState> {
        match (self.state, code) {
            (ServerNonInviteState::Trying | ServerNonInviteState::Proceeding, 100..=199) => {
                self.state = ServerNonInviteState::Proceeding;
                out.push(Action::Send(bytes.clone()));
            }
            (ServerNonInviteState::Trying | ServerNonInviteState::Proceeding, 200..=699) => {
                self.state = ServerNonInviteState::Completed;
                out.push(Action::Send(bytes.clone()));
                if self.reliable {
                    self.state = ServerNonInviteState::Terminated;
                    out.push(Action::Terminate);
                } else {
                    out.push(Action::Arm(Timer::J, self.timers.timer_j(false)));
                }
            }
            (state, _) => return Err(BadState(state.name())),
        }
        self.last_response = Some(bytes);
        Ok(())
    }

    /// A retransmission of the request arrived.
    pub(crate) fn on_request_retransmit(&mut self, out: &mut Vec<Action>) {
        if let (ServerNonInviteState::Proceeding | ServerNonInviteState::Completed, Some(b)) =
            (self.state, &self.last_response)
        {
            out.push(Action::Send(b.clone()));
        }
    }

    /// A timer armed by this machine fired.
    pub(crate) fn on_timer(&mut self, timer: Timer, out: &mut Vec<Action>) {
        if let (Timer::J, ServerNonInviteState::Completed) = (timer, self.state) {
            self.state = ServerNonInviteState::Terminated;
            out.push(Action::Terminate);
        }
    }
}
