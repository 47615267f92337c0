//! Durable device state for the MQTT device gateway: claimed devices and their credential
//! hashes ([`Tree::Devices`]), claim nonces against replay ([`Tree::Nonces`]) and the per-device
//! command queue with ack and retry ([`Tree::Commands`]). Records are versioned JSON like
//! [`crate::cdr`]; garbage is [`StoreError::Corrupt`], newer versions [`StoreError::RecordTooNew`].
//!
//! Keys:
//! - devices: the device id;
//! - nonces: `device_id ++ 0x00 ++ nonce`;
//! - commands: `device_id ++ 0x00 ++ big-endian seq` (a prefix scan returns a device's commands
//!   in order), plus an index `device_id ++ 0x01 ++ request id` holding the seq (8 bytes
//!   big-endian) so [`get_command`] needs no scan.
//!
//! Device ids must not contain the bytes 0x00 or 0x01 (the MQTT crate's `DeviceId` is
//! `[A-Za-z0-9_-]{1,64}`); such an id is refused with [`StoreError::Encode`]. Read-modify-write helpers ([`record_nonce`],
//! [`enqueue_command`]) are not atomic against concurrent writers for the same device: the
//! claim handler and the device's session actor are the single writers for their keys.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{rfc3339, BatchOp, Corruption, Store, StoreError, Tree};

/// Separator between the device id and the seq (or nonce) in a key.
const SEQ_SEP: u8 = 0x00;
/// Separator between the device id and the request id in the command index.
const INDEX_SEP: u8 = 0x01;

/// Decode a versioned JSON record, refusing garbage and versions newer than `supported`.
pub(crate) fn decode<T: DeserializeOwned>(
    tree: Tree,
    key: &[u8],
    bytes: &[u8],
    supported: u32,
) -> Result<T, StoreError> {
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let corrupt = |source| StoreError::Corrupt {
        tree,
        key: key.to_vec(),
        reason: Corruption::Json { source },
    };
    let Version { v } = serde_json::from_slice(bytes).map_err(corrupt)?;
    if v > supported {
        return Err(StoreError::RecordTooNew {
            tree,
            key: key.to_vec(),
            found: v,
            supported,
        });
    }
    serde_json::from_slice(bytes).map_err(corrupt)
}

pub(crate) fn encode<T: Serialize>(tree: Tree, record: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|source| StoreError::Encode { tree, source })
}

/// `device_id ++ sep`, refusing ids with a separator byte (they would break prefix scans).
fn device_prefix(tree: Tree, device_id: &str, sep: u8) -> Result<Vec<u8>, StoreError> {
    if device_id.bytes().any(|b| b == SEQ_SEP || b == INDEX_SEP) {
        return Err(StoreError::Encode {
            tree,
            source: <serde_json::Error as serde::ser::Error>::custom(
                "device id must not contain the bytes 0x00 or 0x01",
            ),
        });
    }
    let mut key = Vec::with_capacity(device_id.len() + 9);
    key.extend_from_slice(device_id.as_bytes());
    key.push(sep);
    Ok(key)
}

/// The credential hash as stored with a device (the MQTT crate's `StoredCredential`; storage
/// does not depend on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCredentialData {
    /// Salt, lowercase hex.
    pub salt: String,
    /// SHA-256(salt || secret), lowercase hex.
    pub hash: String,
}

/// A claimed device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Record schema version; write [`DeviceRecord::VERSION`].
    pub v: u32,
    /// Device id (the key).
    pub id: String,
    /// Account the device belongs to (charged, listed under).
    pub account: String,
    /// Its MQTT credential, hashed.
    pub credential: StoredCredentialData,
    /// When it was claimed, RFC 3339 (see [`rfc3339`]).
    pub claimed_at: String,
    /// Firmware version last reported, if any.
    pub firmware: Option<String>,
}

impl DeviceRecord {
    /// Highest record version this code writes and reads.
    pub const VERSION: u32 = 1;
}

/// Store a device (insert or replace) and flush: a device credential must survive a crash.
pub fn put_device(store: &dyn Store, d: &DeviceRecord) -> Result<(), StoreError> {
    store.put(Tree::Devices, d.id.as_bytes(), &encode(Tree::Devices, d)?)?;
    store.flush()
}

/// The device with this id, if claimed.
pub fn get_device(store: &dyn Store, id: &str) -> Result<Option<DeviceRecord>, StoreError> {
    store
        .get(Tree::Devices, id.as_bytes())?
        .map(|v| decode(Tree::Devices, id.as_bytes(), &v, DeviceRecord::VERSION))
        .transpose()
}

/// Up to `limit` devices in id order. Fails on the first undecodable record.
pub fn list_devices(store: &dyn Store, limit: usize) -> Result<Vec<DeviceRecord>, StoreError> {
    store
        .scan_prefix(Tree::Devices, &[], limit, false)?
        .into_iter()
        .map(|(k, v)| decode(Tree::Devices, &k, &v, DeviceRecord::VERSION))
        .collect()
}

/// Reset a device so it can be claimed again (an operator act): its record
/// and credential are deleted and its pending commands fail with `device
/// reset`, in one batch, flushed. `false` if it was not claimed.
pub fn reset_device(store: &dyn Store, id: &str, now_ms: u64) -> Result<bool, StoreError> {
    if get_device(store, id)?.is_none() {
        return Ok(false);
    }
    let mut ops = vec![BatchOp::Delete {
        tree: Tree::Devices,
        key: id.as_bytes().to_vec(),
    }];
    for mut c in pending_commands(store, id)? {
        c.status = CommandStatus::Failed;
        c.error = Some("device reset".into());
        c.updated_at = rfc3339(now_ms);
        ops.extend(command_ops(&c)?);
    }
    store.apply_batch(ops)?;
    store.flush()?;
    Ok(true)
}

/// A used claim nonce as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct NonceRecord {
    v: u32,
    /// Unix seconds after which the nonce may be forgotten.
    expires_unix: i64,
}

impl NonceRecord {
    const VERSION: u32 = 1;
}

fn nonce_key(device_id: &str, nonce: &str) -> Result<Vec<u8>, StoreError> {
    let mut key = device_prefix(Tree::Nonces, device_id, SEQ_SEP)?;
    key.extend_from_slice(nonce.as_bytes());
    Ok(key)
}

/// Record a claim nonce until `expires_unix` (the claim's `ts + window`). Returns `false` if it
/// was already there (a replay) and leaves it unchanged; otherwise stores it and flushes before
/// returning `true`, so the claim may be answered.
pub fn record_nonce(
    store: &dyn Store,
    device_id: &str,
    nonce: &str,
    expires_unix: i64,
) -> Result<bool, StoreError> {
    let key = nonce_key(device_id, nonce)?;
    if store.get(Tree::Nonces, &key)?.is_some() {
        return Ok(false);
    }
    let record = NonceRecord {
        v: NonceRecord::VERSION,
        expires_unix,
    };
    store.put(Tree::Nonces, &key, &encode(Tree::Nonces, &record)?)?;
    store.flush()?;
    Ok(true)
}

/// Whether this device already used this nonce (and it is not yet purged).
pub fn nonce_seen(store: &dyn Store, device_id: &str, nonce: &str) -> Result<bool, StoreError> {
    Ok(store
        .get(Tree::Nonces, &nonce_key(device_id, nonce)?)?
        .is_some())
}

/// Delete nonces whose expiry is before `now_unix` (called periodically); returns how many.
/// A nonce expiring exactly at `now_unix` is kept: a claim with `ts + window == now` is still
/// fresh. Not flushed: losing a purge only means purging again. Fails on the first undecodable
/// record (nothing is deleted then).
pub fn purge_nonces(store: &dyn Store, now_unix: i64) -> Result<usize, StoreError> {
    let mut ops = Vec::new();
    for (key, value) in store.scan_prefix(Tree::Nonces, &[], usize::MAX, false)? {
        let record: NonceRecord = decode(Tree::Nonces, &key, &value, NonceRecord::VERSION)?;
        if record.expires_unix < now_unix {
            ops.push(BatchOp::Delete {
                tree: Tree::Nonces,
                key,
            });
        }
    }
    let n = ops.len();
    store.apply_batch(ops)?;
    Ok(n)
}

/// Where a command is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// Accepted, not yet delivered (device offline or not yet sent).
    Queued,
    /// Published to the device, awaiting its reply.
    Sent,
    /// The device replied.
    Replied,
    /// Gave up (retries exhausted or the device reported an error).
    Failed,
    /// Its deadline passed before delivery.
    Expired,
}

impl CommandStatus {
    /// Whether the command still has to be delivered (queued or sent without a reply).
    pub fn is_pending(self) -> bool {
        matches!(self, CommandStatus::Queued | CommandStatus::Sent)
    }
}

/// A command for a device, with its delivery state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// Record schema version; write [`CommandRecord::VERSION`].
    pub v: u32,
    /// Request id (the `{req}` of `devices/{id}/cmd/{req}`), unique per device.
    pub id: String,
    /// The device it is for.
    pub device_id: String,
    /// Per-device order, from 1.
    pub seq: u64,
    /// The command body sent to the device.
    pub payload: serde_json::Value,
    /// Delivery state.
    pub status: CommandStatus,
    /// How many times it was sent.
    pub attempts: u32,
    /// When it was queued, RFC 3339.
    pub created_at: String,
    /// Last change, RFC 3339.
    pub updated_at: String,
    /// The device's reply, once replied.
    pub reply: Option<serde_json::Value>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl CommandRecord {
    /// Highest record version this code writes and reads.
    pub const VERSION: u32 = 1;
}

fn command_key(device_id: &str, seq: u64) -> Result<Vec<u8>, StoreError> {
    let mut key = device_prefix(Tree::Commands, device_id, SEQ_SEP)?;
    key.extend_from_slice(&seq.to_be_bytes());
    Ok(key)
}

fn index_key(device_id: &str, id: &str) -> Result<Vec<u8>, StoreError> {
    let mut key = device_prefix(Tree::Commands, device_id, INDEX_SEP)?;
    key.extend_from_slice(id.as_bytes());
    Ok(key)
}

/// The command and its index entry, written together.
fn command_ops(c: &CommandRecord) -> Result<Vec<BatchOp>, StoreError> {
    Ok(vec![
        BatchOp::Put {
            tree: Tree::Commands,
            key: command_key(&c.device_id, c.seq)?,
            value: encode(Tree::Commands, c)?,
        },
        BatchOp::Put {
            tree: Tree::Commands,
            key: index_key(&c.device_id, &c.id)?,
            value: c.seq.to_be_bytes().to_vec(),
        },
    ])
}

/// Append a command for a device with the next per-device seq (1 for the first), status
/// [`CommandStatus::Queued`], and flush before returning. If a command with this request id is
/// already stored for the device, it is returned unchanged instead (retrying is idempotent).
pub fn enqueue_command(
    store: &dyn Store,
    device_id: &str,
    id: &str,
    payload: serde_json::Value,
    now_ms: u64,
) -> Result<CommandRecord, StoreError> {
    if let Some(existing) = get_command(store, device_id, id)? {
        return Ok(existing);
    }
    let prefix = device_prefix(Tree::Commands, device_id, SEQ_SEP)?;
    let last = store
        .scan_prefix(Tree::Commands, &prefix, 1, true)?
        .into_iter()
        .next();
    let seq = match last {
        None => 1,
        Some((key, _)) => seq_of(&prefix, &key)?.saturating_add(1),
    };
    let now = rfc3339(now_ms);
    let record = CommandRecord {
        v: CommandRecord::VERSION,
        id: id.to_string(),
        device_id: device_id.to_string(),
        seq,
        payload,
        status: CommandStatus::Queued,
        attempts: 0,
        created_at: now.clone(),
        updated_at: now,
        reply: None,
        error: None,
    };
    store.apply_batch(command_ops(&record)?)?;
    store.flush()?;
    Ok(record)
}

/// The seq in a command key under `prefix`; a key of another shape is corrupt.
fn seq_of(prefix: &[u8], key: &[u8]) -> Result<u64, StoreError> {
    key.strip_prefix(prefix)
        .and_then(|rest| <[u8; 8]>::try_from(rest).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt {
            tree: Tree::Commands,
            key: key.to_vec(),
            reason: Corruption::Json {
                source: <serde_json::Error as serde::de::Error>::custom(
                    "command key does not end in an 8-byte seq",
                ),
            },
        })
}

/// Store a changed command (status, attempts, reply…) under its device and seq, and flush.
pub fn update_command(store: &dyn Store, c: &CommandRecord) -> Result<(), StoreError> {
    store.apply_batch(command_ops(c)?)?;
    store.flush()
}

/// Commands of a device with status Queued or Sent, in seq order (what to deliver on
/// reconnect). Fails on the first undecodable record.
pub fn pending_commands(
    store: &dyn Store,
    device_id: &str,
) -> Result<Vec<CommandRecord>, StoreError> {
    let prefix = device_prefix(Tree::Commands, device_id, SEQ_SEP)?;
    let mut out = Vec::new();
    for (k, v) in store.scan_prefix(Tree::Commands, &prefix, usize::MAX, false)? {
        let c: CommandRecord = decode(Tree::Commands, &k, &v, CommandRecord::VERSION)?;
        if c.status.is_pending() {
            out.push(c);
        }
    }
    Ok(out)
}

/// The command with request id `id` of this device, if stored.
pub fn get_command(
    store: &dyn Store,
    device_id: &str,
    id: &str,
) -> Result<Option<CommandRecord>, StoreError> {
    let index = index_key(device_id, id)?;
    let Some(seq) = store.get(Tree::Commands, &index)? else {
        return Ok(None);
    };
    let seq = <[u8; 8]>::try_from(seq.as_slice())
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt {
            tree: Tree::Commands,
            key: index.clone(),
            reason: Corruption::Json {
                source: <serde_json::Error as serde::de::Error>::custom(
                    "command index is not an 8-byte seq",
                ),
            },
        })?;
    let key = command_key(device_id, seq)?;
    store
        .get(Tree::Commands, &key)?
        .map(|v| decode(Tree::Commands, &key, &v, CommandRecord::VERSION))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sled_store::tests::TempDir;
    use crate::SledStore;
    use serde_json::json;

    #[test]
    fn reset_deletes_the_device_and_fails_its_pending_commands() {
        let dir = TempDir::new("device-reset");
        let store = SledStore::open(&dir.0).unwrap();
        assert!(!reset_device(&store, "d1", 0).unwrap());
        put_device(&store, &device("d1")).unwrap();
        enqueue_command(&store, "d1", "r1", json!({"a": 1}), 0).unwrap();
        assert!(reset_device(&store, "d1", 1000).unwrap());
        assert_eq!(get_device(&store, "d1").unwrap(), None);
        assert!(pending_commands(&store, "d1").unwrap().is_empty());
        let c = get_command(&store, "d1", "r1").unwrap().unwrap();
        assert_eq!(c.status, CommandStatus::Failed);
        assert_eq!(c.error.as_deref(), Some("device reset"));
    }

    fn device(id: &str) -> DeviceRecord {
        DeviceRecord {
            v: DeviceRecord::VERSION,
            id: id.into(),
            account: "default".into(),
            credential: StoredCredentialData {
                salt: "00".repeat(16),
                hash: "ab".repeat(32),
            },
            claimed_at: rfc3339(1_795_459_201_123),
            firmware: Some("1.0.3".into()),
        }
    }

    #[test]
    fn devices_put_get_list() {
        let s = SledStore::temporary().unwrap();
        assert_eq!(get_device(&s, "a").unwrap(), None);
        for id in ["c", "a", "b"] {
            put_device(&s, &device(id)).unwrap();
        }
        assert_eq!(get_device(&s, "a").unwrap(), Some(device("a")));
        let mut changed = device("a");
        changed.firmware = None;
        put_device(&s, &changed).unwrap();
        assert_eq!(get_device(&s, "a").unwrap(), Some(changed));
        let ids: Vec<_> = list_devices(&s, 10)
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(list_devices(&s, 2).unwrap().len(), 2);
        let v: serde_json::Value =
            serde_json::from_slice(&s.get(Tree::Devices, b"b").unwrap().unwrap()).unwrap();
        assert_eq!(v["credential"]["hash"], "ab".repeat(32));
        assert_eq!(v["v"], 1);
    }

    #[test]
    fn device_garbage_and_newer_versions() {
        let s = SledStore::temporary().unwrap();
        s.put(Tree::Devices, b"x", b"not json").unwrap();
        assert!(matches!(
            get_device(&s, "x"),
            Err(StoreError::Corrupt {
                tree: Tree::Devices,
                ..
            })
        ));
        assert!(list_devices(&s, 10).is_err());
        let mut d = device("y");
        d.v = 9;
        s.put(Tree::Devices, b"y", &serde_json::to_vec(&d).unwrap())
            .unwrap();
        assert!(matches!(
            get_device(&s, "y"),
            Err(StoreError::RecordTooNew {
                found: 9,
                supported: 1,
                ..
            })
        ));
    }

    #[test]
    fn nonces_replay_and_purge() {
        let s = SledStore::temporary().unwrap();
        assert!(!nonce_seen(&s, "dev", "n1").unwrap());
        assert!(record_nonce(&s, "dev", "n1", 100).unwrap());
        assert!(nonce_seen(&s, "dev", "n1").unwrap());
        assert!(!record_nonce(&s, "dev", "n1", 500).unwrap(), "replay");
        // Per device: the same nonce from another device is fresh.
        assert!(!nonce_seen(&s, "dev2", "n1").unwrap());
        assert!(record_nonce(&s, "dev2", "n1", 200).unwrap());
        assert!(record_nonce(&s, "dev", "n2", 300).unwrap());
        assert_eq!(purge_nonces(&s, 100).unwrap(), 0, "expiry is inclusive");
        assert_eq!(purge_nonces(&s, 201).unwrap(), 2);
        assert!(!nonce_seen(&s, "dev", "n1").unwrap());
        assert!(!nonce_seen(&s, "dev2", "n1").unwrap());
        assert!(nonce_seen(&s, "dev", "n2").unwrap());
        assert_eq!(purge_nonces(&s, i64::MAX).unwrap(), 1);
        assert_eq!(s.count(Tree::Nonces).unwrap(), 0);
        // Garbage stops the purge with Corrupt instead of a panic.
        s.put(Tree::Nonces, b"dev\x00bad", b"\xff").unwrap();
        assert!(matches!(
            purge_nonces(&s, 0),
            Err(StoreError::Corrupt {
                tree: Tree::Nonces,
                ..
            })
        ));
    }

    #[test]
    fn nul_in_device_id_is_refused() {
        let s = SledStore::temporary().unwrap();
        assert!(matches!(
            record_nonce(&s, "a\0b", "n", 1),
            Err(StoreError::Encode {
                tree: Tree::Nonces,
                ..
            })
        ));
        assert!(enqueue_command(&s, "a\0", "r", json!({}), 0).is_err());
        assert!(pending_commands(&s, "a\0").is_err());
    }

    #[test]
    fn commands_in_order_per_device() {
        let s = SledStore::temporary().unwrap();
        // More than 256 so the seq crosses a byte boundary in the key.
        for i in 0..300u64 {
            let c =
                enqueue_command(&s, "dev", &format!("r{i}"), json!({ "n": i }), 1_000 + i).unwrap();
            assert_eq!(c.seq, i + 1);
            assert_eq!(c.status, CommandStatus::Queued);
        }
        // A device whose id extends the first one's does not mix in.
        enqueue_command(&s, "dev2", "r0", json!({}), 0).unwrap();
        enqueue_command(&s, "de", "r0", json!({}), 0).unwrap();
        let pending = pending_commands(&s, "dev").unwrap();
        assert_eq!(pending.len(), 300);
        assert!(pending.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(pending[299].payload, json!({ "n": 299 }));
        assert_eq!(pending_commands(&s, "dev2").unwrap().len(), 1);
        assert_eq!(pending_commands(&s, "de").unwrap()[0].seq, 1);
        assert_eq!(pending_commands(&s, "nobody").unwrap(), vec![]);
    }

    #[test]
    fn update_get_and_idempotent_enqueue() {
        let s = SledStore::temporary().unwrap();
        let a = enqueue_command(&s, "dev", "ra", json!({"op": "on"}), 1_000).unwrap();
        let b = enqueue_command(&s, "dev", "rb", json!({"op": "off"}), 2_000).unwrap();
        let c = enqueue_command(&s, "dev", "rc", json!(null), 3_000).unwrap();
        assert_eq!(a.created_at, "1970-01-01T00:00:01.000Z");
        // Same request id again: the stored command, not a new one.
        let again = enqueue_command(&s, "dev", "ra", json!({"op": "other"}), 9_000).unwrap();
        assert_eq!(again, a);
        let mut a2 = a.clone();
        a2.status = CommandStatus::Replied;
        a2.attempts = 1;
        a2.reply = Some(json!({"ok": true}));
        a2.updated_at = rfc3339(4_000);
        update_command(&s, &a2).unwrap();
        let mut b2 = b.clone();
        b2.status = CommandStatus::Sent;
        b2.attempts = 2;
        update_command(&s, &b2).unwrap();
        let mut c2 = c.clone();
        c2.status = CommandStatus::Expired;
        update_command(&s, &c2).unwrap();
        assert_eq!(get_command(&s, "dev", "ra").unwrap(), Some(a2));
        assert_eq!(get_command(&s, "dev", "rz").unwrap(), None);
        assert_eq!(get_command(&s, "other", "ra").unwrap(), None);
        assert_eq!(pending_commands(&s, "dev").unwrap(), vec![b2]);
        // Seq keeps growing after updates.
        let d = enqueue_command(&s, "dev", "rd", json!(1), 5_000).unwrap();
        assert_eq!(d.seq, 4);
        let v: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(&d).unwrap()).unwrap();
        assert_eq!(v["status"], "queued");
        assert_eq!(
            serde_json::to_string(&CommandStatus::Replied).unwrap(),
            "\"replied\""
        );
    }

    #[test]
    fn command_garbage_is_corrupt() {
        let s = SledStore::temporary().unwrap();
        s.put(Tree::Commands, &command_key("dev", 1).unwrap(), b"{")
            .unwrap();
        assert!(matches!(
            pending_commands(&s, "dev"),
            Err(StoreError::Corrupt { .. })
        ));
        s.put(Tree::Commands, &index_key("dev", "r").unwrap(), b"xyz")
            .unwrap();
        assert!(matches!(
            get_command(&s, "dev", "r"),
            Err(StoreError::Corrupt { .. })
        ));
        s.put(Tree::Commands, b"dev\x00short", b"{}").unwrap();
        assert!(matches!(
            enqueue_command(&s, "dev", "new", json!(1), 0),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn everything_survives_reopen() {
        let dir = TempDir::new("devices");
        {
            let s = SledStore::open(&dir.0).unwrap();
            put_device(&s, &device("d1")).unwrap();
            assert!(record_nonce(&s, "d1", "nonce-1", 1_000).unwrap());
            enqueue_command(&s, "d1", "r1", json!({"x": 1}), 0).unwrap();
            enqueue_command(&s, "d1", "r2", json!({"x": 2}), 0).unwrap();
        }
        let s = SledStore::open(&dir.0).unwrap();
        assert_eq!(get_device(&s, "d1").unwrap(), Some(device("d1")));
        assert!(nonce_seen(&s, "d1", "nonce-1").unwrap());
        assert!(!record_nonce(&s, "d1", "nonce-1", 1_000).unwrap());
        let ids: Vec<_> = pending_commands(&s, "d1")
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["r1", "r2"]);
        assert_eq!(enqueue_command(&s, "d1", "r3", json!(3), 0).unwrap().seq, 3);
    }
}
