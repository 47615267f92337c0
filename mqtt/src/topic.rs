//! Device topics (MQTT 3.1.1 topic names, OASIS §4.7): parsing and formatting of
//! the `devices/{id}/…` and `claim/{id}/…` topics, and the access rules: a
//! device may only touch its own topics, and a device that is not claimed yet
//! only its claim request and the response addressed to its own nonce.

use std::fmt;

use crate::broker::Principal;

/// Longest device id accepted.
pub const MAX_DEVICE_ID: usize = 64;
/// Longest request id in a command topic.
pub const MAX_REQUEST_ID: usize = 64;

/// Why a topic or id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The id is empty, too long or has characters outside `[A-Za-z0-9_-]`.
    #[error("invalid {what} (1..={max} characters of A-Z a-z 0-9 _ -)")]
    BadId {
        /// Which id.
        what: &'static str,
        /// Its maximum length.
        max: usize,
    },
    /// Not one of the device topics.
    #[error("not a device topic")]
    Unknown,
}

fn valid_id(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A device id: `[A-Za-z0-9_-]{1,64}`, so it is always one topic level with no wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(String);

impl DeviceId {
    /// Validate a device id.
    pub fn parse(s: &str) -> Result<Self, TopicError> {
        if valid_id(s, MAX_DEVICE_ID) {
            Ok(Self(s.to_string()))
        } else {
            Err(TopicError::BadId {
                what: "device id",
                max: MAX_DEVICE_ID,
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The topics a device and the gateway exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// `devices/{id}/status`: retained `online`/`offline` (LWT).
    Status(DeviceId),
    /// `devices/{id}/telemetry`: JSON readings.
    Telemetry(DeviceId),
    /// `devices/{id}/cmd/{req}`: a command for the device.
    Command(DeviceId, String),
    /// `devices/{id}/cmd/{req}/reply`: the device's answer.
    CommandReply(DeviceId, String),
    /// `devices/{id}/audio/up`: audio from the device.
    AudioUp(DeviceId),
    /// `devices/{id}/audio/down`: audio to the device.
    AudioDown(DeviceId),
    /// `devices/{id}/call`: call control toward the device (ring, answered, hangup).
    Call(DeviceId),
    /// `devices/{id}/call/event`: the device's answer, refusal or hangup.
    CallEvent(DeviceId),
    /// `devices/{id}/dial`: the device places a call.
    Dial(DeviceId),
    /// `claim/{id}/request`: a pairing request.
    ClaimRequest(DeviceId),
    /// `claim/{id}/response/{nonce}`: the gateway's answer, addressed to the
    /// nonce of the request so that only the requester (who chose the
    /// nonce) can subscribe to it.
    ClaimResponse(DeviceId, String),
}

impl Topic {
    /// Parse a topic name (no wildcards).
    pub fn parse(topic: &str) -> Result<Self, TopicError> {
        let parts: Vec<&str> = topic.split('/').collect();
        let id = |s: &str| DeviceId::parse(s);
        let req = |s: &str| {
            if valid_id(s, MAX_REQUEST_ID) {
                Ok(s.to_string())
            } else {
                Err(TopicError::BadId {
                    what: "request id",
                    max: MAX_REQUEST_ID,
                })
            }
        };
        match parts.as_slice() {
            ["devices", d, "status"] => Ok(Self::Status(id(d)?)),
            ["devices", d, "telemetry"] => Ok(Self::Telemetry(id(d)?)),
            ["devices", d, "cmd", r] => Ok(Self::Command(id(d)?, req(r)?)),
            ["devices", d, "cmd", r, "reply"] => Ok(Self::CommandReply(id(d)?, req(r)?)),
            ["devices", d, "audio", "up"] => Ok(Self::AudioUp(id(d)?)),
            ["devices", d, "audio", "down"] => Ok(Self::AudioDown(id(d)?)),
            ["devices", d, "call"] => Ok(Self::Call(id(d)?)),
            ["devices", d, "call", "event"] => Ok(Self::CallEvent(id(d)?)),
            ["devices", d, "dial"] => Ok(Self::Dial(id(d)?)),
            ["claim", d, "request"] => Ok(Self::ClaimRequest(id(d)?)),
            ["claim", d, "response", n] => Ok(Self::ClaimResponse(id(d)?, req(n)?)),
            _ => Err(TopicError::Unknown),
        }
    }

    /// The device the topic belongs to.
    pub fn device(&self) -> &DeviceId {
        match self {
            Self::Status(d)
            | Self::Telemetry(d)
            | Self::Command(d, _)
            | Self::CommandReply(d, _)
            | Self::AudioUp(d)
            | Self::AudioDown(d)
            | Self::Call(d)
            | Self::CallEvent(d)
            | Self::Dial(d)
            | Self::ClaimRequest(d)
            | Self::ClaimResponse(d, _) => d,
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(d) => write!(f, "devices/{d}/status"),
            Self::Telemetry(d) => write!(f, "devices/{d}/telemetry"),
            Self::Command(d, r) => write!(f, "devices/{d}/cmd/{r}"),
            Self::CommandReply(d, r) => write!(f, "devices/{d}/cmd/{r}/reply"),
            Self::AudioUp(d) => write!(f, "devices/{d}/audio/up"),
            Self::AudioDown(d) => write!(f, "devices/{d}/audio/down"),
            Self::Call(d) => write!(f, "devices/{d}/call"),
            Self::CallEvent(d) => write!(f, "devices/{d}/call/event"),
            Self::Dial(d) => write!(f, "devices/{d}/dial"),
            Self::ClaimRequest(d) => write!(f, "claim/{d}/request"),
            Self::ClaimResponse(d, n) => write!(f, "claim/{d}/response/{n}"),
        }
    }
}

/// Whether a claimed `device` may publish on `topic`: only its own status,
/// telemetry, command replies, uplink audio, call events and dial requests.
pub fn may_publish(device: &DeviceId, topic: &str) -> bool {
    match Topic::parse(topic) {
        Ok(
            t @ (Topic::Status(_)
            | Topic::Telemetry(_)
            | Topic::CommandReply(..)
            | Topic::AudioUp(_)
            | Topic::CallEvent(_)
            | Topic::Dial(_)),
        ) => t.device() == device,
        _ => false,
    }
}

/// Whether an unclaimed `device` may publish on `topic`: its claim request only.
pub fn claimant_may_publish(device: &DeviceId, topic: &str) -> bool {
    matches!(Topic::parse(topic), Ok(Topic::ClaimRequest(d)) if d == *device)
}

/// Whether an unclaimed `device` may subscribe to `filter`: the response to
/// one of its own claim nonces, written out (no wildcards).
pub fn claimant_may_subscribe(device: &DeviceId, filter: &str) -> bool {
    !filter.contains(['+', '#'])
        && matches!(Topic::parse(filter), Ok(Topic::ClaimResponse(d, _)) if d == *device)
}

/// Whether a claimed `device` may subscribe to `filter`: its own commands,
/// call control and downlink audio, written out or with a trailing `+` for the command request
/// id. Any other wildcard is refused.
pub fn may_subscribe(device: &DeviceId, filter: &str) -> bool {
    let own = format!("devices/{device}/");
    if filter == format!("{own}cmd/+") {
        return true;
    }
    if filter.contains('+') || filter.contains('#') {
        return false;
    }
    match Topic::parse(filter) {
        Ok(t @ (Topic::Command(..) | Topic::AudioDown(_) | Topic::Call(_))) => t.device() == device,
        _ => false,
    }
}

/// The gateway's publish rule for any principal: a device per [`may_publish`], a claimant per
/// [`claimant_may_publish`], the gateway's own services anything.
pub fn principal_may_publish(who: &Principal, topic: &str) -> bool {
    match who {
        Principal::Device(id) => may_publish(id, topic),
        Principal::Claimant(id) => claimant_may_publish(id, topic),
        Principal::Service(_) => true,
    }
}

/// The gateway's subscribe rule for any principal (see [`principal_may_publish`]).
pub fn principal_may_subscribe(who: &Principal, filter: &str) -> bool {
    match who {
        Principal::Device(id) => may_subscribe(id, filter),
        Principal::Claimant(id) => claimant_may_subscribe(id, filter),
        Principal::Service(_) => true,
    }
}

/// What the broker keeps as retained: a device only its own status (the Last Will `offline`
/// and its `online`), a claimant nothing, the gateway's services anything.
pub fn principal_may_retain(who: &Principal, topic: &str) -> bool {
    match who {
        Principal::Device(id) => matches!(Topic::parse(topic), Ok(Topic::Status(d)) if &d == id),
        Principal::Claimant(_) => false,
        Principal::Service(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(s: &str) -> DeviceId {
        DeviceId::parse(s).unwrap()
    }

    #[test]
    fn topics_round_trip() {
        for t in [
            "devices/esp-1/status",
            "devices/esp-1/telemetry",
            "devices/esp-1/cmd/r42",
            "devices/esp-1/cmd/r42/reply",
            "devices/esp-1/audio/up",
            "devices/esp-1/audio/down",
            "devices/esp-1/call",
            "devices/esp-1/call/event",
            "devices/esp-1/dial",
            "claim/esp-1/request",
            "claim/esp-1/response/n0nce-123",
        ] {
            assert_eq!(Topic::parse(t).unwrap().to_string(), t);
        }
    }

    #[test]
    fn bad_ids_and_topics_are_refused() {
        assert!(DeviceId::parse("").is_err());
        assert!(DeviceId::parse("a/b").is_err());
        assert!(DeviceId::parse("+").is_err());
        assert!(DeviceId::parse(&"x".repeat(65)).is_err());
        assert_eq!(Topic::parse("devices/a/other"), Err(TopicError::Unknown));
        assert_eq!(
            Topic::parse("devices//status").unwrap_err(),
            TopicError::BadId {
                what: "device id",
                max: 64
            }
        );
        assert!(Topic::parse("devices/#/status").is_err());
    }

    #[test]
    fn a_device_touches_only_its_own_topics() {
        let a = dev("a");
        assert!(may_publish(&a, "devices/a/telemetry"));
        assert!(!may_publish(&a, "devices/b/telemetry"));
        assert!(
            !may_publish(&a, "devices/a/cmd/1"),
            "commands come from the gateway"
        );
        assert!(may_subscribe(&a, "devices/a/cmd/+"));
        assert!(may_subscribe(&a, "devices/a/audio/down"));
        assert!(may_subscribe(&a, "devices/a/call"));
        assert!(!may_subscribe(&a, "devices/b/call"));
        assert!(!may_subscribe(&a, "devices/a/call/event"));
        assert!(may_publish(&a, "devices/a/call/event"));
        assert!(may_publish(&a, "devices/a/dial"));
        assert!(!may_publish(&a, "devices/b/dial"));
        assert!(
            !may_publish(&a, "devices/a/call"),
            "call control comes from the gateway"
        );
        assert!(!may_subscribe(&a, "devices/b/cmd/+"));
        assert!(!may_subscribe(&a, "devices/#"));
        assert!(!may_subscribe(&a, "devices/+/telemetry"));
        assert!(!may_subscribe(&a, "devices/a/telemetry"));
        assert!(
            !may_publish(&a, "claim/a/request"),
            "claimed devices do not claim again"
        );
    }

    #[test]
    fn a_claimant_sees_only_its_own_claim_exchange() {
        let a = dev("a");
        assert!(claimant_may_publish(&a, "claim/a/request"));
        assert!(!claimant_may_publish(&a, "claim/b/request"));
        assert!(!claimant_may_publish(&a, "devices/a/telemetry"));
        assert!(claimant_may_subscribe(
            &a,
            "claim/a/response/abcdef0123456789"
        ));
        assert!(!claimant_may_subscribe(&a, "claim/a/response/+"));
        assert!(!claimant_may_subscribe(&a, "claim/a/#"));
        assert!(!claimant_may_subscribe(
            &a,
            "claim/b/response/abcdef0123456789"
        ));
        assert!(!claimant_may_subscribe(&a, "claim/a/request"));
    }
}
