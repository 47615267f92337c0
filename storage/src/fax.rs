//! Durable fax state: outbound fax jobs ([`Tree::FaxJobs`]) and received faxes
//! ([`Tree::InboundFaxes`]). Every change of a job is written and flushed
//! before it is acknowledged (API answer, state change reported), so a crash
//! never loses an accepted job nor sends one twice after it succeeded.
//! Records are versioned JSON like the other trees.
//!
//! Keys: a job id is `{unix_ms:012x}{random:04x}`, so a key scan lists jobs
//! in creation order; an inbound fax id is derived from the SIP Call-ID by
//! the caller (idempotent: the same call records one fax).

use serde::{Deserialize, Serialize};

use crate::device::{decode, encode};
use crate::{Store, StoreError, Tree};

/// Where an outbound job is (Faxbot's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaxStatus {
    /// Waiting for its (next) attempt.
    Queued,
    /// An attempt is running.
    InProgress,
    /// All pages confirmed by the far end.
    Succeeded,
    /// Given up; `error` says why.
    Failed,
}

impl FaxStatus {
    /// The name used in the API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FaxStatus::Queued => "queued",
            FaxStatus::InProgress => "in_progress",
            FaxStatus::Succeeded => "succeeded",
            FaxStatus::Failed => "failed",
        }
    }

    /// Succeeded or failed: nothing more will happen to the job.
    pub fn is_final(self) -> bool {
        matches!(self, FaxStatus::Succeeded | FaxStatus::Failed)
    }
}

/// One outbound fax job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaxJobRecord {
    /// Record version.
    pub v: u32,
    /// Job id.
    pub id: String,
    /// Destination number.
    pub to: String,
    /// State.
    pub status: FaxStatus,
    /// Pages in the document.
    pub pages: u32,
    /// Pages the far end confirmed (MCF) in the last attempt.
    pub pages_sent: u32,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Result code like Asterisk's FAXERROR (`BUSY`, `NO_ANSWER`, `T38_REFUSED`, ...).
    pub error: Option<String>,
    /// Human-readable detail of `error`.
    pub error_text: Option<String>,
    /// Signalling rate of the last attempt, bit/s.
    pub bitrate: Option<u32>,
    /// Whether ECM was used in the last attempt.
    pub ecm: Option<bool>,
    /// The far end's station identity (CSI).
    pub remote_station: Option<String>,
    /// The normalised document (TIFF) in the spool directory.
    pub file: String,
    /// The uploaded file's name, if given.
    pub source_name: Option<String>,
    /// Call id of the last attempt.
    pub call_id: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// When the next attempt may start (unix ms), for a queued job.
    pub next_attempt_unix_ms: Option<u64>,
    /// The ledger account charged per page, for a rated job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Credit units reserved at submission (every page at `[billing] price_per_page`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<u64>,
    /// What the job cost once settled (the confirmed pages), posted to the ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u64>,
}

impl FaxJobRecord {
    /// Finished, but its reservation not yet posted or voided.
    pub fn unsettled(&self) -> bool {
        self.status.is_final() && self.reserved.is_some() && self.cost.is_none()
    }
}

impl FaxJobRecord {
    /// Highest record version this code writes and reads.
    pub const VERSION: u32 = 1;
}

/// One received fax.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundFaxRecord {
    /// Record version.
    pub v: u32,
    /// Id (from the call).
    pub id: String,
    /// Calling number.
    pub from: String,
    /// Dialed number.
    pub to: String,
    /// `receiving`, `received` or `failed`.
    pub status: String,
    /// Pages received.
    pub pages: u32,
    /// Result code when it failed.
    pub error: Option<String>,
    /// Signalling rate, bit/s.
    pub bitrate: Option<u32>,
    /// Whether ECM was used.
    pub ecm: Option<bool>,
    /// The sender's station identity (TSI).
    pub remote_station: Option<String>,
    /// The received TIFF in the spool directory (once pages arrived).
    pub file: Option<String>,
    /// Call id.
    pub call_id: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

impl InboundFaxRecord {
    /// Highest record version this code writes and reads.
    pub const VERSION: u32 = 1;
}

/// A new job id: creation time then randomness, so ids sort by creation.
pub fn new_fax_id(now_unix_ms: u64) -> String {
    format!("{:012x}{:04x}", now_unix_ms & 0xffff_ffff_ffff, rand_u16())
}

fn rand_u16() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish() as u16
}

/// Store a job (insert or replace) and flush before returning.
pub fn put_fax_job(store: &dyn Store, job: &FaxJobRecord) -> Result<(), StoreError> {
    store.put(
        Tree::FaxJobs,
        job.id.as_bytes(),
        &encode(Tree::FaxJobs, job)?,
    )?;
    store.flush()
}

/// The job with this id.
pub fn get_fax_job(store: &dyn Store, id: &str) -> Result<Option<FaxJobRecord>, StoreError> {
    store
        .get(Tree::FaxJobs, id.as_bytes())?
        .map(|v| decode(Tree::FaxJobs, id.as_bytes(), &v, FaxJobRecord::VERSION))
        .transpose()
}

/// The newest `limit` jobs, newest first.
pub fn list_fax_jobs(store: &dyn Store, limit: usize) -> Result<Vec<FaxJobRecord>, StoreError> {
    store
        .scan_prefix(Tree::FaxJobs, &[], limit, true)?
        .into_iter()
        .map(|(k, v)| decode(Tree::FaxJobs, &k, &v, FaxJobRecord::VERSION))
        .collect()
}

/// Every job not finished yet (queued or in progress), or finished with its charge not yet
/// settled, oldest first.
pub fn unfinished_fax_jobs(store: &dyn Store) -> Result<Vec<FaxJobRecord>, StoreError> {
    let mut out = Vec::new();
    for (k, v) in store.scan_prefix(Tree::FaxJobs, &[], usize::MAX, false)? {
        let job: FaxJobRecord = decode(Tree::FaxJobs, &k, &v, FaxJobRecord::VERSION)?;
        if !job.status.is_final() || job.unsettled() {
            out.push(job);
        }
    }
    Ok(out)
}

/// Store a received fax (insert or replace) and flush.
pub fn put_inbound_fax(store: &dyn Store, fax: &InboundFaxRecord) -> Result<(), StoreError> {
    store.put(
        Tree::InboundFaxes,
        fax.id.as_bytes(),
        &encode(Tree::InboundFaxes, fax)?,
    )?;
    store.flush()
}

/// The received fax with this id.
pub fn get_inbound_fax(
    store: &dyn Store,
    id: &str,
) -> Result<Option<InboundFaxRecord>, StoreError> {
    store
        .get(Tree::InboundFaxes, id.as_bytes())?
        .map(|v| {
            decode(
                Tree::InboundFaxes,
                id.as_bytes(),
                &v,
                InboundFaxRecord::VERSION,
            )
        })
        .transpose()
}

/// Up to `limit` received faxes, newest id first.
pub fn list_inbound_faxes(
    store: &dyn Store,
    limit: usize,
) -> Result<Vec<InboundFaxRecord>, StoreError> {
    store
        .scan_prefix(Tree::InboundFaxes, &[], limit, true)?
        .into_iter()
        .map(|(k, v)| decode(Tree::InboundFaxes, &k, &v, InboundFaxRecord::VERSION))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SledStore;

    fn job(id: &str, status: FaxStatus) -> FaxJobRecord {
        FaxJobRecord {
            v: 1,
            id: id.into(),
            to: "+4930123".into(),
            status,
            pages: 2,
            pages_sent: 0,
            attempts: 0,
            max_attempts: 3,
            error: None,
            error_text: None,
            bitrate: None,
            ecm: None,
            remote_station: None,
            file: "/tmp/x.tif".into(),
            source_name: None,
            call_id: None,
            created_at: "2026-11-23T00:00:00Z".into(),
            updated_at: "2026-11-23T00:00:00Z".into(),
            next_attempt_unix_ms: None,
            account: None,
            reserved: None,
            cost: None,
        }
    }

    #[test]
    fn jobs_round_trip_list_newest_first_and_unfinished_oldest_first() {
        let s = SledStore::temporary().unwrap();
        let a = job(&new_fax_id(1_000), FaxStatus::Succeeded);
        let b = job(&new_fax_id(2_000), FaxStatus::Queued);
        let c = job(&new_fax_id(3_000), FaxStatus::InProgress);
        for j in [&a, &b, &c] {
            put_fax_job(&s, j).unwrap();
        }
        assert_eq!(get_fax_job(&s, &b.id).unwrap().as_ref(), Some(&b));
        let ids: Vec<_> = list_fax_jobs(&s, 10)
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(ids, vec![c.id.clone(), b.id.clone(), a.id.clone()]);
        let open: Vec<_> = unfinished_fax_jobs(&s)
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(open, vec![b.id, c.id]);
        assert_eq!(get_fax_job(&s, "nope").unwrap(), None);
    }

    #[test]
    fn a_newer_record_version_is_refused() {
        let s = SledStore::temporary().unwrap();
        let mut j = job("000000000001abcd", FaxStatus::Queued);
        j.v = 99;
        put_fax_job(&s, &j).unwrap();
        assert!(matches!(
            get_fax_job(&s, &j.id),
            Err(StoreError::RecordTooNew { found: 99, .. })
        ));
    }

    #[test]
    fn inbound_faxes_are_keyed_by_call() {
        let s = SledStore::temporary().unwrap();
        let mut f = InboundFaxRecord {
            v: 1,
            id: "call-1".into(),
            from: "+1".into(),
            to: "+2".into(),
            status: "receiving".into(),
            pages: 0,
            error: None,
            bitrate: None,
            ecm: None,
            remote_station: None,
            file: None,
            call_id: "abc@host".into(),
            created_at: "t".into(),
            updated_at: "t".into(),
        };
        put_inbound_fax(&s, &f).unwrap();
        f.status = "received".into();
        f.pages = 2;
        put_inbound_fax(&s, &f).unwrap();
        let all = list_inbound_faxes(&s, 10).unwrap();
        assert_eq!(all.len(), 1, "same id: one record");
        assert_eq!(get_inbound_fax(&s, "call-1").unwrap().unwrap().pages, 2);
    }
}
