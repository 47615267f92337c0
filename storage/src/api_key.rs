//! Admin API keys ([`Tree::ApiKeys`]): only a key's SHA-256 is stored, never the key. A key
//! is `sbk_{id}_{secret}`: the 16-hex-digit `id` is its record's key (so a check is one
//! lookup), the secret 32 random bytes in hex. Keys carry scopes, an optional expiry and a
//! revocation time; a revoked key stays on record (for the audit trail) but never passes.
//! Every write is flushed before it is acknowledged.

use serde::{Deserialize, Serialize};

use crate::device::{decode, encode};
use crate::{Store, StoreError, Tree};

/// One API key, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Record version.
    pub v: u32,
    /// The key id (public; the `{id}` in `sbk_{id}_{secret}`).
    pub id: String,
    /// A label for people.
    pub name: String,
    /// SHA-256 of the whole key, hex.
    pub hash: String,
    /// Granted scopes (`admin`, `calls:read`, `devices:*`, ...).
    pub scopes: Vec<String>,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// Expiry, ms since the epoch (none: never).
    pub expires_ms: Option<u64>,
    /// Revocation time, ms since the epoch.
    pub revoked_ms: Option<u64>,
    /// The ledger accounts this key may bill (fax `account`, transfers' debit side); empty:
    /// not bound, so it names no payer of its own (records written before this field
    /// read as empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
}

impl ApiKeyRecord {
    /// Current record version.
    pub const VERSION: u32 = 1;
}

/// Store a key record (insert or replace) and flush.
pub fn put_api_key(store: &dyn Store, key: &ApiKeyRecord) -> Result<(), StoreError> {
    store.put(
        Tree::ApiKeys,
        key.id.as_bytes(),
        &encode(Tree::ApiKeys, key)?,
    )?;
    store.flush()
}

/// The key record with this id.
pub fn get_api_key(store: &dyn Store, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
    store
        .get(Tree::ApiKeys, id.as_bytes())?
        .map(|v| decode(Tree::ApiKeys, id.as_bytes(), &v, ApiKeyRecord::VERSION))
        .transpose()
}

/// Every key record, by id.
pub fn list_api_keys(store: &dyn Store) -> Result<Vec<ApiKeyRecord>, StoreError> {
    store
        .scan_prefix(Tree::ApiKeys, &[], usize::MAX, false)?
        .into_iter()
        .map(|(k, v)| decode(Tree::ApiKeys, &k, &v, ApiKeyRecord::VERSION))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SledStore;

    #[test]
    fn keys_round_trip_and_list_in_id_order() {
        let s = SledStore::temporary().unwrap();
        let mut k = ApiKeyRecord {
            v: ApiKeyRecord::VERSION,
            id: "00000000000000b2".into(),
            name: "ops".into(),
            hash: "ab".repeat(32),
            scopes: vec!["calls:read".into()],
            created_ms: 1,
            expires_ms: None,
            revoked_ms: None,
            accounts: Vec::new(),
        };
        put_api_key(&s, &k).unwrap();
        k.id = "00000000000000a1".into();
        put_api_key(&s, &k).unwrap();
        let ids: Vec<String> = list_api_keys(&s)
            .unwrap()
            .into_iter()
            .map(|k| k.id)
            .collect();
        assert_eq!(ids, ["00000000000000a1", "00000000000000b2"]);
        assert_eq!(get_api_key(&s, "00000000000000a1").unwrap(), Some(k));
        assert_eq!(get_api_key(&s, "nope").unwrap(), None);
    }
}
