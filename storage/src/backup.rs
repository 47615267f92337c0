//! Backup archives: one file holding a consistent snapshot of every tree of a [`Store`]
//! ([`Store::snapshot`]) and the files of the fax spool, and the offline restore of such an
//! archive into a new, empty store directory.
//!
//! Format (version 1, big-endian integers), checked end to end by a SHA-256 trailer:
//! ```text
//! "SWITCHBOARD-BACKUP\n"  u32 format  u32 schema version  u64 created (unix ms)
//! then entries, each a tag byte:
//!   1  record: u8 tree-name length, tree name, u32 key length, key, u32 value length, value
//!   2  file:   u16 path length, path relative to the spool ('/'-separated), u64 length, bytes
//!   0  end:    u64 records, u64 files, 32-byte SHA-256 of every byte before it
//! ```
//! A restore verifies the whole archive (checksum, counts, schema version, tree names, paths)
//! before it writes anything.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{BatchOp, SledStore, Store, StoreError, Tree, SCHEMA_VERSION};

/// First bytes of every archive.
pub const MAGIC: &[u8] = b"SWITCHBOARD-BACKUP\n";
/// Version of the archive layout written by this code.
pub const FORMAT_VERSION: u32 = 1;
/// File name of the archive inside a backup directory.
pub const ARCHIVE_NAME: &str = "switchboard.backup";
/// Largest key or value, and longest spool path, a restore accepts.
const MAX_FIELD: u64 = 1 << 30;
/// Records written per batch during a restore.
const RESTORE_BATCH: usize = 1000;

const TAG_END: u8 = 0;
const TAG_RECORD: u8 = 1;
const TAG_FILE: u8 = 2;

/// What went wrong taking or restoring a backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing the archive or a spool file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The archive is not one, is truncated, or does not match its checksum.
    #[error("not a valid switchboard backup: {reason}")]
    Invalid {
        /// What is wrong.
        reason: &'static str,
    },
    /// The archive names a tree this code does not know.
    #[error("the backup holds tree {name:?}, unknown to this release")]
    UnknownTree {
        /// The tree name.
        name: String,
    },
    /// The archive was made from a store of another schema version.
    #[error(
        "the backup has schema version {found}, this release reads only {supported}; restore \
         it with the release that made it"
    )]
    SchemaMismatch {
        /// Version in the archive.
        found: u32,
        /// Version of this code.
        supported: u32,
    },
    /// The archive's layout is newer than this code.
    #[error("backup format {found} is newer than the supported {FORMAT_VERSION}")]
    FormatTooNew {
        /// Version in the archive.
        found: u32,
    },
    /// A spool path in the archive would leave the spool directory.
    #[error("the backup holds an unsafe spool path {path:?}")]
    UnsafePath {
        /// The path.
        path: String,
    },
    /// The restore target already holds data.
    #[error("{path} exists and is not empty; restore only into a new directory")]
    TargetNotEmpty {
        /// The target.
        path: String,
    },
    /// The restored store does not hold what the archive holds.
    #[error("restored tree {tree} holds {found} entries, the backup {expected}")]
    CountMismatch {
        /// The tree.
        tree: Tree,
        /// Entries in the backup.
        expected: usize,
        /// Entries after the restore.
        found: usize,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// What a backup or a restore handled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Entries per tree, in [`Tree::ALL`] order.
    pub records: Vec<(Tree, usize)>,
    /// Spool files.
    pub files: usize,
    /// Spool bytes.
    pub file_bytes: u64,
}

impl Summary {
    /// Total records.
    pub fn total_records(&self) -> usize {
        self.records.iter().map(|(_, n)| n).sum()
    }
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.inner.write_all(bytes)
    }
}

/// Write a backup of `store` (a consistent snapshot, see [`Store::snapshot`]) and of the files
/// under `spool` (if given and present; `*.tmp` files, being written, are skipped) to `out`.
///
/// The snapshot is taken into memory first so that writes to the store wait only for the
/// copy, not for `out`.
pub fn write_backup(
    store: &dyn Store,
    spool: Option<&Path>,
    created_unix_ms: u64,
    out: impl Write,
) -> Result<Summary, BackupError> {
    let mut records: Vec<(Tree, Vec<u8>, Vec<u8>)> = Vec::new();
    store.snapshot(&mut |t, k, v| records.push((t, k.to_vec(), v.to_vec())))?;
    let mut w = Hashing {
        inner: out,
        hash: Sha256::new(),
    };
    let e = || io("writing the backup");
    w.put(MAGIC).map_err(e())?;
    w.put(&FORMAT_VERSION.to_be_bytes()).map_err(e())?;
    w.put(&SCHEMA_VERSION.to_be_bytes()).map_err(e())?;
    w.put(&created_unix_ms.to_be_bytes()).map_err(e())?;
    let mut summary = Summary {
        records: Tree::ALL.iter().map(|&t| (t, 0)).collect(),
        ..Summary::default()
    };
    for (t, k, v) in &records {
        let name = t.name().as_bytes();
        w.put(&[TAG_RECORD, name.len() as u8]).map_err(e())?;
        w.put(name).map_err(e())?;
        w.put(&(k.len() as u32).to_be_bytes()).map_err(e())?;
        w.put(k).map_err(e())?;
        w.put(&(v.len() as u32).to_be_bytes()).map_err(e())?;
        w.put(v).map_err(e())?;
        summary.records[t.index()].1 += 1;
    }
    drop(records);
    if let Some(spool) = spool.filter(|p| p.is_dir()) {
        let mut files = Vec::new();
        list_files(spool, Path::new(""), &mut files)?;
        files.sort();
        for rel in files {
            let path = spool.join(&rel);
            let data = match std::fs::read(&path) {
                Ok(d) => d,
                // Removed since listed (an expired upload): nothing to keep.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(io(format!("reading {}", path.display()))(err)),
            };
            let name = rel_name(&rel);
            w.put(&[TAG_FILE]).map_err(e())?;
            w.put(&(name.len() as u16).to_be_bytes()).map_err(e())?;
            w.put(name.as_bytes()).map_err(e())?;
            w.put(&(data.len() as u64).to_be_bytes()).map_err(e())?;
            w.put(&data).map_err(e())?;
            summary.files += 1;
            summary.file_bytes += data.len() as u64;
        }
    }
    w.put(&[TAG_END]).map_err(e())?;
    w.put(&(summary.total_records() as u64).to_be_bytes())
        .map_err(e())?;
    w.put(&(summary.files as u64).to_be_bytes()).map_err(e())?;
    let digest = w.hash.clone().finalize();
    w.inner.write_all(&digest).map_err(e())?;
    w.inner.flush().map_err(e())?;
    Ok(summary)
}

/// Regular files under `dir` (recursively), relative to the spool root; symlinks are skipped.
fn list_files(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), BackupError> {
    let dir = root.join(rel);
    let entries = std::fs::read_dir(&dir).map_err(io(format!("listing {}", dir.display())))?;
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = rel.join(entry.file_name());
        if kind.is_dir() {
            list_files(root, &name, out)?;
        } else if kind.is_file()
            && entry.path().extension().is_none_or(|x| x != "tmp")
            && name.to_str().is_some()
        {
            out.push(name);
        }
    }
    Ok(())
}

fn rel_name(rel: &Path) -> String {
    rel.components()
        .filter_map(|c| c.as_os_str().to_str())
        .collect::<Vec<_>>()
        .join("/")
}

/// A spool path from an archive, checked to stay inside the spool.
fn safe_rel(name: &str) -> Result<PathBuf, BackupError> {
    let p = Path::new(name);
    let ok = !name.is_empty()
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && !name.contains('\\');
    if ok {
        Ok(p.to_path_buf())
    } else {
        Err(BackupError::UnsafePath {
            path: name.to_string(),
        })
    }
}

/// One entry read back from an archive.
enum Item {
    Record(Tree, Vec<u8>, Vec<u8>),
    File(PathBuf, Vec<u8>),
}

/// Reads an archive, hashing as it goes.
struct Reader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Reader<R> {
    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, BackupError> {
        if n > MAX_FIELD {
            return Err(BackupError::Invalid {
                reason: "a field is too large",
            });
        }
        let mut buf = Vec::new();
        (&mut self.inner)
            .take(n)
            .read_to_end(&mut buf)
            .map_err(io("reading the backup"))?;
        if buf.len() as u64 != n {
            return Err(BackupError::Invalid {
                reason: "truncated",
            });
        }
        self.hash.update(&buf);
        Ok(buf)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], BackupError> {
        let v = self.bytes(N as u64)?;
        Ok(v.try_into().unwrap_or([0; N]))
    }
    fn u8(&mut self) -> Result<u8, BackupError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, BackupError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, BackupError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, BackupError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

/// Read the whole archive, calling `each` per entry, and check its trailer. Returns the
/// creation time in the header.
fn read_archive(
    input: impl Read,
    mut each: impl FnMut(Item) -> Result<(), BackupError>,
) -> Result<u64, BackupError> {
    let mut r = Reader {
        inner: input,
        hash: Sha256::new(),
    };
    if r.bytes(MAGIC.len() as u64)? != MAGIC {
        return Err(BackupError::Invalid {
            reason: "no backup header",
        });
    }
    let format = r.u32()?;
    if format > FORMAT_VERSION {
        return Err(BackupError::FormatTooNew { found: format });
    }
    let schema = r.u32()?;
    if schema != SCHEMA_VERSION {
        return Err(BackupError::SchemaMismatch {
            found: schema,
            supported: SCHEMA_VERSION,
        });
    }
    let created = r.u64()?;
    let (mut records, mut files) = (0u64, 0u64);
    loop {
        match r.u8()? {
            TAG_RECORD => {
                let len = r.u8()?;
                let name = r.bytes(u64::from(len))?;
                let name = String::from_utf8_lossy(&name).into_owned();
                let tree = Tree::ALL
                    .iter()
                    .copied()
                    .find(|t| t.name() == name)
                    .ok_or(BackupError::UnknownTree { name })?;
                let klen = r.u32()?;
                let key = r.bytes(u64::from(klen))?;
                let vlen = r.u32()?;
                let value = r.bytes(u64::from(vlen))?;
                records += 1;
                each(Item::Record(tree, key, value))?;
            }
            TAG_FILE => {
                let len = r.u16()?;
                let name = r.bytes(u64::from(len))?;
                let name = String::from_utf8(name).map_err(|_| BackupError::Invalid {
                    reason: "a spool path is not UTF-8",
                })?;
                let rel = safe_rel(&name)?;
                let size = r.u64()?;
                let data = r.bytes(size)?;
                files += 1;
                each(Item::File(rel, data))?;
            }
            TAG_END => break,
            _ => {
                return Err(BackupError::Invalid {
                    reason: "unknown entry tag",
                })
            }
        }
    }
    let (want_records, want_files) = (r.u64()?, r.u64()?);
    let digest = r.hash.clone().finalize();
    let mut trailer = [0u8; 32];
    r.inner
        .read_exact(&mut trailer)
        .map_err(|_| BackupError::Invalid {
            reason: "truncated",
        })?;
    if trailer[..] != digest[..] {
        return Err(BackupError::Invalid {
            reason: "checksum mismatch",
        });
    }
    if (want_records, want_files) != (records, files) {
        return Err(BackupError::Invalid {
            reason: "entry counts do not match the trailer",
        });
    }
    let mut rest = [0u8; 1];
    if r.inner.read(&mut rest).map_err(io("reading the backup"))? != 0 {
        return Err(BackupError::Invalid {
            reason: "bytes after the end",
        });
    }
    Ok(created)
}

/// Check an archive end to end without writing anything; what it holds.
pub fn verify(input: impl Read) -> Result<Summary, BackupError> {
    let mut s = Summary {
        records: Tree::ALL.iter().map(|&t| (t, 0)).collect(),
        ..Summary::default()
    };
    read_archive(input, |item| {
        match item {
            Item::Record(t, _, _) => s.records[t.index()].1 += 1,
            Item::File(_, d) => {
                s.files += 1;
                s.file_bytes += d.len() as u64;
            }
        }
        Ok(())
    })?;
    Ok(s)
}

fn is_empty_or_absent(dir: &Path) -> Result<bool, BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut it) => Ok(it.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io(format!("reading {}", dir.display()))(e)),
    }
}

/// Restore the archive at `archive` into a new sled store at `store_dir` and its spool files
/// into `spool_dir` (both must be absent or empty; the spool may live inside the store
/// directory, as it does by default). The archive is verified in full first; the store is
/// flushed and its counts compared with the archive's at the end.
pub fn restore(archive: &Path, store_dir: &Path, spool_dir: &Path) -> Result<Summary, BackupError> {
    let open = || {
        std::fs::File::open(archive)
            .map(std::io::BufReader::new)
            .map_err(io(format!("opening {}", archive.display())))
    };
    let expected = verify(open()?)?;
    for dir in [store_dir, spool_dir] {
        if !is_empty_or_absent(dir)? {
            return Err(BackupError::TargetNotEmpty {
                path: dir.display().to_string(),
            });
        }
    }
    let store = SledStore::open(store_dir)?;
    let mut batch = Vec::with_capacity(RESTORE_BATCH);
    read_archive(open()?, |item| {
        match item {
            Item::Record(tree, key, value) => {
                batch.push(BatchOp::Put { tree, key, value });
                if batch.len() >= RESTORE_BATCH {
                    store.apply_batch(std::mem::take(&mut batch))?;
                }
            }
            Item::File(rel, data) => {
                let path = spool_dir.join(rel);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(io(format!("creating {}", parent.display())))?;
                }
                let mut f = std::fs::File::create(&path)
                    .map_err(io(format!("creating {}", path.display())))?;
                f.write_all(&data)
                    .and_then(|()| f.sync_all())
                    .map_err(io(format!("writing {}", path.display())))?;
            }
        }
        Ok(())
    })?;
    store.apply_batch(batch)?;
    store.flush()?;
    for &(tree, want) in &expected.records {
        let found = store.count(tree)?;
        if found != want {
            return Err(BackupError::CountMismatch {
                tree,
                expected: want,
                found,
            });
        }
    }
    Ok(expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sled_store::tests::TempDir;

    fn sample(dir: &Path) -> SledStore {
        let s = SledStore::open(&dir.join("store")).unwrap();
        s.put(Tree::Cdrs, b"c1", b"cdr").unwrap();
        s.put(Tree::Accounts, b"acme", &[0, 1, 2, 255]).unwrap();
        s.put(Tree::ApiKeys, b"k", b"").unwrap();
        let spool = dir.join("store").join("fax");
        std::fs::create_dir_all(spool.join("in")).unwrap();
        std::fs::write(spool.join("job1.tif"), b"II*\0tiff").unwrap();
        std::fs::write(spool.join("in").join("rx.tif"), b"rx").unwrap();
        std::fs::write(spool.join("half.tmp"), b"partial").unwrap();
        s
    }

    #[test]
    fn backup_then_restore_round_trips_records_and_spool() {
        let dir = TempDir::new("backup-roundtrip");
        let s = sample(&dir.0);
        let mut bytes = Vec::new();
        let summary =
            write_backup(&s, Some(&dir.0.join("store").join("fax")), 7, &mut bytes).unwrap();
        assert_eq!(summary.total_records(), 4); // with the schema version
        assert_eq!(summary.files, 2, "the .tmp file is skipped");
        assert_eq!(verify(&bytes[..]).unwrap(), summary);
        let archive = dir.0.join(ARCHIVE_NAME);
        std::fs::write(&archive, &bytes).unwrap();
        let new = dir.0.join("restored");
        let restored = restore(&archive, &new, &new.join("fax")).unwrap();
        assert_eq!(restored, summary);
        let r = SledStore::open(&new).unwrap();
        assert_eq!(
            r.get(Tree::Accounts, b"acme").unwrap(),
            Some(vec![0, 1, 2, 255])
        );
        assert_eq!(r.get(Tree::Cdrs, b"c1").unwrap(), Some(b"cdr".to_vec()));
        assert_eq!(r.get(Tree::ApiKeys, b"k").unwrap(), Some(vec![]));
        assert_eq!(
            std::fs::read(new.join("fax").join("in").join("rx.tif")).unwrap(),
            b"rx"
        );
        assert!(!new.join("fax").join("half.tmp").exists());
        // Never over existing data.
        drop(r);
        assert!(matches!(
            restore(&archive, &new, &dir.0.join("elsewhere")),
            Err(BackupError::TargetNotEmpty { .. })
        ));
    }

    #[test]
    fn damaged_archives_are_refused_before_anything_is_written() {
        let dir = TempDir::new("backup-damaged");
        let s = sample(&dir.0);
        let mut bytes = Vec::new();
        write_backup(&s, None, 7, &mut bytes).unwrap();
        // One flipped bit anywhere: checksum (or structure) failure.
        for at in [MAGIC.len() + 20, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            assert!(verify(&bad[..]).is_err(), "flip at {at} accepted");
        }
        // Truncated at every length.
        for len in 0..bytes.len() {
            assert!(
                verify(&bytes[..len]).is_err(),
                "truncation at {len} accepted"
            );
        }
        let archive = dir.0.join("bad.backup");
        std::fs::write(&archive, &bytes[..bytes.len() - 3]).unwrap();
        let new = dir.0.join("restored");
        assert!(restore(&archive, &new, &new.join("fax")).is_err());
        assert!(!new.exists(), "a refused restore wrote the target");
    }

    #[test]
    fn unsafe_spool_paths_are_refused() {
        for p in ["../x", "/etc/passwd", "a/../../b", "", "a\\..\\b", "./a"] {
            assert!(safe_rel(p).is_err(), "{p:?} accepted");
        }
        assert!(safe_rel("in/rx.tif").is_ok());
    }

    #[test]
    fn another_schema_version_is_refused() {
        let dir = TempDir::new("backup-schema");
        let s = sample(&dir.0);
        let mut bytes = Vec::new();
        write_backup(&s, None, 7, &mut bytes).unwrap();
        let at = MAGIC.len() + 4;
        bytes[at..at + 4].copy_from_slice(&(SCHEMA_VERSION + 1).to_be_bytes());
        assert!(matches!(
            verify(&bytes[..]),
            Err(BackupError::SchemaMismatch { .. })
        ));
    }
}
