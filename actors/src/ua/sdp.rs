//! The `T38Fax*` SDP attributes we offer and answer (ITU-T T.38 Annex D),
//! built on the T.38 parameter core: transferred TCF, UDPTL redundancy, a
//! 2000-octet buffer and 400-octet datagrams.

use switchboard_fax::t38::params::{RateManagement, T38Params, UdpEc};

/// Largest UDPTL datagram we accept (bytes).
pub const MAX_DATAGRAM: u32 = 400;
/// Our T.38 buffer (bytes).
pub const MAX_BUFFER: u32 = 2000;

/// What we support.
pub fn ours(version: u8, max_rate: u32) -> T38Params {
    T38Params {
        version,
        max_bitrate: max_rate,
        rate_management: RateManagement::TransferredTcf,
        max_buffer: Some(MAX_BUFFER),
        max_datagram: Some(MAX_DATAGRAM),
        error_correction: UdpEc::Redundancy,
        ..T38Params::default()
    }
}

/// The far end's parameters from its attributes (defaults where absent or unreadable).
pub fn theirs(attrs: &[(String, Option<String>)]) -> T38Params {
    T38Params::from_attributes(attrs.iter().map(|(n, v)| (n.as_str(), v.as_deref())))
        .unwrap_or_default()
}

fn values(p: &T38Params) -> Vec<String> {
    p.to_attribute_lines()
        .into_iter()
        .map(|l| l.strip_prefix("a=").map(str::to_string).unwrap_or(l))
        .collect()
}

/// Attribute values (without `a=`) of our offer.
pub fn offer(version: u8, max_rate: u32) -> Vec<String> {
    values(&ours(version, max_rate))
}

/// Attribute values answering `offered` (T.38 Annex D negotiation).
pub fn answer(offered: &[(String, Option<String>)], version: u8, max_rate: u32) -> Vec<String> {
    values(&T38Params::answer(
        &theirs(offered),
        &ours(version, max_rate),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(list: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), Some(v.to_string())))
            .collect()
    }

    #[test]
    fn answer_takes_the_lower_version_and_rate() {
        let offered = attrs(&[
            ("T38FaxVersion", "3"),
            ("t38maxbitrate", "9600"),
            ("T38FaxRateManagement", "localTCF"),
            ("T38FaxMaxDatagram", "1400"),
            ("T38FaxUdpEC", "t38UDPRedundancy"),
        ]);
        let a = answer(&offered, 0, 14400);
        assert!(a.contains(&"T38FaxVersion:0".to_string()), "{a:?}");
        assert!(a.contains(&"T38MaxBitRate:9600".to_string()), "{a:?}");
        assert!(
            a.contains(&"T38FaxRateManagement:localTCF".to_string()),
            "{a:?}"
        );
        assert!(a.contains(&"T38FaxMaxDatagram:400".to_string()), "{a:?}");
        assert!(
            a.contains(&"T38FaxUdpEC:t38UDPRedundancy".to_string()),
            "{a:?}"
        );
        let o = offer(0, 9600);
        assert!(o.contains(&"T38MaxBitRate:9600".to_string()), "{o:?}");
        assert!(o.iter().all(|l| !l.starts_with("a=")));
    }
}
