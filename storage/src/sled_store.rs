//! The default [`Store`] backend on sled 0.34: one sled tree per [`Tree`], multi-tree
//! transactions for [`Store::apply_batch`], a schema version check at open, and a write
//! gate so that [`Store::snapshot`] sees one instant across every tree.

use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use crate::{
    BatchOp, Corruption, Entry, Store, StoreError, Tree, Visitor, SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
};

/// How long [`SledStore::open`] waits for a held database lock.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// sled 0.34 reports a held lock as an I/O error of kind `Other` naming the lock.
fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock
        || io.to_string().contains("could not acquire lock"))
}

/// A [`Store`] on an embedded sled database.
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    /// Opened trees, indexed by [`Tree::index`].
    trees: Vec<sled::Tree>,
    schema_version: u32,
    /// Writers hold it shared; [`Store::snapshot`] holds it exclusively, so no write lands
    /// between the first and the last tree it reads (sled has no multi-tree snapshot).
    gate: Arc<RwLock<()>>,
}

impl SledStore {
    /// Open (or create) the store in directory `path`, writing the schema version on first use
    /// and refusing a store written by newer code ([`StoreError::SchemaTooNew`]).
    ///
    /// sled releases its file lock when the last handle (including its background flusher) is
    /// gone, which can trail a drop by a few milliseconds; a held lock is retried for up to
    /// [`LOCK_WAIT`] and then reported as [`StoreError::Locked`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match sled::Config::new().path(path).open() {
                Ok(db) => return Self::from_db(db),
                Err(e) if is_lock_error(&e) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked {
                            path: path.display().to_string(),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A temporary store, removed when dropped; for tests.
    pub fn temporary() -> Result<Self, StoreError> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Self, StoreError> {
        let trees = Tree::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()?;
        let meta = &trees[Tree::Meta.index()];
        let schema_version = match meta.get(SCHEMA_VERSION_KEY)? {
            None => {
                meta.insert(SCHEMA_VERSION_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
                SCHEMA_VERSION
            }
            Some(bytes) => {
                let raw: [u8; 4] = bytes.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    tree: Tree::Meta,
                    key: SCHEMA_VERSION_KEY.to_vec(),
                    reason: Corruption::SchemaVersionLength { len: bytes.len() },
                })?;
                let found = u32::from_be_bytes(raw);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::SchemaTooNew {
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                // No migrations exist yet: an older layout read as this one would be misread
                // (and its version left behind as if it were current). When a migration is
                // written, run it here in one batch and store the new version with it.
                if found < SCHEMA_VERSION {
                    return Err(StoreError::SchemaTooOld {
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                found
            }
        };
        Ok(Self {
            db,
            trees,
            schema_version,
            gate: Arc::new(RwLock::new(())),
        })
    }

    /// Shared hold on the write gate (a poisoned gate still gates: it guards no data).
    fn write_gate(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Schema version of the opened store (always [`SCHEMA_VERSION`]).
    pub fn schema_version(&self) -> u32 {
        self.schema_version
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        &self.trees[tree.index()]
    }
}

impl Store for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(tree).get(key)?.map(|v| v.to_vec()))
    }

    fn put(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let _gate = self.write_gate();
        self.tree(tree).insert(key, value)?;
        Ok(())
    }

    fn delete(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        let _gate = self.write_gate();
        self.tree(tree).remove(key)?;
        Ok(())
    }

    fn scan_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Entry>, StoreError> {
        let iter = self.tree(tree).scan_prefix(prefix);
        let pair = |r: sled::Result<(sled::IVec, sled::IVec)>| {
            r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(StoreError::from)
        };
        if reverse {
            iter.rev().take(limit).map(pair).collect()
        } else {
            iter.take(limit).map(pair).collect()
        }
    }

    fn apply_batch(&self, ops: Vec<BatchOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let _gate = self.write_gate();
        let result = self.trees.as_slice().transaction(|views| {
            for op in &ops {
                match op {
                    BatchOp::Put { tree, key, value } => {
                        views[tree.index()].insert(key.as_slice(), value.as_slice())?;
                    }
                    BatchOp::PutIfPresent { tree, key, value } => {
                        let view = &views[tree.index()];
                        if view.get(key.as_slice())?.is_some() {
                            view.insert(key.as_slice(), value.as_slice())?;
                        }
                    }
                    BatchOp::Delete { tree, key } => {
                        views[tree.index()].remove(key.as_slice())?;
                    }
                }
            }
            Ok::<(), ConflictableTransactionError<std::convert::Infallible>>(())
        });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Storage(e)) => Err(StoreError::Backend { source: e }),
            Err(TransactionError::Abort(never)) => match never {},
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn count(&self, tree: Tree) -> Result<usize, StoreError> {
        Ok(self.tree(tree).len())
    }

    fn snapshot(&self, visit: Visitor<'_>) -> Result<(), StoreError> {
        let _exclusive = self.gate.write().unwrap_or_else(|e| e.into_inner());
        for &t in Tree::ALL {
            for entry in self.tree(t).iter() {
                let (k, v) = entry?;
                visit(t, &k, &v);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A directory under the system temp dir, removed on drop (no tempfile crate offline).
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new(name: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let dir = std::env::temp_dir().join(format!(
                "switchboard-storage-{name}-{}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn kv(k: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
        (k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    #[test]
    fn put_get_delete() {
        let s = SledStore::temporary().unwrap();
        assert_eq!(s.schema_version(), SCHEMA_VERSION);
        assert_eq!(s.get(Tree::Cdrs, b"a").unwrap(), None);
        s.put(Tree::Cdrs, b"a", b"1").unwrap();
        assert_eq!(s.get(Tree::Cdrs, b"a").unwrap(), Some(b"1".to_vec()));
        // Trees are separate keyspaces.
        assert_eq!(s.get(Tree::Meta, b"a").unwrap(), None);
        s.put(Tree::Cdrs, b"a", b"2").unwrap();
        assert_eq!(s.get(Tree::Cdrs, b"a").unwrap(), Some(b"2".to_vec()));
        assert_eq!(s.count(Tree::Cdrs).unwrap(), 1);
        s.delete(Tree::Cdrs, b"a").unwrap();
        s.delete(Tree::Cdrs, b"a").unwrap();
        assert_eq!(s.get(Tree::Cdrs, b"a").unwrap(), None);
        assert_eq!(s.count(Tree::Cdrs).unwrap(), 0);
        // Meta holds the schema version.
        assert_eq!(s.count(Tree::Meta).unwrap(), 1);
    }

    #[test]
    fn scan_prefix_order_reverse_limit() {
        let s = SledStore::temporary().unwrap();
        for k in ["b2", "a1", "b1", "b3", "c1"] {
            s.put(Tree::Cdrs, k.as_bytes(), k.as_bytes()).unwrap();
        }
        let fwd = s.scan_prefix(Tree::Cdrs, b"b", 10, false).unwrap();
        assert_eq!(fwd, vec![kv("b1", "b1"), kv("b2", "b2"), kv("b3", "b3")]);
        let rev = s.scan_prefix(Tree::Cdrs, b"b", 2, true).unwrap();
        assert_eq!(rev, vec![kv("b3", "b3"), kv("b2", "b2")]);
        assert_eq!(s.scan_prefix(Tree::Cdrs, b"", 100, false).unwrap().len(), 5);
        assert_eq!(s.scan_prefix(Tree::Cdrs, b"", 0, true).unwrap(), vec![]);
        assert_eq!(s.scan_prefix(Tree::Cdrs, b"z", 10, true).unwrap(), vec![]);
        let all_rev = s.scan_prefix(Tree::Cdrs, b"", 1, true).unwrap();
        assert_eq!(all_rev, vec![kv("c1", "c1")]);
    }

    #[test]
    fn batch_applies_across_trees() {
        let s = SledStore::temporary().unwrap();
        s.put(Tree::Cdrs, b"old", b"x").unwrap();
        s.apply_batch(vec![
            BatchOp::Put {
                tree: Tree::Cdrs,
                key: b"k1".to_vec(),
                value: b"v1".to_vec(),
            },
            BatchOp::Put {
                tree: Tree::Meta,
                key: b"k2".to_vec(),
                value: b"v2".to_vec(),
            },
            BatchOp::Delete {
                tree: Tree::Cdrs,
                key: b"old".to_vec(),
            },
        ])
        .unwrap();
        assert_eq!(s.get(Tree::Cdrs, b"k1").unwrap(), Some(b"v1".to_vec()));
        assert_eq!(s.get(Tree::Meta, b"k2").unwrap(), Some(b"v2".to_vec()));
        assert_eq!(s.get(Tree::Cdrs, b"old").unwrap(), None);
        s.apply_batch(vec![]).unwrap();
    }

    #[test]
    fn batch_is_atomic_to_concurrent_readers() {
        // Writers flip two keys in different trees together; a reader never sees them differ
        // within one batch generation once both are written.
        let s = std::sync::Arc::new(SledStore::temporary().unwrap());
        let writer = {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0u32..300 {
                    let v = i.to_be_bytes().to_vec();
                    s.apply_batch(vec![
                        BatchOp::Put {
                            tree: Tree::Cdrs,
                            key: b"x".to_vec(),
                            value: v.clone(),
                        },
                        BatchOp::Put {
                            tree: Tree::Meta,
                            key: b"x".to_vec(),
                            value: v,
                        },
                    ])
                    .unwrap();
                }
            })
        };
        // Read in a transaction-free way: the later read must never be older than the earlier.
        for _ in 0..2000 {
            let a = s.get(Tree::Cdrs, b"x").unwrap();
            let b = s.get(Tree::Meta, b"x").unwrap();
            if let (Some(a), Some(b)) = (a, b) {
                assert!(b >= a, "meta {b:?} older than cdrs {a:?}: batch not atomic");
            }
        }
        writer.join().unwrap();
        assert_eq!(
            s.get(Tree::Cdrs, b"x").unwrap(),
            s.get(Tree::Meta, b"x").unwrap()
        );
    }

    #[test]
    fn reopen_keeps_flushed_data() {
        let dir = TempDir::new("reopen");
        {
            let s = SledStore::open(&dir.0).unwrap();
            s.put(Tree::Cdrs, b"k", b"v").unwrap();
            s.flush().unwrap();
        }
        let s = SledStore::open(&dir.0).unwrap();
        assert_eq!(s.get(Tree::Cdrs, b"k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(s.schema_version(), SCHEMA_VERSION);
    }

    #[test]
    fn schema_too_new_on_reopen() {
        let dir = TempDir::new("schema");
        {
            let s = SledStore::open(&dir.0).unwrap();
            s.put(Tree::Meta, SCHEMA_VERSION_KEY, &99u32.to_be_bytes())
                .unwrap();
            s.flush().unwrap();
        }
        match SledStore::open(&dir.0) {
            Err(StoreError::SchemaTooNew { found, supported }) => {
                assert_eq!(found, 99);
                assert_eq!(supported, SCHEMA_VERSION);
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[test]
    fn schema_too_old_is_refused_not_opened_as_current() {
        // Before issue 12 an older version was opened as-is and read with the current layout.
        let dir = TempDir::new("schema-old");
        {
            let s = SledStore::open(&dir.0).unwrap();
            s.put(Tree::Meta, SCHEMA_VERSION_KEY, &0u32.to_be_bytes())
                .unwrap();
            s.flush().unwrap();
        }
        match SledStore::open(&dir.0) {
            Err(e @ StoreError::SchemaTooOld { found: 0, .. }) => {
                assert!(e.to_string().contains("no migration"), "{e}")
            }
            other => panic!("expected SchemaTooOld, got {other:?}"),
        }
    }

    #[test]
    fn snapshot_sees_every_tree_and_waits_for_no_reader() {
        let s = SledStore::temporary().unwrap();
        s.put(Tree::Cdrs, b"c", b"1").unwrap();
        s.put(Tree::Accounts, b"a", b"2").unwrap();
        let mut seen = Vec::new();
        s.snapshot(&mut |t, k, v| seen.push((t, k.to_vec(), v.to_vec())))
            .unwrap();
        assert_eq!(seen.len(), 3, "{seen:?}"); // with the schema version
        assert!(seen.contains(&(Tree::Cdrs, b"c".to_vec(), b"1".to_vec())));
        assert!(seen.contains(&(Tree::Accounts, b"a".to_vec(), b"2".to_vec())));
        // Reads still work inside a snapshot (no self-deadlock on the gate).
        s.snapshot(&mut |_, _, _| {
            let _ = s.get(Tree::Cdrs, b"c").unwrap();
        })
        .unwrap();
    }

    #[test]
    fn snapshot_never_sees_half_a_batch() {
        use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        let s = std::sync::Arc::new(SledStore::temporary().unwrap());
        let done = std::sync::Arc::new(AtomicU32::new(0));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let writer = {
            let (s, done, stop) = (s.clone(), done.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    let v = i.to_be_bytes().to_vec();
                    s.apply_batch(vec![
                        BatchOp::Put {
                            tree: Tree::Accounts,
                            key: b"x".to_vec(),
                            value: v.clone(),
                        },
                        BatchOp::Put {
                            tree: Tree::Transfers,
                            key: i.to_be_bytes().to_vec(),
                            value: v,
                        },
                    ])
                    .unwrap();
                    i += 1;
                    done.store(i, Ordering::SeqCst);
                }
            })
        };
        // Let the writer get going.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while done.load(Ordering::SeqCst) < 10 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        for _ in 0..10 {
            let mut account = None;
            let mut transfers = 0u32;
            s.snapshot(&mut |t, _, v| match t {
                Tree::Accounts => {
                    account = Some(u32::from_be_bytes(v.try_into().unwrap()));
                    // Give a writer every chance to land between the two trees: wait (briefly)
                    // for another batch. With the gate held it never comes.
                    let seen = done.load(Ordering::SeqCst);
                    let until = std::time::Instant::now() + std::time::Duration::from_millis(20);
                    while done.load(Ordering::SeqCst) == seen && std::time::Instant::now() < until {
                        std::thread::yield_now();
                    }
                }
                Tree::Transfers => transfers += 1,
                _ => {}
            })
            .unwrap();
            // The account carries the number of the last transfer: one more transfer than it.
            match account {
                None => assert_eq!(transfers, 0),
                Some(last) => assert_eq!(transfers, last + 1, "torn snapshot"),
            }
        }
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap();
    }

    #[test]
    fn held_lock_is_reported_as_locked() {
        let dir = TempDir::new("locked");
        let _held = SledStore::open(&dir.0).unwrap();
        match SledStore::open(&dir.0) {
            Err(e @ StoreError::Locked { .. }) => {
                assert!(e.to_string().contains("in use by another process"), "{e}")
            }
            other => panic!("expected Locked, got {other:?}"),
        }
    }

    #[test]
    fn garbage_schema_version_is_corrupt() {
        let dir = TempDir::new("schema-garbage");
        {
            let s = SledStore::open(&dir.0).unwrap();
            s.put(Tree::Meta, SCHEMA_VERSION_KEY, b"xy").unwrap();
            s.flush().unwrap();
        }
        assert!(matches!(
            SledStore::open(&dir.0),
            Err(StoreError::Corrupt {
                tree: Tree::Meta,
                reason: Corruption::SchemaVersionLength { len: 2 },
                ..
            })
        ));
    }
}
