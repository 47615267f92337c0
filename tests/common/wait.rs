//! Waiting in integration tests without bare sleeps (issue 13, decisions 16.3).
//!
//! A test never sleeps to let something happen: it polls a condition until a deadline and,
//! when the deadline passes, fails naming what it awaited and the last value it saw
//! ([`wait_until`]). A test that must show something does *not* happen first looks for a later
//! event that proves it (a probe sent after the thing to ignore, answered); only where no such
//! event exists does it watch for a while with [`quiet_for`], which fails at the first sign.
//! The poll interval below is the one sleep these helpers take; any other `sleep(` in tests/
//! paces traffic on purpose and says so with a `// pacing:` comment (`tests/no_bare_sleeps.rs`
//! checks it).

use std::fmt::Debug;
use std::time::{Duration, Instant};

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(50);

/// Poll `probe` every [`POLL`] until `done` holds of its value, and return that value. After
/// `timeout`, panic naming `what` was awaited and the last value seen.
#[track_caller]
pub fn wait_until<T: Debug>(
    what: &str,
    timeout: Duration,
    probe: impl FnMut() -> T,
    done: impl FnMut(&T) -> bool,
) -> T {
    match poll_until(timeout, probe, done) {
        Ok(v) => v,
        Err(last) => panic!("timed out after {timeout:?} waiting for {what}; last seen: {last:?}"),
    }
}

/// [`wait_until`] without the panic, for callers that report the failure themselves:
/// `Ok(value)` once `done` holds, `Err(last value)` at the deadline. The probe runs at least
/// once, and once more at the deadline.
pub fn poll_until<T>(
    timeout: Duration,
    mut probe: impl FnMut() -> T,
    mut done: impl FnMut(&T) -> bool,
) -> Result<T, T> {
    let deadline = Instant::now() + timeout;
    loop {
        let v = probe();
        if done(&v) {
            return Ok(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(v);
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

/// Assert that nothing happens for `d`: poll `probe` every [`POLL`] and panic naming `why` and
/// the value at the first poll where `still` no longer holds; the last value. Use it only where
/// no later event can prove the absence (see the module doc): it always costs `d`.
#[track_caller]
pub fn quiet_for<T: Debug>(
    why: &str,
    d: Duration,
    mut probe: impl FnMut() -> T,
    mut still: impl FnMut(&T) -> bool,
) -> T {
    let end = Instant::now() + d;
    loop {
        let v = probe();
        assert!(still(&v), "{why}: broken by {v:?}");
        let now = Instant::now();
        if now >= end {
            return v;
        }
        std::thread::sleep(POLL.min(end - now));
    }
}

/// Whether some socket listens on loopback/any `port`: a bound UDP socket or a listening TCP
/// one, read from `/proc/net` (a probe that neither connects nor binds, so it cannot disturb
/// the process that owns the port).
pub fn port_bound(port: u16) -> bool {
    let hex = format!(":{port:04X}");
    let listed = |file: &str, listening: Option<&str>| {
        std::fs::read_to_string(file).is_ok_and(|table| {
            table.lines().skip(1).any(|l| {
                let mut cols = l.split_whitespace().skip(1);
                let (Some(local), Some(_remote), Some(state)) =
                    (cols.next(), cols.next(), cols.next())
                else {
                    return false;
                };
                local.ends_with(&hex) && listening.is_none_or(|s| s == state)
            })
        })
    };
    listed("/proc/net/udp", None)
        || listed("/proc/net/udp6", None)
        || listed("/proc/net/tcp", Some("0A"))
        || listed("/proc/net/tcp6", Some("0A"))
}
