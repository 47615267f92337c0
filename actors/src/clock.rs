//! The one place call control reads time from. Cores take `now` as an argument
//! (sans-IO); the actors that drive them ask the injected [`Clock`], so that a
//! test can drive a whole call on a clock it controls and no call path reads
//! `Instant::now()` or the wall clock on its own.

use std::sync::Arc;
use std::time::Instant;

/// Monotonic time for timers and the wall clock for records (CDRs, journal,
/// settlement), from one source.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Monotonic now, for deadlines.
    fn now(&self) -> Instant;
    /// Milliseconds since the Unix epoch, for what is stored.
    fn unix_ms(&self) -> u64;
}

/// The operating system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn unix_ms(&self) -> u64 {
        switchboard_storage::now_unix_ms()
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock as a shared handle.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::{Clock, SystemClock};

    #[test]
    fn system_clock_moves_forward_and_reads_the_epoch() {
        let c = SystemClock;
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
        // 2020-01-01 in ms: any real wall clock is past it.
        assert!(c.unix_ms() > 1_577_836_800_000);
    }
}
