//! The call journal: one record per answered call still in progress, in [`Tree::CallJournal`]
//! keyed by call id, so a call cut by a crash (`kill -9`, power loss) does not vanish from the
//! books (issue 12).
//!
//! A record is written (and flushed) when the call is answered, its `checkpoint_ms` is moved
//! forward for every live call at once by [`checkpoint_journal`] (one batch, one flush), and it
//! is removed in the same atomic batch that stores the call's CDR ([`crate::put_cdrs`]). At the
//! next start every record left over is a call the process died in: it becomes a CDR with
//! cause `crash` lasting until its last checkpoint, and its ledger reservation is settled.

use serde::{Deserialize, Serialize};

use crate::{BatchOp, Cdr, Corruption, Store, StoreError, Tree};

/// What a rated call's journal record needs to charge it after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalCharge {
    /// The ledger account debited.
    pub account: String,
    /// The id of the call's pending transfer (its reservation), e.g. `call:<id>`.
    pub pending_id: String,
    /// Credit units per minute.
    pub price_per_minute: u64,
    /// First billing block, seconds.
    pub initial_secs: u32,
    /// Later billing blocks, seconds.
    pub increment_secs: u32,
}

/// One answered call in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Record schema version; write [`JournalEntry::VERSION`].
    pub v: u32,
    /// The call's CDR as of its answer (id, src, dst, start, answer, trunks, codec): what a
    /// crash CDR is made from.
    pub cdr: Cdr,
    /// When the call started (its INVITE), unix milliseconds.
    pub start_ms: u64,
    /// When the call was answered, unix milliseconds.
    pub answered_ms: u64,
    /// The last time the call was known to be up, unix milliseconds (`answered_ms` until the
    /// first checkpoint).
    pub checkpoint_ms: u64,
    /// Who pays and at what price, for a rated call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge: Option<JournalCharge>,
}

impl JournalEntry {
    /// Highest record version this code writes and reads.
    pub const VERSION: u32 = 1;

    /// The call id (the key).
    pub fn id(&self) -> &str {
        &self.cdr.id
    }

    /// Decode a stored record, refusing garbage and versions newer than [`JournalEntry::VERSION`].
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<JournalEntry, StoreError> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let corrupt = |source| StoreError::Corrupt {
            tree: Tree::CallJournal,
            key: key.to_vec(),
            reason: Corruption::Json { source },
        };
        let Version { v } = serde_json::from_slice(bytes).map_err(corrupt)?;
        if v > JournalEntry::VERSION {
            return Err(StoreError::RecordTooNew {
                tree: Tree::CallJournal,
                key: key.to_vec(),
                found: v,
                supported: JournalEntry::VERSION,
            });
        }
        serde_json::from_slice(bytes).map_err(corrupt)
    }

    /// Encode as stored (JSON).
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(self).map_err(|source| StoreError::Encode {
            tree: Tree::CallJournal,
            source,
        })
    }
}

/// Storage key of a call's journal record: the call id bytes.
pub fn journal_key(call_id: &str) -> Vec<u8> {
    call_id.as_bytes().to_vec()
}

/// Write answered calls' records in one atomic batch and one flush (group commit); durable
/// on return.
pub fn put_journal(store: &dyn Store, entries: &[JournalEntry]) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let ops = entries
        .iter()
        .map(|e| {
            Ok(BatchOp::Put {
                tree: Tree::CallJournal,
                key: journal_key(e.id()),
                value: e.encode()?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    store.apply_batch(ops)?;
    store.flush()
}

/// Every record in the journal, in call id order; an undecodable one is returned as its error
/// (and left in place), so one bad record does not hide the others.
pub fn journal_entries(
    store: &dyn Store,
) -> Result<Vec<Result<JournalEntry, StoreError>>, StoreError> {
    Ok(store
        .scan_prefix(Tree::CallJournal, &[], usize::MAX, false)?
        .into_iter()
        .map(|(k, v)| JournalEntry::decode(&k, &v))
        .collect())
}

/// Move every record's checkpoint to `now_ms` (never backwards) in one atomic batch and one
/// flush; how many records there were. A record removed meanwhile (its call's CDR written)
/// stays removed ([`BatchOp::PutIfPresent`]); an undecodable one is left as it is.
pub fn checkpoint_journal(store: &dyn Store, now_ms: u64) -> Result<usize, StoreError> {
    let mut ops = Vec::new();
    for entry in journal_entries(store)?.into_iter().flatten() {
        let mut e = entry;
        e.checkpoint_ms = e.checkpoint_ms.max(now_ms);
        ops.push(BatchOp::PutIfPresent {
            tree: Tree::CallJournal,
            key: journal_key(e.id()),
            value: e.encode()?,
        });
    }
    let n = ops.len();
    if n > 0 {
        store.apply_batch(ops)?;
        store.flush()?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sled_store::tests::TempDir;
    use crate::{put_cdrs, recent_cdrs, rfc3339, Disposition, SledStore};

    fn entry(id: &str, answered_ms: u64) -> JournalEntry {
        JournalEntry {
            v: JournalEntry::VERSION,
            cdr: Cdr {
                v: Cdr::VERSION,
                id: id.into(),
                src: "+441234".into(),
                dst: "0044207".into(),
                start: rfc3339(answered_ms.saturating_sub(2_000)),
                answer: Some(rfc3339(answered_ms)),
                end: rfc3339(answered_ms),
                duration: 0,
                billsec: 0,
                disposition: Disposition::Answered,
                hangup_cause: "crash".into(),
                sip_code: None,
                trunk_in: Some("carrier-a".into()),
                trunk_out: Some("carrier-b".into()),
                codec: Some("PCMU".into()),
                end_unix_ms: answered_ms,
                account: None,
                cost: None,
            },
            start_ms: answered_ms.saturating_sub(2_000),
            answered_ms,
            checkpoint_ms: answered_ms,
            charge: Some(JournalCharge {
                account: "acme".into(),
                pending_id: format!("call:{id}"),
                price_per_minute: 60,
                initial_secs: 1,
                increment_secs: 1,
            }),
        }
    }

    fn live(s: &dyn Store) -> Vec<JournalEntry> {
        journal_entries(s)
            .unwrap()
            .into_iter()
            .map(|e| e.unwrap())
            .collect()
    }

    #[test]
    fn put_checkpoint_and_cdr_removes() {
        let s = SledStore::temporary().unwrap();
        put_journal(&s, &[entry("a", 1_000_000), entry("b", 1_000_500)]).unwrap();
        put_journal(&s, &[]).unwrap();
        assert_eq!(live(&s), vec![entry("a", 1_000_000), entry("b", 1_000_500)]);
        assert_eq!(checkpoint_journal(&s, 1_010_000).unwrap(), 2);
        let after = live(&s);
        assert!(after.iter().all(|e| e.checkpoint_ms == 1_010_000));
        // Never backwards.
        checkpoint_journal(&s, 1_005_000).unwrap();
        assert!(live(&s).iter().all(|e| e.checkpoint_ms == 1_010_000));
        // The CDR and the removal are one batch.
        let mut cdr = entry("a", 1_000_000).cdr;
        cdr.end_unix_ms = 1_012_000;
        put_cdrs(&s, &[cdr]).unwrap();
        assert_eq!(live(&s).len(), 1);
        assert_eq!(live(&s)[0].id(), "b");
        assert_eq!(recent_cdrs(&s, 10).unwrap().len(), 1);
        assert_eq!(checkpoint_journal(&s, 1_020_000).unwrap(), 1);
        assert_eq!(
            checkpoint_journal(&SledStore::temporary().unwrap(), 1).unwrap(),
            0
        );
    }

    #[test]
    fn checkpoint_does_not_resurrect_a_removed_record() {
        let s = SledStore::temporary().unwrap();
        put_journal(&s, &[entry("a", 1_000)]).unwrap();
        // What a checkpoint computed before the call's CDR removed the record...
        let stale = BatchOp::PutIfPresent {
            tree: Tree::CallJournal,
            key: journal_key("a"),
            value: entry("a", 1_000).encode().unwrap(),
        };
        put_cdrs(&s, &[entry("a", 1_000).cdr]).unwrap();
        // ...applied after it: the record stays gone.
        s.apply_batch(vec![stale]).unwrap();
        assert!(live(&s).is_empty());
    }

    #[test]
    fn survives_reopen_and_skips_garbage() {
        let dir = TempDir::new("journal");
        {
            let s = SledStore::open(&dir.0).unwrap();
            put_journal(&s, &[entry("a", 5_000)]).unwrap();
            s.put(Tree::CallJournal, b"zz", b"\xffnot json").unwrap();
            s.flush().unwrap();
        }
        let s = SledStore::open(&dir.0).unwrap();
        let all = journal_entries(&s).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].as_ref().unwrap(), &entry("a", 5_000));
        assert!(matches!(
            all[1],
            Err(StoreError::Corrupt {
                tree: Tree::CallJournal,
                ..
            })
        ));
        // The garbage is left alone by a checkpoint.
        assert_eq!(checkpoint_journal(&s, 9_000).unwrap(), 1);
        assert_eq!(
            s.get(Tree::CallJournal, b"zz").unwrap().unwrap(),
            b"\xffnot json"
        );
    }

    #[test]
    fn thousands_of_calls_cost_one_batch_and_one_flush_per_checkpoint() {
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        use std::sync::Arc;
        let (batches, flushes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (b, f) = (Arc::clone(&batches), Arc::clone(&flushes));
        let s = crate::hooked::Hooked::temporary(
            move || {
                b.fetch_add(1, Relaxed);
            },
            move || {
                f.fetch_add(1, Relaxed);
            },
        )
        .unwrap();
        let entries: Vec<_> = (0..3_000)
            .map(|i| entry(&format!("{i:016x}"), 1_000_000))
            .collect();
        put_journal(&s, &entries).unwrap();
        assert_eq!((batches.load(Relaxed), flushes.load(Relaxed)), (1, 1));
        assert_eq!(checkpoint_journal(&s, 2_000_000).unwrap(), 3_000);
        assert_eq!((batches.load(Relaxed), flushes.load(Relaxed)), (2, 2));
        assert!(live(&s).iter().all(|e| e.checkpoint_ms == 2_000_000));
    }

    #[test]
    fn newer_record_version_is_refused() {
        let mut e = entry("n", 5_000);
        e.v = 9;
        let bytes = serde_json::to_vec(&e).unwrap();
        assert!(matches!(
            JournalEntry::decode(b"n", &bytes),
            Err(StoreError::RecordTooNew { found: 9, .. })
        ));
        let e = entry("n", 5_000);
        assert_eq!(JournalEntry::decode(b"n", &e.encode().unwrap()).unwrap(), e);
    }
}
