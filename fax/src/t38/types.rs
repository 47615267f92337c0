//! T.38 IFP (Internet Facsimile Protocol) packet types, ITU-T T.38 Annex A
//! (`IFPPacket`): what a T.38 gateway or terminal sends instead of modem
//! audio. These are the shared vocabulary of the UDPTL/IFP codec and the
//! T.30 terminal; the wire encoding (ASN.1 PER) lives in `ifp.rs`.

/// `t30-indicator`: which modem signal the sender is (about to be) producing.
/// Variants after `V17_14400Long` are extensions (T.38 version 1 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Indicator {
    /// no-signal
    NoSignal,
    /// cng (calling tone)
    Cng,
    /// ced (called terminal identification, 2100 Hz)
    Ced,
    /// v21-preamble (HDLC flags at 300 bit/s follow)
    V21Preamble,
    /// v27-2400-training
    V27_2400Training,
    /// v27-4800-training
    V27_4800Training,
    /// v29-7200-training
    V29_7200Training,
    /// v29-9600-training
    V29_9600Training,
    /// v17-7200-short-training
    V17_7200ShortTraining,
    /// v17-7200-long-training
    V17_7200LongTraining,
    /// v17-9600-short-training
    V17_9600ShortTraining,
    /// v17-9600-long-training
    V17_9600LongTraining,
    /// v17-12000-short-training
    V17_12000ShortTraining,
    /// v17-12000-long-training
    V17_12000LongTraining,
    /// v17-14400-short-training
    V17_14400ShortTraining,
    /// v17-14400-long-training
    V17_14400LongTraining,
    /// v8-ansam (extension)
    V8Ansam,
    /// v8-signal (extension)
    V8Signal,
    /// v34-cntl-channel-1200 (extension)
    V34CntlChannel1200,
    /// v34-pri-channel (extension)
    V34PriChannel,
    /// v34-CC-retrain (extension)
    V34CcRetrain,
    /// v33-12000-training (extension)
    V33_12000Training,
    /// v33-14400-training (extension)
    V33_14400Training,
}

/// `t30-data`: the modulation the data fields were (or would have been) sent with.
/// Variants after `V17_14400` are extensions (T.38 version 1 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// v21 (300 bit/s HDLC control channel)
    V21,
    /// v27-2400
    V27_2400,
    /// v27-4800
    V27_4800,
    /// v29-7200
    V29_7200,
    /// v29-9600
    V29_9600,
    /// v17-7200
    V17_7200,
    /// v17-9600
    V17_9600,
    /// v17-12000
    V17_12000,
    /// v17-14400
    V17_14400,
    /// v8 (extension)
    V8,
    /// v34-pri-rate (extension)
    V34PriRate,
    /// v34-CC-1200 (extension)
    V34Cc1200,
    /// v34-pri-ch (extension)
    V34PriCh,
    /// v33-12000 (extension)
    V33_12000,
    /// v33-14400 (extension)
    V33_14400,
}

/// `field-type` of one data field. Variants after `T4NonEcmSigEnd` are
/// extensions (T.38 version 1 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// hdlc-data: HDLC frame octets (no flags, no FCS)
    HdlcData,
    /// hdlc-sig-end: the HDLC signal (flags) ended
    HdlcSigEnd,
    /// hdlc-fcs-OK: the frame just sent ended with a good FCS
    HdlcFcsOk,
    /// hdlc-fcs-BAD
    HdlcFcsBad,
    /// hdlc-fcs-OK-sig-end: good FCS and the signal ends
    HdlcFcsOkSigEnd,
    /// hdlc-fcs-BAD-sig-end
    HdlcFcsBadSigEnd,
    /// t4-non-ecm-data: image (or TCF) octets, non-ECM
    T4NonEcmData,
    /// t4-non-ecm-sig-end: the non-ECM image signal ended
    T4NonEcmSigEnd,
    /// cm-message (extension)
    CmMessage,
    /// jm-message (extension)
    JmMessage,
    /// ci-message (extension)
    CiMessage,
    /// v34rate (extension)
    V34Rate,
}

/// One data field: its type and its octets (may be empty when the type
/// carries no data, e.g. `HdlcFcsOk`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field type.
    pub kind: FieldType,
    /// The field data (at most 65535 octets).
    pub data: Vec<u8>,
}

/// One IFP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ifp {
    /// A `t30-indicator` packet (no data field).
    Indicator(Indicator),
    /// A `t30-data` packet with its data fields (possibly none).
    Data {
        /// The modulation.
        kind: DataType,
        /// The data fields, in order.
        fields: Vec<Field>,
    },
}
