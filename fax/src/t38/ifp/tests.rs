//! Tests of the IFP codec: hand-built PER goldens for both field-type encodings, bounds,
//! round trips of every variant in every version, and every short input.

use super::*;

fn data(kind: DataType, fields: &[(FieldType, &[u8])]) -> Ifp {
    Ifp::Data {
        kind,
        fields: fields
            .iter()
            .map(|&(kind, data)| Field {
                kind,
                data: data.to_vec(),
            })
            .collect(),
    }
}

fn enc(ifp: &Ifp, version: u8) -> Vec<u8> {
    to_bytes(ifp, version).expect("encodes")
}

/// Encodes to `bytes` and decodes back, in `version`.
fn golden(ifp: &Ifp, version: u8, bytes: &[u8]) {
    assert_eq!(enc(ifp, version), bytes, "{ifp:?} v{version}");
    assert_eq!(decode(bytes, version).as_ref(), Ok(ifp), "v{version}");
}

#[test]
fn golden_indicators_are_one_octet_in_every_version() {
    for version in 0..=3 {
        golden(&Ifp::Indicator(Indicator::NoSignal), version, &[0x00]);
        golden(&Ifp::Indicator(Indicator::Cng), version, &[0x02]);
        golden(&Ifp::Indicator(Indicator::Ced), version, &[0x04]);
        golden(&Ifp::Indicator(Indicator::V21Preamble), version, &[0x06]);
        golden(
            &Ifp::Indicator(Indicator::V29_9600Training),
            version,
            &[0x0E],
        );
        golden(
            &Ifp::Indicator(Indicator::V17_14400LongTraining),
            version,
            &[0x1E],
        );
    }
}

#[test]
fn golden_extension_indicators_from_version_1() {
    for version in 1..=3 {
        golden(&Ifp::Indicator(Indicator::V8Ansam), version, &[0x20, 0x00]);
        golden(&Ifp::Indicator(Indicator::V8Signal), version, &[0x20, 0x40]);
        golden(
            &Ifp::Indicator(Indicator::V34CcRetrain),
            version,
            &[0x21, 0x00],
        );
        golden(
            &Ifp::Indicator(Indicator::V33_14400Training),
            version,
            &[0x21, 0x80],
        );
    }
    let err = to_bytes(&Ifp::Indicator(Indicator::V8Ansam), 0).unwrap_err();
    assert_eq!(
        err,
        IfpError::NotInVersion {
            item: IfpItem::Indicator,
            value: "v8-ansam",
            version: 0
        }
    );
    assert!(matches!(
        decode(&[0x20, 0x00], 0),
        Err(IfpError::NotInVersion { .. })
    ));
    // Extension index 7 is not defined.
    assert_eq!(
        decode(&[0x21, 0xC0], 3),
        Err(IfpError::UnknownExtension {
            item: IfpItem::Indicator,
            index: 7
        })
    );
}

#[test]
fn golden_v21_hdlc_frame_differs_between_versions_only_in_field_type() {
    // DIS-like frame start, then hdlc-fcs-OK-sig-end (no data).
    let ifp = data(
        DataType::V21,
        &[
            (FieldType::HdlcData, &[0xFF, 0xC8]),
            (FieldType::HdlcFcsOkSigEnd, &[]),
        ],
    );
    let v2 = [0xC0, 0x02, 0x80, 0x00, 0x01, 0xFF, 0xC8, 0x20];
    let v0 = [0xC0, 0x02, 0x80, 0x00, 0x01, 0xFF, 0xC8, 0x40];
    golden(&ifp, 2, &v2);
    golden(&ifp, 1, &v2);
    golden(&ifp, 0, &v0);
    // hdlc-data is type 0, so its octet is the same; only the data-less field moves by the
    // extension bit: 0|100 (v0) against 0|0|100 (v1+).
    let differing: Vec<usize> = (0..v0.len()).filter(|&i| v0[i] != v2[i]).collect();
    assert_eq!(differing, [7]);
}

#[test]
fn golden_t4_non_ecm_data() {
    let ifp = data(
        DataType::V29_9600,
        &[(FieldType::T4NonEcmData, &[0x12, 0x34, 0x56])],
    );
    golden(&ifp, 3, &[0xC8, 0x01, 0xB0, 0x00, 0x02, 0x12, 0x34, 0x56]);
    golden(&ifp, 0, &[0xC8, 0x01, 0xE0, 0x00, 0x02, 0x12, 0x34, 0x56]);
    let end = data(DataType::V17_14400, &[(FieldType::T4NonEcmSigEnd, &[0x00])]);
    golden(&end, 2, &[0xD0, 0x01, 0xB8, 0x00, 0x00, 0x00]);
    golden(&end, 0, &[0xD0, 0x01, 0xF0, 0x00, 0x00, 0x00]);
}

#[test]
fn golden_data_less_fields_share_octets() {
    // PER does not align a SEQUENCE: two data-less fields pack into one octet in version 0
    // (4 bits each) and straddle an octet from version 1 (5 bits each).
    let two = data(
        DataType::V21,
        &[(FieldType::HdlcFcsOk, &[]), (FieldType::HdlcSigEnd, &[])],
    );
    golden(&two, 0, &[0xC0, 0x02, 0x21]);
    golden(&two, 2, &[0xC0, 0x02, 0x10, 0x40]);
    // A data-less field, then one with data: the length is realigned after the type.
    let mixed = data(
        DataType::V21,
        &[(FieldType::HdlcFcsOk, &[]), (FieldType::HdlcData, &[0xAA])],
    );
    golden(&mixed, 0, &[0xC0, 0x02, 0x28, 0x00, 0x00, 0xAA]);
    golden(&mixed, 2, &[0xC0, 0x02, 0x14, 0x00, 0x00, 0x00, 0xAA]);
}

#[test]
fn golden_extension_data_and_field_types() {
    let cm = data(DataType::V8, &[(FieldType::CmMessage, &[0x01])]);
    golden(&cm, 3, &[0xE0, 0x00, 0x01, 0xC0, 0x00, 0x00, 0x00, 0x01]);
    let rate = data(DataType::V34PriRate, &[(FieldType::V34Rate, &[])]);
    // 0 (no data), 1 (extension), 0 + 000011 (normally small number 3): nine bits.
    golden(&rate, 3, &[0xE0, 0x40, 0x01, 0x41, 0x80]);
    for ifp in [&cm, &rate] {
        assert!(matches!(
            to_bytes(ifp, 0),
            Err(IfpError::NotInVersion { .. })
        ));
    }
    // A root data type with an extension field type is also refused in version 0.
    let err = to_bytes(&data(DataType::V21, &[(FieldType::CiMessage, &[1])]), 0);
    assert_eq!(
        err,
        Err(IfpError::NotInVersion {
            item: IfpItem::FieldType,
            value: "ci-message",
            version: 0
        })
    );
}

#[test]
fn data_packet_without_fields() {
    let empty = data(DataType::V27_2400, &[]);
    golden(&empty, 0, &[0x42]);
    golden(&empty, 3, &[0x42]);
    // A present but empty data-field decodes to the same value.
    assert_eq!(decode(&[0xC2, 0x00], 3), Ok(empty));
}

#[test]
fn malformed_packets_are_errors() {
    let v = 3;
    assert_eq!(decode(&[], v), Err(IfpError::Truncated));
    assert_eq!(decode(&[0x20], v), Err(IfpError::Truncated));
    assert_eq!(decode(&[0xC0], v), Err(IfpError::Truncated));
    assert_eq!(decode(&[0xC0, 0x01], v), Err(IfpError::Truncated));
    assert_eq!(
        decode(&[0xC0, 0x01, 0x80, 0x00, 0x05, 0x01], v),
        Err(IfpError::Truncated)
    );
    assert_eq!(
        decode(&[0xC0, 0x41], v),
        Err(IfpError::TooManyFields { count: 65, max: 64 })
    );
    assert_eq!(
        decode(&[0xC0, 0xC1], v),
        Err(IfpError::TooManyFields {
            count: 16384,
            max: 64
        })
    );
    assert_eq!(decode(&[0xC0, 0x3F, 0x00], v), Err(IfpError::Truncated));
    assert_eq!(
        decode(&[0x00, 0x00], v),
        Err(IfpError::TrailingBytes { extra: 1 })
    );
    assert_eq!(decode(&[0x80], v), Err(IfpError::DataFieldWithIndicator));
    assert_eq!(
        decode(&[0x52], v),
        Err(IfpError::BadValue {
            item: IfpItem::DataType,
            value: 9
        })
    );
    // field-data length 65536 (0xFFFF + 1) is outside SIZE(1..65535).
    let mut long = vec![0xC0, 0x01, 0x80, 0xFF, 0xFF];
    long.resize(long.len() + 65536, 0);
    assert_eq!(
        decode(&long, v),
        Err(IfpError::PacketTooLong {
            len: 65541,
            max: MAX_PACKET
        })
    );
    assert_eq!(decode(&long[..100], v), Err(IfpError::BadLength));
    // An unknown field-type extension.
    assert_eq!(
        decode(&[0xC0, 0x01, 0x42, 0x00], v),
        Err(IfpError::UnknownExtension {
            item: IfpItem::FieldType,
            index: 4
        })
    );
}

#[test]
fn encode_bounds() {
    let mut out = vec![0x55];
    let many = Ifp::Data {
        kind: DataType::V21,
        fields: vec![
            Field {
                kind: FieldType::HdlcSigEnd,
                data: Vec::new()
            };
            65
        ],
    };
    assert_eq!(
        encode(&many, 3, &mut out),
        Err(IfpError::TooManyFields { count: 65, max: 64 })
    );
    let big = data(DataType::V21, &[(FieldType::HdlcData, &[0u8; 65536])]);
    assert_eq!(
        encode(&big, 3, &mut out),
        Err(IfpError::FieldTooLong {
            len: 65536,
            max: 65535
        })
    );
    let two = data(
        DataType::V21,
        &[
            (FieldType::HdlcData, &[0u8; 40000]),
            (FieldType::HdlcData, &[0u8; 40000]),
        ],
    );
    assert!(matches!(
        encode(&two, 3, &mut out),
        Err(IfpError::PacketTooLong { .. })
    ));
    // One maximal field fits its own bound but not the packet's, with its header.
    let max = data(DataType::V21, &[(FieldType::HdlcData, &[0u8; 65535])]);
    assert_eq!(
        encode(&max, 3, &mut out),
        Err(IfpError::PacketTooLong {
            len: 65540,
            max: MAX_PACKET
        })
    );
    assert_eq!(out, [0x55], "nothing appended on error");
    let fits = data(DataType::V21, &[(FieldType::HdlcData, &[7u8; 65530])]);
    let bytes = enc(&fits, 3);
    assert_eq!(bytes.len(), 65535);
    assert_eq!(decode(&bytes, 3), Ok(fits));
}

#[test]
fn round_trips_every_variant_in_every_version() {
    for version in 0..=4u8 {
        for (i, &(indicator, _)) in INDICATORS.iter().enumerate() {
            let ifp = Ifp::Indicator(indicator);
            match to_bytes(&ifp, version) {
                Ok(bytes) => assert_eq!(decode(&bytes, version), Ok(ifp)),
                Err(e) => {
                    assert!(version == 0 && i >= INDICATOR_ROOT, "{e}");
                }
            }
        }
        for (d, &(kind, _)) in DATA_TYPES.iter().enumerate() {
            for (f, &(field, _)) in FIELD_TYPES.iter().enumerate() {
                let allowed = version != 0 || (d < DATA_TYPE_ROOT && f < FIELD_TYPE_ROOT);
                for payload in [&[][..], &[0xA5][..], &[1, 2, 3, 4, 5][..]] {
                    // The field alone, and surrounded by data-less and data fields so that
                    // every bit offset is exercised.
                    let ifp = data(
                        kind,
                        &[
                            (field, payload),
                            (FieldType::HdlcSigEnd, &[]),
                            (field, payload),
                            (FieldType::HdlcData, &[9, 9]),
                            (field, &[]),
                        ],
                    );
                    for ifp in [data(kind, &[(field, payload)]), ifp] {
                        match to_bytes(&ifp, version) {
                            Ok(bytes) => {
                                assert!(allowed);
                                assert_eq!(decode(&bytes, version), Ok(ifp));
                            }
                            Err(IfpError::NotInVersion { .. }) => assert!(!allowed),
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn decode_prefix_ignores_fec_padding() {
    assert_eq!(
        decode_prefix(&[0x06, 0x00, 0x00], 0),
        Ok((Ifp::Indicator(Indicator::V21Preamble), 1))
    );
    assert_eq!(
        decode(&[0x06, 0x00, 0x00], 0),
        Err(IfpError::TrailingBytes { extra: 2 })
    );
}

#[test]
fn names() {
    assert_eq!(indicator_name(Indicator::V34CcRetrain), "v34-CC-retrain");
    assert_eq!(data_type_name(DataType::V29_9600), "v29-9600");
    assert_eq!(
        field_type_name(FieldType::HdlcFcsOkSigEnd),
        "hdlc-fcs-OK-sig-end"
    );
    assert_eq!(IfpItem::FieldType.to_string(), "field-type");
}

#[test]
fn every_short_input_decodes_or_errs_and_reencodes_canonically() {
    for version in [0u8, 3] {
        for a in 0..=255u8 {
            for input in std::iter::once(vec![a]).chain((0..=255u8).map(|b| vec![a, b])) {
                if let Ok(ifp) = decode(&input, version) {
                    let again = to_bytes(&ifp, version).expect("decoded packets re-encode");
                    assert_eq!(decode(&again, version), Ok(ifp));
                }
            }
        }
    }
}
