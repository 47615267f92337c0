//! The `T38Fax*` SDP attributes we offer and answer (ITU-T T.38 Annex D,
//! the SIP/SDP call establishment procedures): version, bit rate, rate
//! management, buffer and datagram sizes, and UDP error correction. We do
//! transferred TCF and UDPTL redundancy.

/// Largest UDPTL datagram we accept (bytes).
pub const MAX_DATAGRAM: u32 = 400;
/// Our T.38 buffer (bytes).
pub const MAX_BUFFER: u32 = 2000;

/// The value of attribute `name` (case-insensitive) in `attrs`.
pub fn attribute<'a>(attrs: &'a [(String, Option<String>)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_deref())
}

/// Attributes of our offer.
pub fn offer(version: u8, max_rate: u32) -> Vec<String> {
    lines(version, max_rate, "transferredTCF", MAX_DATAGRAM)
}

/// Attributes answering `offered`: the lower version and bit rate, the
/// offer's rate management, the smaller datagram, redundancy.
pub fn answer(offered: &[(String, Option<String>)], version: u8, max_rate: u32) -> Vec<String> {
    let num = |name| attribute(offered, name).and_then(|v| v.trim().parse::<u32>().ok());
    let v = num("T38FaxVersion").map_or(0, |o| o.min(u32::from(version)));
    let rate = num("T38MaxBitRate").map_or(max_rate, |o| o.min(max_rate));
    let mgmt = match attribute(offered, "T38FaxRateManagement") {
        Some(m) if m.eq_ignore_ascii_case("localTCF") => "localTCF",
        _ => "transferredTCF",
    };
    let datagram = num("T38FaxMaxDatagram").map_or(MAX_DATAGRAM, |d| d.clamp(100, MAX_DATAGRAM));
    lines(u8::try_from(v).unwrap_or(0), rate, mgmt, datagram)
}

fn lines(version: u8, max_rate: u32, mgmt: &str, datagram: u32) -> Vec<String> {
    vec![
        format!("T38FaxVersion:{version}"),
        format!("T38MaxBitRate:{max_rate}"),
        format!("T38FaxRateManagement:{mgmt}"),
        format!("T38FaxMaxBuffer:{MAX_BUFFER}"),
        format!("T38FaxMaxDatagram:{datagram}"),
        "T38FaxUdpEC:t38UDPRedundancy".to_string(),
    ]
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
        ]);
        let a = answer(&offered, 0, 14400);
        assert_eq!(a[0], "T38FaxVersion:0");
        assert_eq!(a[1], "T38MaxBitRate:9600");
        assert_eq!(a[2], "T38FaxRateManagement:localTCF");
        assert_eq!(a[4], "T38FaxMaxDatagram:400");
        // Nothing offered: our defaults.
        let a = answer(&[], 2, 14400);
        assert_eq!(
            (a[0].as_str(), a[1].as_str()),
            ("T38FaxVersion:0", "T38MaxBitRate:14400")
        );
        assert_eq!(offer(0, 9600)[1], "T38MaxBitRate:9600");
    }
}
