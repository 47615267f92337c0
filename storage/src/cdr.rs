//! Call detail records with Asterisk's fields (src, dst, start, answer, end, duration, billsec,
//! disposition), stored as JSON in [`Tree::Cdrs`] under `end_unix_ms (big-endian) ++ call id`, so
//! a reverse prefix scan returns the newest calls first.

use serde::{Deserialize, Serialize};

use crate::{BatchOp, Corruption, Store, StoreError, Tree};

pub use crate::time::{now_unix_ms, rfc3339};

/// How a call ended, spelled as Asterisk's `DISPOSITION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Disposition {
    /// The call was answered.
    #[serde(rename = "ANSWERED")]
    Answered,
    /// Nobody answered (timeout or caller hung up first).
    #[serde(rename = "NO ANSWER")]
    NoAnswer,
    /// The callee was busy.
    #[serde(rename = "BUSY")]
    Busy,
    /// The call failed (error response, crash).
    #[serde(rename = "FAILED")]
    Failed,
    /// No route or no capacity.
    #[serde(rename = "CONGESTION")]
    Congestion,
}

impl Disposition {
    /// Asterisk's spelling, e.g. `"NO ANSWER"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "ANSWERED",
            Disposition::NoAnswer => "NO ANSWER",
            Disposition::Busy => "BUSY",
            Disposition::Failed => "FAILED",
            Disposition::Congestion => "CONGESTION",
        }
    }
}

impl std::fmt::Display for Disposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One call detail record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cdr {
    /// Record schema version; write [`Cdr::VERSION`].
    pub v: u32,
    /// Call id.
    pub id: String,
    /// Calling number.
    pub src: String,
    /// Dialed number.
    pub dst: String,
    /// Start, RFC 3339 UTC with milliseconds (see [`rfc3339`]).
    pub start: String,
    /// Answer time, if answered.
    pub answer: Option<String>,
    /// End time.
    pub end: String,
    /// Seconds from start to end.
    pub duration: u64,
    /// Seconds from answer to end (0 when unanswered).
    pub billsec: u64,
    /// How the call ended.
    pub disposition: Disposition,
    /// Why: e.g. "normal", "busy", "cancelled", "crash", "timeout".
    pub hangup_cause: String,
    /// Final SIP status code, if any.
    pub sip_code: Option<u16>,
    /// Trunk the call came in on.
    pub trunk_in: Option<String>,
    /// Trunk the call went out on.
    pub trunk_out: Option<String>,
    /// Negotiated codec, e.g. "PCMU".
    pub codec: Option<String>,
    /// End time in unix milliseconds (the key's sort order).
    pub end_unix_ms: u64,
    /// The ledger account charged, for a rated call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// What the call cost, in credit units (posted to the ledger), for a rated call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u64>,
}

impl Cdr {
    /// Highest record version this code writes and reads.
    pub const VERSION: u32 = 1;

    /// Storage key: big-endian `end_unix_ms` followed by the call id.
    pub fn key(&self) -> Vec<u8> {
        cdr_key(self.end_unix_ms, &self.id)
    }

    /// Decode a stored record, refusing garbage and versions newer than [`Cdr::VERSION`].
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Cdr, StoreError> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let corrupt = |source| StoreError::Corrupt {
            tree: Tree::Cdrs,
            key: key.to_vec(),
            reason: Corruption::Json { source },
        };
        let Version { v } = serde_json::from_slice(bytes).map_err(corrupt)?;
        if v > Cdr::VERSION {
            return Err(StoreError::RecordTooNew {
                tree: Tree::Cdrs,
                key: key.to_vec(),
                found: v,
                supported: Cdr::VERSION,
            });
        }
        serde_json::from_slice(bytes).map_err(corrupt)
    }

    /// Encode as stored (JSON).
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(self).map_err(|source| StoreError::Encode {
            tree: Tree::Cdrs,
            source,
        })
    }
}

/// Storage key of a CDR: big-endian `end_unix_ms` followed by the call id bytes.
pub fn cdr_key(end_unix_ms: u64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + id.len());
    key.extend_from_slice(&end_unix_ms.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// Store one CDR and flush it (durable on return). Prefer [`put_cdrs`] for many.
pub fn put_cdr(store: &dyn Store, cdr: &Cdr) -> Result<(), StoreError> {
    put_cdrs(store, std::slice::from_ref(cdr))
}

/// Store CDRs in one atomic batch followed by one flush (group commit); durable on return.
/// The same batch removes each call's entry from the crash journal ([`crate::journal`]), so
/// there is no moment when a call has both a CDR and a journal entry, or neither.
pub fn put_cdrs(store: &dyn Store, cdrs: &[Cdr]) -> Result<(), StoreError> {
    if cdrs.is_empty() {
        return Ok(());
    }
    let mut ops = Vec::with_capacity(cdrs.len() * 2);
    for c in cdrs {
        ops.push(BatchOp::Put {
            tree: Tree::Cdrs,
            key: c.key(),
            value: c.encode()?,
        });
        ops.push(BatchOp::Delete {
            tree: Tree::CallJournal,
            key: crate::journal::journal_key(&c.id),
        });
    }
    store.apply_batch(ops)?;
    store.flush()
}

/// Up to `limit` CDRs, newest (latest end) first. Fails on the first undecodable record.
pub fn recent_cdrs(store: &dyn Store, limit: usize) -> Result<Vec<Cdr>, StoreError> {
    store
        .scan_prefix(Tree::Cdrs, &[], limit, true)?
        .into_iter()
        .map(|(k, v)| Cdr::decode(&k, &v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SledStore;

    fn cdr(id: &str, end_unix_ms: u64) -> Cdr {
        Cdr {
            v: Cdr::VERSION,
            id: id.to_string(),
            src: "+441234".into(),
            dst: "0044207".into(),
            start: rfc3339(end_unix_ms.saturating_sub(10_000)),
            answer: Some(rfc3339(end_unix_ms.saturating_sub(8_000))),
            end: rfc3339(end_unix_ms),
            duration: 10,
            billsec: 8,
            disposition: Disposition::Answered,
            hangup_cause: "normal".into(),
            sip_code: Some(200),
            trunk_in: Some("carrier-a".into()),
            trunk_out: None,
            codec: Some("PCMU".into()),
            end_unix_ms,
            account: None,
            cost: None,
        }
    }

    #[test]
    fn disposition_serde_matches_asterisk() {
        for d in [
            Disposition::Answered,
            Disposition::NoAnswer,
            Disposition::Busy,
            Disposition::Failed,
            Disposition::Congestion,
        ] {
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{}\"", d.as_str()));
            assert_eq!(serde_json::from_str::<Disposition>(&json).unwrap(), d);
        }
    }

    #[test]
    fn newest_first_with_limit() {
        let s = SledStore::temporary().unwrap();
        put_cdr(&s, &cdr("b", 2_000_000)).unwrap();
        put_cdrs(
            &s,
            &[
                cdr("a", 1_000_000),
                cdr("c", 3_000_000),
                cdr("c2", 3_000_000),
            ],
        )
        .unwrap();
        put_cdrs(&s, &[]).unwrap();
        let ids: Vec<_> = recent_cdrs(&s, 10)
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["c2", "c", "b", "a"]);
        let top = recent_cdrs(&s, 2).unwrap();
        assert_eq!(top, vec![cdr("c2", 3_000_000), cdr("c", 3_000_000)]);
        // Keys order by time even across byte-length boundaries of the number.
        put_cdr(&s, &cdr("z", 256)).unwrap();
        assert_eq!(recent_cdrs(&s, 10).unwrap().last().unwrap().id, "z");
    }

    #[test]
    fn garbage_is_corrupt_not_panic() {
        let s = SledStore::temporary().unwrap();
        s.put(Tree::Cdrs, b"\x00garbage", b"\xff\x00not json")
            .unwrap();
        match recent_cdrs(&s, 10) {
            Err(StoreError::Corrupt { tree, key, reason }) => {
                assert_eq!(tree, Tree::Cdrs);
                assert_eq!(key, b"\x00garbage");
                assert!(matches!(reason, Corruption::Json { .. }));
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // Valid JSON of the wrong shape is also corrupt.
        assert!(matches!(
            Cdr::decode(b"k", br#"{"v":1,"id":"x"}"#),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn newer_record_version_is_refused() {
        let mut c = cdr("n", 5_000);
        c.v = 7;
        let bytes = serde_json::to_vec(&c).unwrap();
        match Cdr::decode(&c.key(), &bytes) {
            Err(StoreError::RecordTooNew {
                found, supported, ..
            }) => {
                assert_eq!((found, supported), (7, Cdr::VERSION));
            }
            other => panic!("expected RecordTooNew, got {other:?}"),
        }
    }

    #[test]
    fn json_shape_is_stable() {
        let c = cdr("abc", 1_795_459_201_123);
        let value: serde_json::Value = serde_json::from_slice(&c.encode().unwrap()).unwrap();
        assert_eq!(value["disposition"], "ANSWERED");
        assert_eq!(value["end"], "2026-11-23T18:40:01.123Z");
        assert_eq!(value["v"], 1);
        assert_eq!(Cdr::decode(&c.key(), &c.encode().unwrap()).unwrap(), c);
    }
}
