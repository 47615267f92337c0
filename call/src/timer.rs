//! Call-control timers and the one table that holds them, in the spirit of quinn-proto's
//! `TimerTable`: a fixed slot per [`Timer`], set and cleared by the state machine, read by
//! the driver through [`TimerTable::next`] (the one deadline to arm) and walked with
//! [`TimerTable::expired`] when it fires.
//!
//! The transaction timers of RFC 3261 §17 (A–M) live in the transaction layer; these are
//! the timers of the transaction user: no answer, the ACK wait of a 2xx we sent (the TU's
//! Timer L, RFC 6026), the RFC 4028 session expiry, the BYE guard, and the gateway's own
//! policy timers.

use std::time::{Duration, Instant};

/// A call-control timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// The callee has not answered within `no_answer_timeout`.
    NoAnswer,
    /// Our 2xx to the caller's INVITE was never ACKed (64·T1, like Timer L of RFC 6026).
    AckWait,
    /// RFC 4028: no session refresh within the session interval.
    SessionExpiry,
    /// The call is ending: stop waiting for BYE answers and INVITE finals at this time.
    ByeGuard,
    /// `[sip] max_call_secs` after answer.
    MaxDuration,
    /// Look at the media relay's last packet again (`[media] rtp_timeout_secs`).
    RtpCheck,
    /// The credit reservation runs out.
    CreditDeadline,
    /// Fax: offer T.38 by re-INVITE (`[fax] t38_switch_timeout_secs` after answer, or
    /// again after a glare back-off).
    T38Switch,
    /// Fax: T.38 must be up by now.
    T38Deadline,
}

impl Timer {
    /// Number of timers (the table's size).
    pub const COUNT: usize = 9;

    /// Every timer, in table order (which is also the order they fire in at one instant).
    pub const ALL: [Timer; Self::COUNT] = [
        Timer::ByeGuard,
        Timer::NoAnswer,
        Timer::AckWait,
        Timer::T38Switch,
        Timer::T38Deadline,
        Timer::CreditDeadline,
        Timer::SessionExpiry,
        Timer::MaxDuration,
        Timer::RtpCheck,
    ];

    fn slot(self) -> usize {
        match self {
            Timer::ByeGuard => 0,
            Timer::NoAnswer => 1,
            Timer::AckWait => 2,
            Timer::T38Switch => 3,
            Timer::T38Deadline => 4,
            Timer::CreditDeadline => 5,
            Timer::SessionExpiry => 6,
            Timer::MaxDuration => 7,
            Timer::RtpCheck => 8,
        }
    }
}

/// One deadline per [`Timer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerTable {
    slots: [Option<Instant>; Timer::COUNT],
}

impl TimerTable {
    /// Arm `timer` at `at` (replacing any earlier setting).
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.slots[timer.slot()] = Some(at);
    }

    /// Disarm `timer`.
    pub fn clear(&mut self, timer: Timer) {
        self.slots[timer.slot()] = None;
    }

    /// When `timer` fires, if armed.
    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.slots[timer.slot()]
    }

    /// True when `timer` is armed.
    pub fn is_set(&self, timer: Timer) -> bool {
        self.get(timer).is_some()
    }

    /// The earliest deadline of all armed timers.
    pub fn next(&self) -> Option<Instant> {
        self.slots.iter().flatten().min().copied()
    }

    /// True when `timer` is armed and due at `now`.
    pub fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|t| t <= now)
    }

    /// Disarm and return the first timer (in [`Timer::ALL`] order) due at `now`; call it in a
    /// loop until `None`.
    pub fn expired(&mut self, now: Instant) -> Option<Timer> {
        let t = Timer::ALL.into_iter().find(|t| self.is_expired(*t, now))?;
        self.clear(t);
        Some(t)
    }

    /// Disarm every timer.
    pub fn clear_all(&mut self) {
        self.slots = [None; Timer::COUNT];
    }
}

/// The RTP check both call shapes run (`[media] rtp_timeout_secs`): `Some(when)` to look
/// again, `None` when the far end has been silent for `timeout`. Silence counts from the
/// later of `since` (answer, hold or resume) and the last packet; an `exempt` call (held, or
/// fax audio nobody reads) is looked at again a whole `timeout` later.
pub(crate) fn rtp_next_check(
    now: Instant,
    timeout: Duration,
    exempt: bool,
    since: Instant,
    last_packet: Option<Instant>,
) -> Option<Instant> {
    if exempt {
        return Some(now + timeout);
    }
    let last = last_packet.map_or(since, |t| t.max(since));
    (now.saturating_duration_since(last) < timeout).then_some(last + timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn next_is_the_earliest_and_expired_drains_in_order() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut table = TimerTable::default();
        assert_eq!(table.next(), None);
        table.set(Timer::MaxDuration, t0 + 10 * s);
        table.set(Timer::NoAnswer, t0 + 5 * s);
        table.set(Timer::ByeGuard, t0 + 5 * s);
        table.set(Timer::RtpCheck, t0 + 7 * s);
        assert_eq!(table.next(), Some(t0 + 5 * s));
        assert_eq!(table.expired(t0 + 4 * s), None);
        assert_eq!(table.expired(t0 + 7 * s), Some(Timer::ByeGuard));
        assert_eq!(table.expired(t0 + 7 * s), Some(Timer::NoAnswer));
        assert_eq!(table.expired(t0 + 7 * s), Some(Timer::RtpCheck));
        assert_eq!(table.expired(t0 + 7 * s), None);
        assert_eq!(table.next(), Some(t0 + 10 * s));
        table.set(Timer::MaxDuration, t0 + 20 * s);
        assert_eq!(table.next(), Some(t0 + 20 * s));
        table.clear(Timer::MaxDuration);
        assert_eq!(table.next(), None);
    }

    #[test]
    fn every_timer_has_its_own_slot() {
        let t0 = Instant::now();
        let mut table = TimerTable::default();
        for (i, t) in Timer::ALL.into_iter().enumerate() {
            table.set(t, t0 + Duration::from_secs(i as u64));
        }
        for (i, t) in Timer::ALL.into_iter().enumerate() {
            assert_eq!(table.get(t), Some(t0 + Duration::from_secs(i as u64)));
        }
        table.clear_all();
        assert_eq!(table, TimerTable::default());
    }
}
