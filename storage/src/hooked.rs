//! [`Hooked`]: a temporary [`SledStore`] that calls a hook before each atomic batch and each
//! flush, for tests that count the writes a component makes or hold a flush to see what else
//! keeps running meanwhile. Not meant for production stores.

use crate::{BatchOp, Entry, SledStore, Store, StoreError, Tree, Visitor};

/// A hook called before a batch or a flush.
pub type Hook = Box<dyn Fn() + Send + Sync>;

/// A temporary store with hooks on [`Store::apply_batch`] and [`Store::flush`].
pub struct Hooked {
    inner: SledStore,
    before_batch: Hook,
    before_flush: Hook,
}

impl Hooked {
    /// A temporary store calling `before_batch` before each batch and `before_flush` before
    /// each flush (on the caller's thread: a hook that blocks holds the caller).
    pub fn temporary(
        before_batch: impl Fn() + Send + Sync + 'static,
        before_flush: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self, StoreError> {
        Ok(Hooked {
            inner: SledStore::temporary()?,
            before_batch: Box::new(before_batch),
            before_flush: Box::new(before_flush),
        })
    }
}

impl Store for Hooked {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(tree, key)
    }
    fn put(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.inner.put(tree, key, value)
    }
    fn delete(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.inner.delete(tree, key)
    }
    fn scan_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Entry>, StoreError> {
        self.inner.scan_prefix(tree, prefix, limit, reverse)
    }
    fn apply_batch(&self, ops: Vec<BatchOp>) -> Result<(), StoreError> {
        (self.before_batch)();
        self.inner.apply_batch(ops)
    }
    fn flush(&self) -> Result<(), StoreError> {
        (self.before_flush)();
        self.inner.flush()
    }
    fn count(&self, tree: Tree) -> Result<usize, StoreError> {
        self.inner.count(tree)
    }
    fn snapshot(&self, visit: Visitor<'_>) -> Result<(), StoreError> {
        self.inner.snapshot(visit)
    }
}
