//! Typed call outcomes: why an attempt failed ([`CallFailure`]) and why an answered call
//! ended ([`HangupCause`]), with the one SIP-status map of the gateway (RFC 3261 §21), the
//! Q.850 cause of each (RFC 3398 §8.2.6.1 for statuses received from SIP; Q.850's own
//! meaning for the gateway's own reasons), the CDR disposition, the CDR `hangup_cause`
//! string and the fax result code.
//!
//! The CDR strings and the fax codes are an external contract (CDR files, the admin API, the
//! fax job API and the integration tests read them): they are spelled exactly as the
//! `&'static str` causes they replace.

use std::fmt;

/// The CDR disposition of a call (Asterisk's `disposition` field). Mirrors
/// `switchboard_storage::Disposition`, which this crate does not depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// The call was answered.
    Answered,
    /// Nobody answered (timeout, or the caller gave up first).
    NoAnswer,
    /// The callee was busy (or declined).
    Busy,
    /// The call failed (error response, refusal, internal error).
    Failed,
    /// No route capacity: trunk down, overloaded or unreachable.
    Congestion,
}

/// Why a call attempt failed before it was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallFailure {
    /// The callee is busy (486, 600).
    Busy,
    /// The callee declined (603).
    Declined,
    /// The number does not exist (404, 484, 604).
    Unallocated,
    /// Nobody answered: the callee's 408/480, or our no-answer timer (`status` is what the
    /// caller gets).
    NoAnswer {
        /// The status answered to the caller (408 or 480).
        status: u16,
    },
    /// The callee's INVITE was cancelled (487 received, or the caller's CANCEL).
    Cancelled,
    /// The far side is overloaded or failing (500, 502, 503, 504).
    Congestion,
    /// The trunk keeps challenging our credentials (401/407 after the last retry).
    TrunkAuthFailed,
    /// Any other final failure (3xx-6xx) from the callee, passed to the caller.
    Rejected {
        /// The status received, and answered to the caller.
        status: u16,
    },
    /// A final response outside 300-699 where a failure was expected.
    BadResponse,
    /// Max-Forwards reached 0 (483).
    TooManyHops,
    /// No route matches the dialled number.
    NoRoute,
    /// The route names a trunk that is not configured.
    UnknownTrunk,
    /// The route's trunk is marked down.
    TrunkDown,
    /// The trunk never answered the INVITE (Timer B without a provisional).
    TrunkTimeout,
    /// The INVITE transaction timed out after a provisional (Timer B).
    Timeout,
    /// A rated call has no payer, or the payer's account does not exist.
    NoAccount {
        /// `[billing] reject_status` (402 or 403).
        status: u16,
    },
    /// The payer cannot afford the first billing block.
    NoCredit {
        /// `[billing] reject_status` (402 or 403).
        status: u16,
    },
    /// The ledger did not answer.
    LedgerError,
    /// A rated call but no ledger runs.
    LedgerUnavailable,
    /// The caller offered no SDP (late offer is not supported).
    NoSdpOffer,
    /// The caller's SDP offer does not parse.
    BadSdpOffer,
    /// The media-address policy refused the offer's address.
    MediaAddressRefused,
    /// No RTP ports left.
    NoMediaPorts,
    /// The callee hung up its early dialog (BYE before answer).
    CalleeLeftEarly,
    /// The callee's 2xx cannot form a dialog.
    BadAnswer,
    /// The caller's INVITE cannot form a dialog.
    BadCallerDialog,
    /// The gateway failed (an INVITE it cannot build, ...).
    Internal,
    /// Ended before answer by a cause that usually ends answered calls (operator, drain,
    /// an app or device gone); the caller gets 480.
    Abandoned(HangupCause),
    /// An inbound audio call offered no audio stream (488).
    NoAudioOffered,
    /// Our answer to the offer cannot be built (no common codec, T.38 unusable: 488).
    NoCommonMedia,
    /// A fax call routed to a trunk with `t38 = "never"`.
    T38Disabled,
}

/// Why an answered call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HangupCause {
    /// The caller (A leg) sent BYE.
    CallerHangup,
    /// The callee (B leg) sent BYE.
    CalleeHangup,
    /// The far end of a one-leg call sent BYE.
    RemoteHangup,
    /// The device on a local call hung up.
    DeviceHangup,
    /// The device on a local call went offline.
    DeviceOffline,
    /// An operator hung up (admin API or CLI).
    Operator,
    /// Ended by the drain deadline.
    Shutdown,
    /// The caller never ACKed our 2xx (Timer L).
    NoAck,
    /// The reservation ran out.
    CreditExhausted,
    /// The reservation on answer was refused: no credit.
    NoCredit,
    /// The reservation on answer was refused: no account.
    NoAccount,
    /// The ledger did not answer the reservation.
    LedgerError,
    /// RFC 4028 session timer expired without a refresh.
    SessionExpired,
    /// `[sip] max_call_secs` reached.
    MaxDuration,
    /// No RTP from either side for `[media] rtp_timeout_secs`.
    RtpTimeout,
    /// The app streaming the call went away.
    AppGone,
    /// The ingest stream carrying the call ended.
    StreamEnded,
    /// The local media path failed.
    MediaError,
    /// The far end refused our T.38 re-INVITE (or answered it without a usable stream).
    T38Refused,
    /// The far end answered our T.38 re-INVITE with 408 or 481: the dialog is gone.
    T38DialogGone,
    /// Our T.38 re-INVITE got no answer (Timer B).
    T38ReinviteTimeout,
    /// T.38 was not up by the fax deadline after answer.
    NoT38,
    /// The far end's 2xx to an audio call carries no audio stream.
    NoAudioInAnswer,
    /// The call's owner (the listener) went away without a cause (a crashed task).
    Crash,
}

impl CallFailure {
    /// The failure a final non-2xx response `status` from the callee means (RFC 3261 §21).
    pub fn from_status(status: u16) -> Self {
        match status {
            486 | 600 => Self::Busy,
            603 => Self::Declined,
            404 | 484 | 604 => Self::Unallocated,
            408 | 480 => Self::NoAnswer { status },
            487 => Self::Cancelled,
            500 | 502 | 503 | 504 => Self::Congestion,
            401 | 407 => Self::TrunkAuthFailed,
            s if (300..700).contains(&s) => Self::Rejected { status: s },
            _ => Self::BadResponse,
        }
    }

    /// The final status we answer the caller with.
    pub fn status(self) -> u16 {
        match self {
            Self::Busy => 486,
            Self::Declined => 603,
            Self::Unallocated | Self::NoRoute => 404,
            Self::NoAnswer { status } | Self::Rejected { status } => status,
            Self::Cancelled => 487,
            Self::Congestion
            | Self::TrunkAuthFailed
            | Self::UnknownTrunk
            | Self::TrunkDown
            | Self::TrunkTimeout
            | Self::LedgerError
            | Self::LedgerUnavailable
            | Self::NoMediaPorts => 503,
            Self::BadResponse | Self::Internal => 500,
            Self::TooManyHops => 483,
            Self::Timeout => 408,
            Self::NoAccount { status } | Self::NoCredit { status } => status,
            Self::NoSdpOffer
            | Self::BadSdpOffer
            | Self::MediaAddressRefused
            | Self::NoAudioOffered
            | Self::NoCommonMedia => 488,
            Self::T38Disabled => 488,
            Self::CalleeLeftEarly | Self::Abandoned(_) => 480,
            Self::BadAnswer => 502,
            Self::BadCallerDialog => 400,
        }
    }

    /// The CDR disposition.
    pub fn disposition(self) -> Disposition {
        match self {
            Self::Busy | Self::Declined => Disposition::Busy,
            Self::NoAnswer { .. }
            | Self::Cancelled
            | Self::Timeout
            | Self::CalleeLeftEarly
            | Self::Abandoned(_) => Disposition::NoAnswer,
            Self::Congestion
            | Self::UnknownTrunk
            | Self::TrunkDown
            | Self::TrunkTimeout
            | Self::NoMediaPorts => Disposition::Congestion,
            _ => Disposition::Failed,
        }
    }

    /// The CDR `hangup_cause` string (the gateway's historical spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::Declined => "declined",
            Self::Unallocated => "unallocated number",
            Self::NoAnswer { .. } => "no answer",
            Self::Cancelled => "cancelled",
            Self::Congestion => "congestion",
            Self::TrunkAuthFailed => "trunk authentication failed",
            Self::Rejected { .. } => "rejected",
            Self::BadResponse => "bad response",
            Self::TooManyHops => "too many hops",
            Self::NoRoute => "no route",
            Self::UnknownTrunk => "unknown trunk",
            Self::TrunkDown => "trunk down",
            Self::TrunkTimeout => "trunk timeout",
            Self::Timeout => "timeout",
            Self::NoAccount { .. } => "no account",
            Self::NoCredit { .. } => "no credit",
            Self::LedgerError => "ledger error",
            Self::LedgerUnavailable => "ledger unavailable",
            Self::NoSdpOffer => "no SDP offer",
            Self::BadSdpOffer => "bad SDP offer",
            Self::MediaAddressRefused => "media address refused",
            Self::NoMediaPorts => "no media ports",
            Self::CalleeLeftEarly => "callee left early",
            Self::BadAnswer => "bad answer",
            Self::BadCallerDialog => "bad caller dialog",
            Self::Internal => "internal",
            Self::Abandoned(cause) => cause.as_str(),
            Self::NoAudioOffered => "no audio offered",
            Self::NoCommonMedia => "no common media",
            Self::T38Disabled => "T.38 disabled on trunk",
        }
    }

    /// The Q.850 cause value: RFC 3398 §8.2.6.1 for a status received from SIP, Q.850's
    /// meaning for the gateway's own reasons.
    pub fn q850(self) -> u8 {
        match self {
            Self::Busy => 17,
            Self::Declined => 21,
            Self::Unallocated => 1,
            Self::NoAnswer { status: 480 } => 18,
            Self::NoAnswer { .. } => 19,
            Self::Cancelled => 16,
            Self::Congestion => 41,
            Self::TrunkAuthFailed => 21,
            Self::Rejected { status } => q850_of_status(status),
            Self::BadResponse | Self::Internal | Self::BadCallerDialog => 41,
            Self::TooManyHops => 25,
            Self::NoRoute => 3,
            Self::UnknownTrunk | Self::TrunkDown | Self::NoMediaPorts => 34,
            Self::TrunkTimeout | Self::Timeout => 102,
            Self::NoAccount { .. } | Self::NoCredit { .. } => 21,
            Self::LedgerError | Self::LedgerUnavailable => 41,
            Self::NoSdpOffer | Self::BadSdpOffer | Self::NoAudioOffered => 79,
            Self::NoCommonMedia | Self::T38Disabled => 65,
            Self::MediaAddressRefused => 88,
            Self::CalleeLeftEarly => 16,
            Self::BadAnswer => 38,
            Self::Abandoned(cause) => cause.q850(),
        }
    }
}

impl HangupCause {
    /// The CDR `hangup_cause` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CallerHangup => "caller hangup",
            Self::CalleeHangup => "callee hangup",
            Self::RemoteHangup => "remote hangup",
            Self::DeviceHangup => "device hangup",
            Self::DeviceOffline => "device offline",
            Self::Operator => "operator",
            Self::Shutdown => "shutdown",
            Self::NoAck => "no ACK",
            Self::CreditExhausted => "credit exhausted",
            Self::NoCredit => "no credit",
            Self::NoAccount => "no account",
            Self::LedgerError => "ledger error",
            Self::SessionExpired => "session expired",
            Self::MaxDuration => "max duration",
            Self::RtpTimeout => "rtp timeout",
            Self::AppGone => "app gone",
            Self::StreamEnded => "stream ended",
            Self::MediaError => "media error",
            Self::T38Refused => "T.38 refused",
            Self::T38DialogGone => "dialog gone",
            Self::T38ReinviteTimeout => "T.38 re-INVITE timed out",
            Self::NoT38 => "no T.38",
            Self::NoAudioInAnswer => "no audio in answer",
            Self::Crash => "crash",
        }
    }

    /// The cause a CDR string names (the inverse of [`Self::as_str`]), for messages that
    /// still carry strings across the actor boundary.
    pub fn parse(s: &str) -> Option<Self> {
        ALL_HANGUP_CAUSES.iter().copied().find(|c| c.as_str() == s)
    }

    /// The Q.850 cause value.
    pub fn q850(self) -> u8 {
        match self {
            Self::CallerHangup | Self::CalleeHangup | Self::RemoteHangup | Self::DeviceHangup => 16,
            Self::DeviceOffline => 16,
            Self::Operator | Self::Shutdown => 16,
            Self::NoAck | Self::SessionExpired | Self::RtpTimeout => 102,
            Self::CreditExhausted | Self::NoCredit | Self::NoAccount => 21,
            Self::LedgerError | Self::MediaError => 41,
            Self::MaxDuration => 16,
            Self::AppGone | Self::StreamEnded => 16,
            Self::T38Refused | Self::NoAudioInAnswer => 65,
            Self::T38DialogGone | Self::Crash => 41,
            Self::T38ReinviteTimeout | Self::NoT38 => 102,
        }
    }
}

/// Every [`HangupCause`], for [`HangupCause::parse`] and the tests.
pub const ALL_HANGUP_CAUSES: [HangupCause; 24] = [
    HangupCause::CallerHangup,
    HangupCause::CalleeHangup,
    HangupCause::RemoteHangup,
    HangupCause::DeviceHangup,
    HangupCause::DeviceOffline,
    HangupCause::Operator,
    HangupCause::Shutdown,
    HangupCause::NoAck,
    HangupCause::CreditExhausted,
    HangupCause::NoCredit,
    HangupCause::NoAccount,
    HangupCause::LedgerError,
    HangupCause::SessionExpired,
    HangupCause::MaxDuration,
    HangupCause::RtpTimeout,
    HangupCause::AppGone,
    HangupCause::StreamEnded,
    HangupCause::MediaError,
    HangupCause::T38Refused,
    HangupCause::T38DialogGone,
    HangupCause::T38ReinviteTimeout,
    HangupCause::NoT38,
    HangupCause::NoAudioInAnswer,
    HangupCause::Crash,
];

/// RFC 3398 §8.2.6.1: the Q.850 cause of a SIP final status (127, interworking, for those
/// the table leaves to the Warning header or does not list).
pub fn q850_of_status(status: u16) -> u8 {
    match status {
        400 | 481 | 500 | 503 => 41,
        401 | 402 | 403 | 407 | 603 => 21,
        404 | 485 | 604 => 1,
        405 => 63,
        406 | 415 | 501 => 79,
        408 | 504 => 102,
        410 => 22,
        480 => 18,
        482 | 483 => 25,
        484 => 28,
        486 | 600 => 17,
        502 => 38,
        _ => 127,
    }
}

/// How a call ended: the one record the CDR, the fax job and billing read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Never answered.
    Failed(CallFailure),
    /// Answered, then ended.
    Ended(HangupCause),
}

impl Outcome {
    /// The CDR disposition.
    pub fn disposition(self) -> Disposition {
        match self {
            Self::Failed(f) => f.disposition(),
            Self::Ended(_) => Disposition::Answered,
        }
    }

    /// The CDR `hangup_cause` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed(f) => f.as_str(),
            Self::Ended(c) => c.as_str(),
        }
    }

    /// The Q.850 cause value.
    pub fn q850(self) -> u8 {
        match self {
            Self::Failed(f) => f.q850(),
            Self::Ended(c) => c.q850(),
        }
    }
}

impl fmt::Display for CallFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for HangupCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The map the B2BUA applied before issue 13 (`map_failure`), kept as the oracle:
    /// (received, answered to the caller, disposition, CDR cause).
    const B2BUA: &[(u16, u16, Disposition, &str)] = &[
        (486, 486, Disposition::Busy, "busy"),
        (600, 486, Disposition::Busy, "busy"),
        (603, 603, Disposition::Busy, "declined"),
        (404, 404, Disposition::Failed, "unallocated number"),
        (484, 404, Disposition::Failed, "unallocated number"),
        (604, 404, Disposition::Failed, "unallocated number"),
        (408, 408, Disposition::NoAnswer, "no answer"),
        (480, 480, Disposition::NoAnswer, "no answer"),
        (487, 487, Disposition::NoAnswer, "cancelled"),
        (500, 503, Disposition::Congestion, "congestion"),
        (502, 503, Disposition::Congestion, "congestion"),
        (503, 503, Disposition::Congestion, "congestion"),
        (504, 503, Disposition::Congestion, "congestion"),
        (401, 503, Disposition::Failed, "trunk authentication failed"),
        (407, 503, Disposition::Failed, "trunk authentication failed"),
        (302, 302, Disposition::Failed, "rejected"),
        (403, 403, Disposition::Failed, "rejected"),
        (488, 488, Disposition::Failed, "rejected"),
        (606, 606, Disposition::Failed, "rejected"),
        (699, 699, Disposition::Failed, "rejected"),
        (700, 500, Disposition::Failed, "bad response"),
        (200, 500, Disposition::Failed, "bad response"),
    ];

    #[test]
    fn received_status_maps_as_the_b2bua_did() {
        for &(rx, tx, disposition, cause) in B2BUA {
            let f = CallFailure::from_status(rx);
            assert_eq!(f.status(), tx, "{rx}");
            assert_eq!(f.disposition(), disposition, "{rx}");
            assert_eq!(f.as_str(), cause, "{rx}");
        }
    }

    /// The gateway's own failures: (failure, status to the caller, disposition, CDR cause).
    #[test]
    fn own_failures_keep_their_cdr_strings() {
        let table: &[(CallFailure, u16, Disposition, &str)] = &[
            (
                CallFailure::TooManyHops,
                483,
                Disposition::Failed,
                "too many hops",
            ),
            (CallFailure::NoRoute, 404, Disposition::Failed, "no route"),
            (
                CallFailure::UnknownTrunk,
                503,
                Disposition::Congestion,
                "unknown trunk",
            ),
            (
                CallFailure::TrunkDown,
                503,
                Disposition::Congestion,
                "trunk down",
            ),
            (
                CallFailure::TrunkTimeout,
                503,
                Disposition::Congestion,
                "trunk timeout",
            ),
            (CallFailure::Timeout, 408, Disposition::NoAnswer, "timeout"),
            (
                CallFailure::NoAnswer { status: 408 },
                408,
                Disposition::NoAnswer,
                "no answer",
            ),
            (
                CallFailure::NoAccount { status: 402 },
                402,
                Disposition::Failed,
                "no account",
            ),
            (
                CallFailure::NoCredit { status: 403 },
                403,
                Disposition::Failed,
                "no credit",
            ),
            (
                CallFailure::LedgerError,
                503,
                Disposition::Failed,
                "ledger error",
            ),
            (
                CallFailure::LedgerUnavailable,
                503,
                Disposition::Failed,
                "ledger unavailable",
            ),
            (
                CallFailure::NoSdpOffer,
                488,
                Disposition::Failed,
                "no SDP offer",
            ),
            (
                CallFailure::BadSdpOffer,
                488,
                Disposition::Failed,
                "bad SDP offer",
            ),
            (
                CallFailure::MediaAddressRefused,
                488,
                Disposition::Failed,
                "media address refused",
            ),
            (
                CallFailure::NoMediaPorts,
                503,
                Disposition::Congestion,
                "no media ports",
            ),
            (
                CallFailure::CalleeLeftEarly,
                480,
                Disposition::NoAnswer,
                "callee left early",
            ),
            (
                CallFailure::BadAnswer,
                502,
                Disposition::Failed,
                "bad answer",
            ),
            (
                CallFailure::BadCallerDialog,
                400,
                Disposition::Failed,
                "bad caller dialog",
            ),
            (CallFailure::Internal, 500, Disposition::Failed, "internal"),
            (
                CallFailure::Cancelled,
                487,
                Disposition::NoAnswer,
                "cancelled",
            ),
            (
                CallFailure::Abandoned(HangupCause::Operator),
                480,
                Disposition::NoAnswer,
                "operator",
            ),
            (
                CallFailure::Abandoned(HangupCause::Shutdown),
                480,
                Disposition::NoAnswer,
                "shutdown",
            ),
        ];
        for &(f, status, disposition, cause) in table {
            assert_eq!(f.status(), status, "{f:?}");
            assert_eq!(f.disposition(), disposition, "{f:?}");
            assert_eq!(f.as_str(), cause, "{f:?}");
            assert_eq!(Outcome::Failed(f).as_str(), cause);
        }
    }

    #[test]
    fn hangup_causes_round_trip_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for c in ALL_HANGUP_CAUSES {
            assert!(seen.insert(c.as_str()), "{c:?} spelled twice");
            assert_eq!(HangupCause::parse(c.as_str()), Some(c));
            assert_eq!(Outcome::Ended(c).disposition(), Disposition::Answered);
        }
        assert_eq!(HangupCause::parse("no such cause"), None);
        // The strings the CDRs and the integration tests read.
        for s in [
            "caller hangup",
            "callee hangup",
            "operator",
            "shutdown",
            "credit exhausted",
            "session expired",
            "max duration",
            "rtp timeout",
            "app gone",
            "stream ended",
            "device hangup",
            "remote hangup",
            "no ACK",
        ] {
            assert!(HangupCause::parse(s).is_some(), "{s}");
        }
    }

    #[test]
    fn q850_follows_rfc_3398() {
        let table: &[(u16, u8)] = &[
            (400, 41),
            (401, 21),
            (402, 21),
            (403, 21),
            (404, 1),
            (405, 63),
            (406, 79),
            (407, 21),
            (408, 102),
            (410, 22),
            (413, 127),
            (415, 79),
            (480, 18),
            (481, 41),
            (482, 25),
            (483, 25),
            (484, 28),
            (485, 1),
            (486, 17),
            (500, 41),
            (501, 79),
            (502, 38),
            (503, 41),
            (504, 102),
            (505, 127),
            (600, 17),
            (603, 21),
            (604, 1),
        ];
        for &(status, cause) in table {
            assert_eq!(q850_of_status(status), cause, "{status}");
        }
        assert_eq!(CallFailure::from_status(486).q850(), 17);
        assert_eq!(CallFailure::from_status(404).q850(), 1);
        assert_eq!(CallFailure::from_status(480).q850(), 18);
        assert_eq!(CallFailure::from_status(403).q850(), 21);
        assert_eq!(Outcome::Ended(HangupCause::CallerHangup).q850(), 16);
    }
}
