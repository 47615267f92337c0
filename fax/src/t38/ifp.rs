//! T.38 IFP packet codec: the `IFPPacket` ASN.1 of ITU-T T.38 Annex A, encoded with the
//! BASIC-ALIGNED variant of PER (ITU-T X.691) as T.38 requires.
//!
//! The encoding, bit by bit (MSB first):
//!
//! - `IFPPacket ::= SEQUENCE { type-of-msg, data-field OPTIONAL }`: one presence bit for
//!   `data-field`;
//! - `Type-of-msg ::= CHOICE { t30-indicator, t30-data }` (not extensible): one bit;
//! - `t30-indicator` / `t30-data` are extensible ENUMERATEDs: an extension bit, then the root
//!   value in 4 bits, or (extension bit set) the extension index as a normally small number
//!   (a 0 bit and 6 bits), e.g. `cng` is `0x02` and `v8-ansam` is `0x20 0x00`;
//! - `Data-Field ::= SEQUENCE OF SEQUENCE { field-type, field-data OPTIONAL }`: an
//!   octet-aligned count, then per field one presence bit for `field-data`, the `field-type`,
//!   and, when present, an octet-aligned 16-bit `length - 1` (`SIZE(1..65535)`) and the octets.
//!
//! **Versions.** T.38 version 0 (1998) declared `field-type` without an extension marker, so it
//! is a plain 3-bit number; the corrigendum adopted from version 1 on added the marker (and later
//! the `cm-message`, `jm-message`, `ci-message` and `v34rate` extensions), making it an extension
//! bit plus 3 bits. A field without data is therefore 4 bits in version 0 and 5 bits from version
//! 1, and because PER does not align a SEQUENCE, the next field starts in the same octet. The
//! indicator and data-type enumerations were extensible from the start, so their encoding is the
//! same in every version; their extension values (V.8, V.34, V.33) are refused in version 0.
//!
//! Decoding never panics and never allocates more than the input's size.

use super::per::{BitReader, BitWriter, PerError};
use super::types::{DataType, Field, FieldType, Ifp, Indicator};

/// Most data fields accepted in one IFP packet.
pub const MAX_FIELDS: usize = 64;
/// Most octets in one field's data (`field-data OCTET STRING (SIZE(1..65535))`).
pub const MAX_FIELD_DATA: usize = 65535;
/// Most octets in one encoded IFP packet.
pub const MAX_PACKET: usize = 65535;

/// Which enumeration a value belongs to (for error reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IfpItem {
    /// `t30-indicator`
    Indicator,
    /// `t30-data`
    DataType,
    /// `field-type`
    FieldType,
}

impl std::fmt::Display for IfpItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IfpItem::Indicator => "t30-indicator",
            IfpItem::DataType => "t30-data",
            IfpItem::FieldType => "field-type",
        })
    }
}

/// Why an IFP packet could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IfpError {
    /// The packet ended in the middle of a value.
    #[error("IFP packet truncated")]
    Truncated,
    /// A length determinant is malformed (or a field length is out of `1..=65535`).
    #[error("malformed length in IFP packet")]
    BadLength,
    /// The packet is longer than [`MAX_PACKET`].
    #[error("IFP packet of {len} octets exceeds {max}")]
    PacketTooLong {
        /// The packet's length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// More than [`MAX_FIELDS`] data fields.
    #[error("IFP packet has {count} data fields, more than {max}")]
    TooManyFields {
        /// Fields in the packet.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// A field's data is longer than [`MAX_FIELD_DATA`].
    #[error("IFP field data of {len} octets exceeds {max}")]
    FieldTooLong {
        /// The data length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// An extension value this implementation does not know.
    #[error("unknown {item} extension value {index}")]
    UnknownExtension {
        /// The enumeration.
        item: IfpItem,
        /// The extension index (0 is the first value after the `...`).
        index: u32,
    },
    /// A root value outside the enumeration (e.g. `t30-data` 9 to 15).
    #[error("invalid {item} value {value}")]
    BadValue {
        /// The enumeration.
        item: IfpItem,
        /// The value found.
        value: u32,
    },
    /// Whole octets left after the packet.
    #[error("{extra} trailing octet(s) after the IFP packet")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A value that the negotiated T.38 version does not define.
    #[error("{item} value {value} is not defined in T.38 version {version}")]
    NotInVersion {
        /// The enumeration.
        item: IfpItem,
        /// The ASN.1 name of the value.
        value: &'static str,
        /// The version in use.
        version: u8,
    },
    /// A `t30-indicator` packet with a `data-field`, which has no meaning.
    #[error("t30-indicator packet carries a data field")]
    DataFieldWithIndicator,
}

impl From<PerError> for IfpError {
    fn from(e: PerError) -> Self {
        match e {
            PerError::Truncated => IfpError::Truncated,
            PerError::BadLength => IfpError::BadLength,
            PerError::TooLong { len } => IfpError::TooManyFields {
                count: len,
                max: MAX_FIELDS,
            },
        }
    }
}

/// Root values, then extension values, in ASN.1 order, with their ASN.1 names.
const INDICATORS: [(Indicator, &str); 23] = [
    (Indicator::NoSignal, "no-signal"),
    (Indicator::Cng, "cng"),
    (Indicator::Ced, "ced"),
    (Indicator::V21Preamble, "v21-preamble"),
    (Indicator::V27_2400Training, "v27-2400-training"),
    (Indicator::V27_4800Training, "v27-4800-training"),
    (Indicator::V29_7200Training, "v29-7200-training"),
    (Indicator::V29_9600Training, "v29-9600-training"),
    (Indicator::V17_7200ShortTraining, "v17-7200-short-training"),
    (Indicator::V17_7200LongTraining, "v17-7200-long-training"),
    (Indicator::V17_9600ShortTraining, "v17-9600-short-training"),
    (Indicator::V17_9600LongTraining, "v17-9600-long-training"),
    (
        Indicator::V17_12000ShortTraining,
        "v17-12000-short-training",
    ),
    (Indicator::V17_12000LongTraining, "v17-12000-long-training"),
    (
        Indicator::V17_14400ShortTraining,
        "v17-14400-short-training",
    ),
    (Indicator::V17_14400LongTraining, "v17-14400-long-training"),
    (Indicator::V8Ansam, "v8-ansam"),
    (Indicator::V8Signal, "v8-signal"),
    (Indicator::V34CntlChannel1200, "v34-cntl-channel-1200"),
    (Indicator::V34PriChannel, "v34-pri-channel"),
    (Indicator::V34CcRetrain, "v34-CC-retrain"),
    (Indicator::V33_12000Training, "v33-12000-training"),
    (Indicator::V33_14400Training, "v33-14400-training"),
];
const INDICATOR_ROOT: usize = 16;

const DATA_TYPES: [(DataType, &str); 15] = [
    (DataType::V21, "v21"),
    (DataType::V27_2400, "v27-2400"),
    (DataType::V27_4800, "v27-4800"),
    (DataType::V29_7200, "v29-7200"),
    (DataType::V29_9600, "v29-9600"),
    (DataType::V17_7200, "v17-7200"),
    (DataType::V17_9600, "v17-9600"),
    (DataType::V17_12000, "v17-12000"),
    (DataType::V17_14400, "v17-14400"),
    (DataType::V8, "v8"),
    (DataType::V34PriRate, "v34-pri-rate"),
    (DataType::V34Cc1200, "v34-CC-1200"),
    (DataType::V34PriCh, "v34-pri-ch"),
    (DataType::V33_12000, "v33-12000"),
    (DataType::V33_14400, "v33-14400"),
];
const DATA_TYPE_ROOT: usize = 9;

const FIELD_TYPES: [(FieldType, &str); 12] = [
    (FieldType::HdlcData, "hdlc-data"),
    (FieldType::HdlcSigEnd, "hdlc-sig-end"),
    (FieldType::HdlcFcsOk, "hdlc-fcs-OK"),
    (FieldType::HdlcFcsBad, "hdlc-fcs-BAD"),
    (FieldType::HdlcFcsOkSigEnd, "hdlc-fcs-OK-sig-end"),
    (FieldType::HdlcFcsBadSigEnd, "hdlc-fcs-BAD-sig-end"),
    (FieldType::T4NonEcmData, "t4-non-ecm-data"),
    (FieldType::T4NonEcmSigEnd, "t4-non-ecm-sig-end"),
    (FieldType::CmMessage, "cm-message"),
    (FieldType::JmMessage, "jm-message"),
    (FieldType::CiMessage, "ci-message"),
    (FieldType::V34Rate, "v34rate"),
];
const FIELD_TYPE_ROOT: usize = 8;

/// Position (ASN.1 order) and name of `value` in `table`.
fn lookup<T: PartialEq + Copy>(table: &[(T, &'static str)], value: T) -> (usize, &'static str) {
    table
        .iter()
        .enumerate()
        .find(|(_, (v, _))| *v == value)
        .map_or((0, ""), |(i, (_, name))| (i, *name))
}

/// The ASN.1 name of an indicator (e.g. `"v21-preamble"`).
pub fn indicator_name(value: Indicator) -> &'static str {
    lookup(&INDICATORS, value).1
}

/// The ASN.1 name of a data type (e.g. `"v29-9600"`).
pub fn data_type_name(value: DataType) -> &'static str {
    lookup(&DATA_TYPES, value).1
}

/// The ASN.1 name of a field type (e.g. `"hdlc-fcs-OK-sig-end"`).
pub fn field_type_name(value: FieldType) -> &'static str {
    lookup(&FIELD_TYPES, value).1
}

/// Layout of one enumeration in one version.
struct EnumSpec<T: 'static> {
    item: IfpItem,
    table: &'static [(T, &'static str)],
    root: usize,
    root_bits: u32,
    extensible: bool,
}

const INDICATOR_SPEC: EnumSpec<Indicator> = EnumSpec {
    item: IfpItem::Indicator,
    table: &INDICATORS,
    root: INDICATOR_ROOT,
    root_bits: 4,
    extensible: true,
};
const DATA_TYPE_SPEC: EnumSpec<DataType> = EnumSpec {
    item: IfpItem::DataType,
    table: &DATA_TYPES,
    root: DATA_TYPE_ROOT,
    root_bits: 4,
    extensible: true,
};

/// `field-type` in the given version: version 0 has no extension marker.
fn field_type_spec(version: u8) -> EnumSpec<FieldType> {
    EnumSpec {
        item: IfpItem::FieldType,
        table: &FIELD_TYPES,
        root: FIELD_TYPE_ROOT,
        root_bits: 3,
        extensible: version != 0,
    }
}

impl<T: PartialEq + Copy + 'static> EnumSpec<T> {
    /// Checks that `value` exists in `version` and returns its ASN.1 position.
    fn index(&self, value: T, version: u8) -> Result<usize, IfpError> {
        let (index, name) = lookup(self.table, value);
        if index >= self.root && version == 0 {
            return Err(IfpError::NotInVersion {
                item: self.item,
                value: name,
                version,
            });
        }
        Ok(index)
    }

    fn write(&self, w: &mut BitWriter<'_>, index: usize) {
        if self.extensible {
            w.bit(index >= self.root);
        }
        if index < self.root {
            w.bits(index as u32, self.root_bits);
        } else {
            w.small_number((index - self.root) as u32);
        }
    }

    fn read(&self, r: &mut BitReader<'_>, version: u8) -> Result<T, IfpError> {
        let extended = self.extensible && r.bit()?;
        let index = if extended {
            let ext = r.small_number()?;
            let index = self.root.saturating_add(ext as usize);
            if index >= self.table.len() {
                return Err(IfpError::UnknownExtension {
                    item: self.item,
                    index: ext,
                });
            }
            index
        } else {
            let value = r.bits(self.root_bits)?;
            if value as usize >= self.root {
                return Err(IfpError::BadValue {
                    item: self.item,
                    value,
                });
            }
            value as usize
        };
        let &(value, name) = self.table.get(index).ok_or(IfpError::BadValue {
            item: self.item,
            value: index as u32,
        })?;
        if extended && version == 0 {
            return Err(IfpError::NotInVersion {
                item: self.item,
                value: name,
                version,
            });
        }
        Ok(value)
    }
}

/// Decodes one IFP packet that must fill `buf` exactly (up to the final padding bits).
///
/// `version` is the negotiated `T38FaxVersion`: 0 uses the original `field-type` encoding,
/// anything else the corrigendum one (see the module documentation).
pub fn decode(buf: &[u8], version: u8) -> Result<Ifp, IfpError> {
    let (ifp, used) = decode_prefix(buf, version)?;
    match buf.len() - used.min(buf.len()) {
        0 => Ok(ifp),
        extra => Err(IfpError::TrailingBytes { extra }),
    }
}

/// Decodes one IFP packet from the start of `buf` and returns it with the number of octets it
/// used. This is for payloads rebuilt by UDPTL FEC, which carry zero padding up to the longest
/// packet of their group: decode with this and ignore the rest.
pub fn decode_prefix(buf: &[u8], version: u8) -> Result<(Ifp, usize), IfpError> {
    if buf.len() > MAX_PACKET {
        return Err(IfpError::PacketTooLong {
            len: buf.len(),
            max: MAX_PACKET,
        });
    }
    let mut r = BitReader::new(buf);
    let data_field = r.bit()?;
    let ifp = if r.bit()? {
        let kind = DATA_TYPE_SPEC.read(&mut r, version)?;
        let fields = if data_field {
            read_fields(&mut r, version)?
        } else {
            Vec::new()
        };
        Ifp::Data { kind, fields }
    } else {
        let indicator = INDICATOR_SPEC.read(&mut r, version)?;
        if data_field {
            return Err(IfpError::DataFieldWithIndicator);
        }
        Ifp::Indicator(indicator)
    };
    r.align();
    Ok((ifp, r.consumed()))
}

fn read_fields(r: &mut BitReader<'_>, version: u8) -> Result<Vec<Field>, IfpError> {
    let count = r.count(MAX_FIELDS)?;
    // Every field takes at least four bits, so a count the buffer cannot hold is truncation:
    // refuse it before reserving anything.
    if count > r.remaining().saturating_mul(2) {
        return Err(IfpError::Truncated);
    }
    let spec = field_type_spec(version);
    let mut fields = Vec::with_capacity(count);
    for _ in 0..count {
        let has_data = r.bit()?;
        let kind = spec.read(r, version)?;
        let data = if has_data {
            // Constrained length 1..=65535: two aligned octets holding `length - 1`.
            r.align();
            let len = r.bits(16)? as usize + 1;
            if len > MAX_FIELD_DATA {
                return Err(IfpError::BadLength);
            }
            r.octets(len)?.to_vec()
        } else {
            Vec::new()
        };
        fields.push(Field { kind, data });
    }
    Ok(fields)
}

/// Appends the encoding of `ifp` for T.38 `version` to `out`.
///
/// A data packet without fields is sent without a `data-field`; a field with empty data is sent
/// without `field-data`. Extension values are refused in version 0. On error nothing is appended.
pub fn encode(ifp: &Ifp, version: u8, out: &mut Vec<u8>) -> Result<(), IfpError> {
    // Validate everything before writing anything.
    let start = out.len();
    match ifp {
        Ifp::Indicator(indicator) => {
            let index = INDICATOR_SPEC.index(*indicator, version)?;
            let mut w = BitWriter::new(out);
            w.bit(false);
            w.bit(false);
            INDICATOR_SPEC.write(&mut w, index);
        }
        Ifp::Data { kind, fields } => {
            let index = DATA_TYPE_SPEC.index(*kind, version)?;
            if fields.len() > MAX_FIELDS {
                return Err(IfpError::TooManyFields {
                    count: fields.len(),
                    max: MAX_FIELDS,
                });
            }
            let spec = field_type_spec(version);
            let mut field_indexes = Vec::with_capacity(fields.len());
            let mut total = 0usize;
            for field in fields {
                if field.data.len() > MAX_FIELD_DATA {
                    return Err(IfpError::FieldTooLong {
                        len: field.data.len(),
                        max: MAX_FIELD_DATA,
                    });
                }
                total = total.saturating_add(field.data.len());
                field_indexes.push(spec.index(field.kind, version)?);
            }
            // A quick necessary condition; the exact size is checked after writing.
            if total > MAX_PACKET {
                return Err(IfpError::PacketTooLong {
                    len: total,
                    max: MAX_PACKET,
                });
            }
            let mut w = BitWriter::new(out);
            w.bit(!fields.is_empty());
            w.bit(true);
            DATA_TYPE_SPEC.write(&mut w, index);
            if !fields.is_empty() {
                w.length(fields.len());
                for (field, &index) in fields.iter().zip(&field_indexes) {
                    w.bit(!field.data.is_empty());
                    spec.write(&mut w, index);
                    if !field.data.is_empty() {
                        w.align();
                        w.bits((field.data.len() - 1) as u32, 16);
                        w.octets(&field.data);
                    }
                }
            }
        }
    }
    let len = out.len() - start;
    if len > MAX_PACKET {
        out.truncate(start);
        return Err(IfpError::PacketTooLong {
            len,
            max: MAX_PACKET,
        });
    }
    Ok(())
}

/// Encodes `ifp` into a new vector (see [`encode`]).
pub fn to_bytes(ifp: &Ifp, version: u8) -> Result<Vec<u8>, IfpError> {
    let mut out = Vec::new();
    encode(ifp, version, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
