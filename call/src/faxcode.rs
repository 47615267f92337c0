//! The fax result code of a call (like Asterisk's `FAXERROR`, Faxbot's job `error`): what a
//! fax job stores and its retry policy reads, derived from the typed outcome
//! ([`CallFailure`], [`HangupCause`]) instead of a second SIP-status table. The spellings
//! are an external contract (the fax job API, webhooks, the integration tests).

use std::fmt;

use crate::outcome::{CallFailure, HangupCause};

/// A fax job's result code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaxCode {
    /// The callee is busy or declined.
    Busy,
    /// Nobody answered (or the attempt was abandoned or timed out before answer).
    NoAnswer,
    /// The number does not exist.
    Unallocated,
    /// The trunk or the gateway had no capacity.
    Congestion,
    /// No route (or the route's trunk is not configured).
    NoRoute,
    /// Refused for any other reason.
    Rejected,
    /// The call ran too long or its media stopped.
    Timeout,
    /// The far end would not switch to T.38.
    T38Refused,
    /// T.38 is disabled on the route's trunk.
    T38Disabled,
    /// The answered call ended before the document went through.
    CallDropped,
    /// The fax session failed.
    TransferFailed,
    /// The gateway stopped during the attempt.
    Interrupted,
    /// The gateway failed.
    Internal,
    /// An inbound call ended without a fax.
    NoFax,
}

/// Every [`FaxCode`].
pub const ALL_FAX_CODES: [FaxCode; 14] = [
    FaxCode::Busy,
    FaxCode::NoAnswer,
    FaxCode::Unallocated,
    FaxCode::Congestion,
    FaxCode::NoRoute,
    FaxCode::Rejected,
    FaxCode::Timeout,
    FaxCode::T38Refused,
    FaxCode::T38Disabled,
    FaxCode::CallDropped,
    FaxCode::TransferFailed,
    FaxCode::Interrupted,
    FaxCode::Internal,
    FaxCode::NoFax,
];

impl FaxCode {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Busy => "BUSY",
            Self::NoAnswer => "NO_ANSWER",
            Self::Unallocated => "UNALLOCATED",
            Self::Congestion => "CONGESTION",
            Self::NoRoute => "NO_ROUTE",
            Self::Rejected => "REJECTED",
            Self::Timeout => "TIMEOUT",
            Self::T38Refused => "T38_REFUSED",
            Self::T38Disabled => "T38_DISABLED",
            Self::CallDropped => "CALL_DROPPED",
            Self::TransferFailed => "TRANSFER_FAILED",
            Self::Interrupted => "INTERRUPTED",
            Self::Internal => "INTERNAL",
            Self::NoFax => "NO_FAX",
        }
    }

    /// The code a stored string names.
    pub fn parse(s: &str) -> Option<Self> {
        ALL_FAX_CODES.into_iter().find(|c| c.as_str() == s)
    }

    /// A fax job tries again after a failed attempt with this result.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::Busy
                | Self::NoAnswer
                | Self::Congestion
                | Self::TransferFailed
                | Self::CallDropped
                | Self::Interrupted
        )
    }
}

impl fmt::Display for FaxCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl CallFailure {
    /// The fax result code of a call that never connected.
    pub fn fax_code(self) -> FaxCode {
        match self {
            Self::Busy | Self::Declined => FaxCode::Busy,
            Self::NoAnswer { .. } | Self::Cancelled | Self::Timeout | Self::Abandoned(_) => {
                FaxCode::NoAnswer
            }
            Self::Unallocated => FaxCode::Unallocated,
            Self::Congestion
            | Self::TrunkDown
            | Self::TrunkTimeout
            | Self::NoMediaPorts
            | Self::LedgerUnavailable => FaxCode::Congestion,
            Self::NoRoute | Self::UnknownTrunk => FaxCode::NoRoute,
            Self::T38Disabled => FaxCode::T38Disabled,
            _ => FaxCode::Rejected,
        }
    }
}

impl HangupCause {
    /// The fax result code of an answered call that ended this way before the document
    /// went through (`None`: the fax session's own result decides).
    pub fn fax_code(self) -> Option<FaxCode> {
        match self {
            Self::MaxDuration | Self::RtpTimeout => Some(FaxCode::Timeout),
            Self::NoCredit | Self::NoAccount | Self::LedgerError | Self::NoAudioInAnswer => {
                Some(FaxCode::Rejected)
            }
            Self::T38Refused | Self::T38DialogGone | Self::T38ReinviteTimeout | Self::NoT38 => {
                Some(FaxCode::T38Refused)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_retry_as_the_job_did() {
        for c in ALL_FAX_CODES {
            assert_eq!(FaxCode::parse(c.as_str()), Some(c));
        }
        let retry: Vec<_> = ALL_FAX_CODES
            .into_iter()
            .filter(|c| c.retryable())
            .map(FaxCode::as_str)
            .collect();
        assert_eq!(
            retry,
            [
                "BUSY",
                "NO_ANSWER",
                "CONGESTION",
                "CALL_DROPPED",
                "TRANSFER_FAILED",
                "INTERRUPTED"
            ]
        );
    }

    /// The one-leg UA's `error_for` before issue 13 (the fax result code).
    #[test]
    fn fax_codes_as_the_ua_gave_them() {
        let table: &[(u16, &str)] = &[
            (486, "BUSY"),
            (600, "BUSY"),
            (603, "BUSY"),
            (408, "NO_ANSWER"),
            (480, "NO_ANSWER"),
            (487, "NO_ANSWER"),
            (404, "UNALLOCATED"),
            (484, "UNALLOCATED"),
            (604, "UNALLOCATED"),
            (500, "CONGESTION"),
            (502, "CONGESTION"),
            (503, "CONGESTION"),
            (504, "CONGESTION"),
            (403, "REJECTED"),
            (401, "REJECTED"),
            (488, "REJECTED"),
        ];
        for &(rx, code) in table {
            assert_eq!(
                CallFailure::from_status(rx).fax_code().as_str(),
                code,
                "{rx}"
            );
        }
        assert_eq!(CallFailure::NoRoute.fax_code().as_str(), "NO_ROUTE");
        assert_eq!(CallFailure::UnknownTrunk.fax_code().as_str(), "NO_ROUTE");
        assert_eq!(CallFailure::TrunkDown.fax_code().as_str(), "CONGESTION");
        assert_eq!(CallFailure::TrunkTimeout.fax_code().as_str(), "CONGESTION");
        assert_eq!(CallFailure::Timeout.fax_code().as_str(), "NO_ANSWER");
        assert_eq!(CallFailure::NoMediaPorts.fax_code().as_str(), "CONGESTION");
        assert_eq!(HangupCause::MaxDuration.fax_code(), Some(FaxCode::Timeout));
        assert_eq!(HangupCause::RtpTimeout.fax_code(), Some(FaxCode::Timeout));
        assert_eq!(HangupCause::CallerHangup.fax_code(), None);
    }

    #[test]
    fn t38_outcomes_are_t38_refused() {
        for c in [
            HangupCause::T38Refused,
            HangupCause::T38DialogGone,
            HangupCause::T38ReinviteTimeout,
            HangupCause::NoT38,
        ] {
            assert_eq!(c.fax_code(), Some(FaxCode::T38Refused), "{c:?}");
        }
        assert_eq!(CallFailure::T38Disabled.fax_code(), FaxCode::T38Disabled);
        assert_eq!(CallFailure::T38Disabled.as_str(), "T.38 disabled on trunk");
    }
}
