//! Errors of the storage layer: backend failures, corrupt or too-new data, encoding failures.

use crate::Tree;

/// Why a stored value could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum Corruption {
    /// The value is not the JSON record expected in this tree.
    #[error("undecodable record: {source}")]
    Json {
        /// The decoder's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The schema version in the meta tree is not a 4-byte big-endian integer.
    #[error("schema version has {len} bytes, expected 4")]
    SchemaVersionLength {
        /// Length found.
        len: usize,
    },
}

/// Everything that can go wrong reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend (sled) failed: I/O, a closed or locked database, a reported corruption.
    #[error("storage backend: {source}")]
    Backend {
        /// The backend error.
        #[from]
        source: sled::Error,
    },
    /// Another process (or a store not yet fully closed in this one) holds the database lock.
    #[error("data directory {path} is in use by another process (sled lock held)")]
    Locked {
        /// The data directory.
        path: String,
    },
    /// A stored value could not be decoded.
    #[error("corrupt value in tree {tree} at key {}: {reason}", escape(key))]
    Corrupt {
        /// Tree holding the value.
        tree: Tree,
        /// Key of the value.
        key: Vec<u8>,
        /// What is wrong with it.
        reason: Corruption,
    },
    /// The store on disk was written by newer code (a higher schema version).
    #[error(
        "store schema version {found} is newer than the supported {supported}; upgrade switchboard"
    )]
    SchemaTooNew {
        /// Version found on disk.
        found: u32,
        /// Highest version this code understands.
        supported: u32,
    },
    /// The store on disk was written by older code (a lower schema version) and this code
    /// has no migration from it.
    #[error(
        "store schema version {found} is older than the supported {supported} and there is no \
         migration from it; start the switchboard release that wrote this store, or restore a \
         backup made by this release (docs/operations.md, Schema upgrades)"
    )]
    SchemaTooOld {
        /// Version found on disk.
        found: u32,
        /// The version this code reads and writes.
        supported: u32,
    },
    /// A record carries a record version (`v`) newer than this code understands.
    #[error(
        "record in tree {tree} at key {} has version {found}, newer than the supported {supported}",
        escape(key)
    )]
    RecordTooNew {
        /// Tree holding the record.
        tree: Tree,
        /// Key of the record.
        key: Vec<u8>,
        /// Version found.
        found: u32,
        /// Highest version this code understands.
        supported: u32,
    },
    /// A record could not be encoded.
    #[error("cannot encode record for tree {tree}: {source}")]
    Encode {
        /// Tree the record was meant for.
        tree: Tree,
        /// The encoder's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A store task on the blocking pool did not finish (it panicked, or the runtime is
    /// shutting down): whether its write reached the disk is unknown.
    #[error("the store task did not finish")]
    Interrupted,
}

/// Printable form of a binary key (ASCII kept, other bytes as `\xNN`).
fn escape(key: &[u8]) -> String {
    key.iter()
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_escapes_binary_keys() {
        let e = StoreError::Corrupt {
            tree: Tree::Cdrs,
            key: vec![0, 1, b'a'],
            reason: Corruption::SchemaVersionLength { len: 2 },
        };
        assert_eq!(
            e.to_string(),
            "corrupt value in tree cdrs at key \\x00\\x01a: schema version has 2 bytes, expected 4"
        );
    }
}
