//! Durable state for switchboard: the narrow [`Store`] trait, its default sled backend
//! ([`SledStore`]) and typed records such as call detail records ([`cdr`]) and device state
//! ([`device`]: claimed devices, claim nonces, command queues).
//!
//! The trait is deliberately small (get, put, delete, prefix scan, atomic batch across trees,
//! flush, count) so another backend (redb, Postgres) can replace sled. Every store carries a
//! schema version in the [`Tree::Meta`] tree; opening a store written by newer code fails with
//! [`StoreError::SchemaTooNew`] instead of misreading it.

pub mod api_key;
pub mod backup;
pub mod cdr;
pub mod device;
mod error;
pub mod fax;
pub mod hooked;
pub mod journal;
pub mod ledger;
mod sled_store;
mod time;

pub use api_key::{get_api_key, list_api_keys, put_api_key, ApiKeyRecord};
pub use cdr::{put_cdr, put_cdrs, recent_cdrs, Cdr, Disposition};
pub use device::{
    enqueue_command, get_command, get_device, list_devices, nonce_seen, pending_commands,
    purge_nonces, put_device, record_nonce, update_command, CommandRecord, CommandStatus,
    DeviceRecord, StoredCredentialData,
};
pub use error::{Corruption, StoreError};
pub use fax::{
    get_fax_job, get_inbound_fax, list_fax_jobs, list_inbound_faxes, new_fax_id, put_fax_job,
    put_inbound_fax, unfinished_fax_jobs, FaxJobRecord, FaxStatus, InboundFaxRecord,
};
pub use journal::{checkpoint_journal, journal_entries, put_journal, JournalCharge, JournalEntry};
pub use sled_store::SledStore;
pub use time::{now_unix_ms, rfc3339};

/// Version of the on-disk layout written by this code into [`Tree::Meta`] under
/// [`SCHEMA_VERSION_KEY`]. Opening a store of any other version is refused
/// ([`StoreError::SchemaTooNew`], [`StoreError::SchemaTooOld`]): there are no migrations yet,
/// and reading an older layout as if it were this one would misread it.
pub const SCHEMA_VERSION: u32 = 1;

/// Key in [`Tree::Meta`] holding the store's schema version as a big-endian `u32`.
pub const SCHEMA_VERSION_KEY: &[u8] = b"schema_version";

/// A named keyspace in the store. Add a variant (and a name) for each new kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tree {
    /// Store-wide metadata, such as the schema version.
    Meta,
    /// Call detail records, keyed by end time then call id.
    Cdrs,
    /// Claimed devices, keyed by device id.
    Devices,
    /// Used claim nonces, keyed by device id, 0x00, nonce.
    Nonces,
    /// Device commands, keyed by device id, 0x00, big-endian seq (plus a request id index).
    Commands,
    /// Outbound fax jobs, keyed by job id (time-ordered).
    FaxJobs,
    /// Received faxes, keyed by id (derived from the call).
    InboundFaxes,
    /// Admin API keys, keyed by key id (the public part of the key).
    ApiKeys,
    /// Ledger accounts, keyed by account id.
    Accounts,
    /// Ledger transfers, keyed by transfer id.
    Transfers,
    /// Each account's transfers: account id, 0x00, big-endian sequence → transfer id.
    AccountTransfers,
    /// Pending transfers with a timeout, by deadline: big-endian ms ++ transfer id.
    PendingDeadlines,
    /// Answered calls not yet ended (the crash journal), keyed by call id.
    CallJournal,
}

impl Tree {
    /// Every tree, in a fixed order (the backend opens them all at start).
    pub const ALL: &'static [Tree] = &[
        Tree::Meta,
        Tree::Cdrs,
        Tree::Devices,
        Tree::Nonces,
        Tree::Commands,
        Tree::FaxJobs,
        Tree::InboundFaxes,
        Tree::ApiKeys,
        Tree::Accounts,
        Tree::Transfers,
        Tree::AccountTransfers,
        Tree::PendingDeadlines,
        Tree::CallJournal,
    ];

    /// The backend's name for this tree; stable on disk, never rename.
    pub fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Cdrs => "cdrs",
            Tree::Devices => "devices",
            Tree::Nonces => "nonces",
            Tree::Commands => "commands",
            Tree::FaxJobs => "fax_jobs",
            Tree::InboundFaxes => "inbound_faxes",
            Tree::ApiKeys => "api_keys",
            Tree::Accounts => "accounts",
            Tree::Transfers => "transfers",
            Tree::AccountTransfers => "account_transfers",
            Tree::PendingDeadlines => "pending_deadlines",
            Tree::CallJournal => "call_journal",
        }
    }

    /// Position of this tree in [`Tree::ALL`].
    pub(crate) fn index(self) -> usize {
        match self {
            Tree::Meta => 0,
            Tree::Cdrs => 1,
            Tree::Devices => 2,
            Tree::Nonces => 3,
            Tree::Commands => 4,
            Tree::FaxJobs => 5,
            Tree::InboundFaxes => 6,
            Tree::ApiKeys => 7,
            Tree::Accounts => 8,
            Tree::Transfers => 9,
            Tree::AccountTransfers => 10,
            Tree::PendingDeadlines => 11,
            Tree::CallJournal => 12,
        }
    }
}

impl std::fmt::Display for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A key and its value, as returned by [`Store::scan_prefix`].
pub type Entry = (Vec<u8>, Vec<u8>);

/// What [`Store::snapshot`] calls with each entry: its tree, key and value.
pub type Visitor<'a> = &'a mut dyn FnMut(Tree, &[u8], &[u8]);

/// One write in an atomic [`Store::apply_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// Insert or replace `key` in `tree`.
    Put {
        /// Target tree.
        tree: Tree,
        /// Key bytes.
        key: Vec<u8>,
        /// Value bytes.
        value: Vec<u8>,
    },
    /// Replace the value under `key` in `tree` only if the key is present (an absent key is
    /// left absent, not an error): an update that must not resurrect a deleted record.
    PutIfPresent {
        /// Target tree.
        tree: Tree,
        /// Key bytes.
        key: Vec<u8>,
        /// Value bytes.
        value: Vec<u8>,
    },
    /// Remove `key` from `tree` (no error when absent).
    Delete {
        /// Target tree.
        tree: Tree,
        /// Key bytes.
        key: Vec<u8>,
    },
}

/// A durable key-value store with named trees. Implementations must be safe to share across
/// threads (`Arc<dyn Store>`).
pub trait Store: Send + Sync + 'static {
    /// The value stored under `key`, if any.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Insert or replace the value under `key`. Not durable until [`Store::flush`].
    fn put(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Remove `key`; removing an absent key is not an error.
    fn delete(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError>;
    /// Up to `limit` entries with this prefix, in key order (or reverse key order when `reverse`).
    fn scan_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Entry>, StoreError>;
    /// All ops applied atomically (sled transaction across trees): all or none are visible.
    fn apply_batch(&self, ops: Vec<BatchOp>) -> Result<(), StoreError>;
    /// Durably flush everything written so far (fsync).
    fn flush(&self) -> Result<(), StoreError>;
    /// Number of entries in `tree` (may be O(n)).
    fn count(&self, tree: Tree) -> Result<usize, StoreError>;
    /// Visit every entry of every tree (in [`Tree::ALL`] order, keys ascending) as of one
    /// instant: writes from other threads wait until the visit returns, so the entries seen
    /// are a consistent snapshot (a ledger batch is seen whole or not at all). For backups.
    fn snapshot(&self, visit: Visitor<'_>) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_names_are_unique_and_indexed() {
        for (i, t) in Tree::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
            assert_eq!(t.to_string(), t.name());
        }
        let mut names: Vec<_> = Tree::ALL.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Tree::ALL.len());
    }
}
