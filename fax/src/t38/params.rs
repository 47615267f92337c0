//! SDP parameters of a T.38 session: the `T38Fax...` media attributes of ITU-T T.38 Annex D
//! (SIP/SDP call establishment; the same names are registered for `image/t38` by RFC 3362 and
//! used by RFC 4612), and the offer/answer rules for them.
//!
//! ```text
//! m=image 5000 udptl t38
//! a=T38FaxVersion:0
//! a=T38MaxBitRate:14400
//! a=T38FaxFillBitRemoval
//! a=T38FaxRateManagement:transferredTCF
//! a=T38FaxMaxBuffer:1800
//! a=T38FaxMaxDatagram:400
//! a=T38FaxUdpEC:t38UDPRedundancy
//! ```
//!
//! Names and tokens are matched without regard to case; unknown attributes are ignored.

use super::udptl::TxErrorCorrection;

/// `T38FaxRateManagement`: who checks the training (TCF) of the image modem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateManagement {
    /// `transferredTCF`: TCF is carried end to end (required over TCP).
    TransferredTcf,
    /// `localTCF`: each gateway checks TCF locally.
    LocalTcf,
}

impl RateManagement {
    /// The SDP token.
    pub fn as_str(self) -> &'static str {
        match self {
            RateManagement::TransferredTcf => "transferredTCF",
            RateManagement::LocalTcf => "localTCF",
        }
    }
}

/// `T38FaxUdpEC`: the UDPTL error correction, ordered from least to most capable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UdpEc {
    /// No error correction (`t38UDPNoEC`, or no attribute).
    None,
    /// `t38UDPRedundancy`: earlier packets repeated.
    Redundancy,
    /// `t38UDPFEC`: parity FEC.
    Fec,
}

impl UdpEc {
    /// The SDP token.
    pub fn as_str(self) -> &'static str {
        match self {
            UdpEc::None => "t38UDPNoEC",
            UdpEc::Redundancy => "t38UDPRedundancy",
            UdpEc::Fec => "t38UDPFEC",
        }
    }

    /// The sender's error correction for this mode with common defaults: redundancy depth 3,
    /// or FEC over 3 packets with 3 entries.
    pub fn tx_default(self) -> TxErrorCorrection {
        match self {
            UdpEc::None => TxErrorCorrection::Redundancy { depth: 0 },
            UdpEc::Redundancy => TxErrorCorrection::Redundancy { depth: 3 },
            UdpEc::Fec => TxErrorCorrection::Fec {
                span: 3,
                entries: 3,
            },
        }
    }
}

/// Why T.38 attributes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// An attribute that needs a value has none.
    #[error("T.38 attribute {name} needs a value")]
    MissingValue {
        /// The attribute.
        name: &'static str,
    },
    /// An attribute value that is not valid for it.
    #[error("T.38 attribute {name} has invalid value {value:?}")]
    BadValue {
        /// The attribute.
        name: &'static str,
        /// The value found.
        value: String,
    },
}

const VERSION: &str = "T38FaxVersion";
const MAX_BITRATE: &str = "T38MaxBitRate";
const RATE_MANAGEMENT: &str = "T38FaxRateManagement";
const MAX_BUFFER: &str = "T38FaxMaxBuffer";
const MAX_DATAGRAM: &str = "T38FaxMaxDatagram";
const UDP_EC: &str = "T38FaxUdpEC";
const FILL_BIT_REMOVAL: &str = "T38FaxFillBitRemoval";
const TRANSCODING_MMR: &str = "T38FaxTranscodingMMR";
const TRANSCODING_JBIG: &str = "T38FaxTranscodingJBIG";

/// The T.38 parameters of one side of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct T38Params {
    /// `T38FaxVersion` (0 when absent).
    pub version: u8,
    /// `T38MaxBitRate`, in bit/s (14400 when absent).
    pub max_bitrate: u32,
    /// `T38FaxRateManagement` (`transferredTCF` when absent).
    pub rate_management: RateManagement,
    /// `T38FaxMaxBuffer`: octets of buffer the sender of this description has.
    pub max_buffer: Option<u32>,
    /// `T38FaxMaxDatagram`: the largest UDPTL datagram the sender of this description accepts.
    pub max_datagram: Option<u32>,
    /// `T38FaxUdpEC` (none when absent).
    pub error_correction: UdpEc,
    /// `T38FaxFillBitRemoval`.
    pub fill_bit_removal: bool,
    /// `T38FaxTranscodingMMR`.
    pub transcoding_mmr: bool,
    /// `T38FaxTranscodingJBIG`.
    pub transcoding_jbig: bool,
}

impl Default for T38Params {
    /// What a description without any T.38 attribute means.
    fn default() -> Self {
        Self {
            version: 0,
            max_bitrate: 14400,
            rate_management: RateManagement::TransferredTcf,
            max_buffer: None,
            max_datagram: None,
            error_correction: UdpEc::None,
            fill_bit_removal: false,
            transcoding_mmr: false,
            transcoding_jbig: false,
        }
    }
}

/// Splits an SDP attribute line (`a=T38FaxVersion:0`, `T38FaxFillBitRemoval`) into its name
/// and optional value; the `a=` prefix is optional.
pub fn parse_attribute(line: &str) -> (&str, Option<&str>) {
    let line = line.trim();
    let line = line.strip_prefix("a=").unwrap_or(line);
    match line.split_once(':') {
        Some((name, value)) => (name.trim(), Some(value.trim())),
        None => (line, None),
    }
}

fn value<'a>(name: &'static str, value: Option<&'a str>) -> Result<&'a str, ParamsError> {
    match value.map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ParamsError::MissingValue { name }),
    }
}

fn bad(name: &'static str, value: &str) -> ParamsError {
    ParamsError::BadValue {
        name,
        value: value.to_owned(),
    }
}

fn number<T: std::str::FromStr>(name: &'static str, v: Option<&str>) -> Result<T, ParamsError> {
    let v = value(name, v)?;
    v.parse().map_err(|_| bad(name, v))
}

/// A flag attribute: present without a value means set; `1`/`0` and `true`/`false` are also
/// seen in the field.
fn flag(name: &'static str, v: Option<&str>) -> Result<bool, ParamsError> {
    match v.map(str::trim) {
        None | Some("") | Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(bad(name, v)),
    }
}

impl T38Params {
    /// Reads the T.38 attributes among `(name, value)` pairs (one media section's attributes,
    /// without the `a=`). Absent attributes keep their [`Default`] meaning; for a repeated one
    /// the last wins; others are ignored.
    pub fn from_attributes<'a, I>(attributes: I) -> Result<Self, ParamsError>
    where
        I: IntoIterator<Item = (&'a str, Option<&'a str>)>,
    {
        let mut p = Self::default();
        for (name, v) in attributes {
            let name = name.trim();
            let is = |known: &str| name.eq_ignore_ascii_case(known);
            if is(VERSION) {
                p.version = number(VERSION, v)?;
            } else if is(MAX_BITRATE) {
                p.max_bitrate = number(MAX_BITRATE, v)?;
            } else if is(RATE_MANAGEMENT) {
                let v = value(RATE_MANAGEMENT, v)?;
                p.rate_management = [RateManagement::TransferredTcf, RateManagement::LocalTcf]
                    .into_iter()
                    .find(|r| v.eq_ignore_ascii_case(r.as_str()))
                    .ok_or_else(|| bad(RATE_MANAGEMENT, v))?;
            } else if is(MAX_BUFFER) {
                p.max_buffer = Some(number(MAX_BUFFER, v)?);
            } else if is(MAX_DATAGRAM) {
                p.max_datagram = Some(number(MAX_DATAGRAM, v)?);
            } else if is(UDP_EC) {
                let v = value(UDP_EC, v)?;
                p.error_correction = [UdpEc::None, UdpEc::Redundancy, UdpEc::Fec]
                    .into_iter()
                    .find(|e| v.eq_ignore_ascii_case(e.as_str()))
                    .ok_or_else(|| bad(UDP_EC, v))?;
            } else if is(FILL_BIT_REMOVAL) {
                p.fill_bit_removal = flag(FILL_BIT_REMOVAL, v)?;
            } else if is(TRANSCODING_MMR) {
                p.transcoding_mmr = flag(TRANSCODING_MMR, v)?;
            } else if is(TRANSCODING_JBIG) {
                p.transcoding_jbig = flag(TRANSCODING_JBIG, v)?;
            }
        }
        Ok(p)
    }

    /// Reads the T.38 attributes from SDP attribute lines (see [`parse_attribute`]).
    pub fn from_lines<'a, I>(lines: I) -> Result<Self, ParamsError>
    where
        I: IntoIterator<Item = &'a str>,
    {
        Self::from_attributes(lines.into_iter().map(parse_attribute))
    }

    /// The SDP attribute lines (`a=T38FaxVersion:0`, ...), without line ends. Optional values
    /// that are absent, "no error correction" and unset flags are left out.
    pub fn to_attribute_lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!("a={VERSION}:{}", self.version),
            format!("a={MAX_BITRATE}:{}", self.max_bitrate),
        ];
        for (set, name) in [
            (self.fill_bit_removal, FILL_BIT_REMOVAL),
            (self.transcoding_mmr, TRANSCODING_MMR),
            (self.transcoding_jbig, TRANSCODING_JBIG),
        ] {
            if set {
                lines.push(format!("a={name}"));
            }
        }
        lines.push(format!(
            "a={RATE_MANAGEMENT}:{}",
            self.rate_management.as_str()
        ));
        if let Some(n) = self.max_buffer {
            lines.push(format!("a={MAX_BUFFER}:{n}"));
        }
        if let Some(n) = self.max_datagram {
            lines.push(format!("a={MAX_DATAGRAM}:{n}"));
        }
        if self.error_correction != UdpEc::None {
            lines.push(format!("a={UDP_EC}:{}", self.error_correction.as_str()));
        }
        lines
    }

    /// The parameters to answer `offer` with, given what we support (`ours`): see [`answer`].
    pub fn answer(offer: &T38Params, ours: &T38Params) -> T38Params {
        T38Params {
            version: offer.version.min(ours.version),
            max_bitrate: offer.max_bitrate.min(ours.max_bitrate),
            // The answerer follows the offerer's choice (T.38 Annex D).
            rate_management: offer.rate_management,
            // Our own buffer: a declaration, not a negotiation.
            max_buffer: ours.max_buffer,
            max_datagram: match (offer.max_datagram, ours.max_datagram) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            error_correction: offer.error_correction.min(ours.error_correction),
            fill_bit_removal: offer.fill_bit_removal && ours.fill_bit_removal,
            transcoding_mmr: offer.transcoding_mmr && ours.transcoding_mmr,
            transcoding_jbig: offer.transcoding_jbig && ours.transcoding_jbig,
        }
    }
}

/// Answers a T.38 offer: the lower version and bit rate, the offer's rate management, our own
/// buffer size, the smaller datagram bound, the less capable error correction (FEC, then
/// redundancy, then none: we never answer with more than was offered), and only the options
/// both sides set.
pub fn answer(offer: &T38Params, ours: &T38Params) -> T38Params {
    T38Params::answer(offer, ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASTERISK_OFFER: &[&str] = &[
        "a=T38FaxVersion:0",
        "a=T38MaxBitRate:14400",
        "a=T38FaxFillBitRemoval",
        "a=T38FaxRateManagement:transferredTCF",
        "a=T38FaxMaxBuffer:1800",
        "a=T38FaxMaxDatagram:400",
        "a=T38FaxUdpEC:t38UDPRedundancy",
        "a=rtcp:5001",
    ];

    #[test]
    fn reads_a_typical_offer() {
        let p = T38Params::from_lines(ASTERISK_OFFER.iter().copied()).expect("valid");
        assert_eq!(
            p,
            T38Params {
                version: 0,
                max_bitrate: 14400,
                rate_management: RateManagement::TransferredTcf,
                max_buffer: Some(1800),
                max_datagram: Some(400),
                error_correction: UdpEc::Redundancy,
                fill_bit_removal: true,
                transcoding_mmr: false,
                transcoding_jbig: false,
            }
        );
        assert_eq!(p.to_attribute_lines(), &ASTERISK_OFFER[..7]);
    }

    #[test]
    fn names_and_tokens_ignore_case_and_flags_take_values() {
        let p = T38Params::from_attributes([
            ("t38faxversion", Some("3")),
            ("T38MAXBITRATE", Some(" 33600 ")),
            ("t38faxratemanagement", Some("LOCALtcf")),
            ("T38FaxUdpEc", Some("T38UDPFEC")),
            ("T38FaxFillBitRemoval", Some("0")),
            ("T38FaxTranscodingMMR", Some("1")),
            ("T38FaxTranscodingJBIG", None),
            ("T38VendorInfo", Some("0 0 0")),
        ])
        .expect("valid");
        assert_eq!(p.version, 3);
        assert_eq!(p.max_bitrate, 33600);
        assert_eq!(p.rate_management, RateManagement::LocalTcf);
        assert_eq!(p.error_correction, UdpEc::Fec);
        assert!(!p.fill_bit_removal && p.transcoding_mmr && p.transcoding_jbig);
        let none = T38Params::from_attributes([("T38FaxUdpEC", Some("t38UDPNoEC"))]);
        assert_eq!(none.map(|p| p.error_correction), Ok(UdpEc::None));
        assert_eq!(T38Params::from_attributes([]), Ok(T38Params::default()));
    }

    #[test]
    fn bad_values_are_typed_errors() {
        let cases: [(&str, Option<&str>, ParamsError); 6] = [
            ("T38FaxVersion", Some("256"), bad(VERSION, "256")),
            ("T38MaxBitRate", Some("fast"), bad(MAX_BITRATE, "fast")),
            (
                "T38FaxMaxDatagram",
                None,
                ParamsError::MissingValue { name: MAX_DATAGRAM },
            ),
            (
                "T38FaxRateManagement",
                Some("remoteTCF"),
                bad(RATE_MANAGEMENT, "remoteTCF"),
            ),
            (
                "T38FaxUdpEC",
                Some("t38UDPMagic"),
                bad(UDP_EC, "t38UDPMagic"),
            ),
            (
                "T38FaxFillBitRemoval",
                Some("yes"),
                bad(FILL_BIT_REMOVAL, "yes"),
            ),
        ];
        for (name, v, err) in cases {
            assert_eq!(T38Params::from_attributes([(name, v)]), Err(err));
        }
    }

    #[test]
    fn attribute_lines_round_trip() {
        let p = T38Params {
            version: 2,
            max_bitrate: 9600,
            rate_management: RateManagement::LocalTcf,
            max_buffer: None,
            max_datagram: Some(1400),
            error_correction: UdpEc::Fec,
            fill_bit_removal: false,
            transcoding_mmr: true,
            transcoding_jbig: true,
        };
        let lines = p.to_attribute_lines();
        assert_eq!(lines[0], "a=T38FaxVersion:2");
        assert!(lines.contains(&"a=T38FaxUdpEC:t38UDPFEC".to_owned()));
        assert!(!lines.iter().any(|l| l.contains("MaxBuffer")));
        assert_eq!(
            T38Params::from_lines(lines.iter().map(String::as_str)),
            Ok(p)
        );
        assert_eq!(
            parse_attribute(" a=T38FaxVersion: 1 "),
            ("T38FaxVersion", Some("1"))
        );
        assert_eq!(
            parse_attribute("T38FaxTranscodingMMR"),
            ("T38FaxTranscodingMMR", None)
        );
    }

    #[test]
    fn answer_negotiates_down() {
        let offer = T38Params {
            version: 3,
            max_bitrate: 33600,
            rate_management: RateManagement::LocalTcf,
            max_buffer: Some(2000),
            max_datagram: Some(1400),
            error_correction: UdpEc::Fec,
            fill_bit_removal: true,
            transcoding_mmr: true,
            transcoding_jbig: false,
        };
        let ours = T38Params {
            version: 0,
            max_bitrate: 14400,
            rate_management: RateManagement::TransferredTcf,
            max_buffer: Some(1800),
            max_datagram: Some(400),
            error_correction: UdpEc::Redundancy,
            fill_bit_removal: false,
            transcoding_mmr: true,
            transcoding_jbig: true,
        };
        let a = answer(&offer, &ours);
        assert_eq!(
            a,
            T38Params {
                version: 0,
                max_bitrate: 14400,
                rate_management: RateManagement::LocalTcf,
                max_buffer: Some(1800),
                max_datagram: Some(400),
                error_correction: UdpEc::Redundancy,
                fill_bit_removal: false,
                transcoding_mmr: true,
                transcoding_jbig: false,
            }
        );
        // We never answer with more error correction than offered.
        let plain = T38Params::default();
        assert_eq!(answer(&plain, &offer).error_correction, UdpEc::None);
        let fec = T38Params {
            error_correction: UdpEc::Fec,
            ..T38Params::default()
        };
        assert_eq!(answer(&fec, &fec).error_correction, UdpEc::Fec);
        // One datagram bound known: that one.
        assert_eq!(answer(&plain, &ours).max_datagram, Some(400));
        assert_eq!(answer(&plain, &plain).max_datagram, None);
        assert_eq!(
            UdpEc::Fec.tx_default(),
            TxErrorCorrection::Fec {
                span: 3,
                entries: 3
            }
        );
    }
}
