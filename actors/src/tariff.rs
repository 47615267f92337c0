//! Tariffs: the price of a call by the second, with Asterisk-like billing blocks, and the
//! ledger accounts the gateway credits. Shared by rating ([`crate::billing`]) and the ledger
//! actor ([`crate::ledger`]), which sizes reservations with it, so neither imports the other.

use serde::Serialize;

/// The ledger account rated calls are credited to.
pub const CALLS_ACCOUNT: &str = "@calls";
/// The ledger account fax pages are credited to.
pub const FAX_ACCOUNT: &str = "@faxes";

/// How a call is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tariff {
    /// Credit units per minute (never 0 for a rated call).
    pub price_per_minute: u64,
    /// First block, seconds (>= 1).
    pub initial_secs: u32,
    /// Later blocks, seconds (>= 1).
    pub increment_secs: u32,
    /// Longest call, seconds.
    pub max_call_secs: u32,
}

impl Tariff {
    /// Seconds billed for a call of `ms` milliseconds (0 for 0).
    pub fn billable_secs(&self, ms: u64) -> u64 {
        let secs = ms.div_ceil(1000);
        if secs == 0 {
            return 0;
        }
        let first = u64::from(self.initial_secs.max(1));
        let step = u64::from(self.increment_secs.max(1));
        if secs <= first {
            first
        } else {
            first + (secs - first).div_ceil(step) * step
        }
    }

    /// Credit units for `secs` billed seconds.
    pub fn cost_of_secs(&self, secs: u64) -> u64 {
        let units = u128::from(secs) * u128::from(self.price_per_minute);
        u64::try_from(units.div_ceil(60)).unwrap_or(u64::MAX)
    }

    /// Credit units for a call of `ms` milliseconds.
    pub fn cost(&self, ms: u64) -> u64 {
        self.cost_of_secs(self.billable_secs(ms))
    }

    /// The longest billable duration (a block boundary, at most `max_call_secs`) that
    /// `available` credit units pay for; 0 when not even the first block is affordable.
    pub fn max_secs(&self, available: i128) -> u64 {
        if available <= 0 || self.price_per_minute == 0 {
            return 0;
        }
        // cost(B) <= A  <=>  ceil(B * p / 60) <= A  <=>  B * p <= 60 * A.
        let by_balance = (available.saturating_mul(60) / i128::from(self.price_per_minute))
            .clamp(0, i128::from(u32::MAX));
        let limit = (by_balance as u64).min(u64::from(self.max_call_secs));
        let first = u64::from(self.initial_secs.max(1));
        let step = u64::from(self.increment_secs.max(1));
        if limit < first {
            return 0;
        }
        first + (limit - first) / step * step
    }

    /// What the first block costs: the least a call must be able to pay to be admitted.
    pub fn admission_cost(&self) -> u64 {
        self.cost_of_secs(u64::from(self.initial_secs.max(1)))
    }
}
