//! The prepaid credits ledger, with TigerBeetle's semantics on the [`Store`]:
//!
//! - **Accounts** keep four sums in minor units: debits/credits, pending/posted. The
//!   balance is `credits_posted - debits_posted`; what can still be spent is that minus
//!   `debits_pending`. An account with `debits_must_not_exceed_credits` refuses a debit
//!   (single or pending) that would take `debits_pending + debits_posted` above
//!   `credits_posted`.
//! - **Transfers are immutable** and carry a client-chosen id: the same id with the same
//!   fields is the same transfer (nothing new is written, the original is returned); the
//!   same id with other fields is an error.
//! - **Two-phase:** a `pending` transfer reserves; `post_pending` (with an amount up to the
//!   reserved one: a partial post releases the rest) or `void_pending` ends it, each a
//!   transfer of its own with its own id. A pending transfer with a timeout expires: it is
//!   voided by the first operation that finds it past its time, or by [`Ledger::expire`],
//!   which reads only the due entries of a deadline index.
//! - **Durable before acknowledged:** every operation writes the transfer, its effect on both
//!   accounts and the account index in one atomic batch, then flushes; or, from
//!   [`Ledger::deferred`], leaves the flush to its caller, who must flush the store before it
//!   acknowledges (group commit: one flush for many transfers).
//!
//! [`Ledger`] is not thread-safe by itself: its writer (the ledger actor) serialises calls.

use serde::{Deserialize, Serialize};

use crate::device::{decode, encode};
use crate::{BatchOp, Store, StoreError, Tree};

/// Longest account or transfer id.
pub const MAX_ID: usize = 64;

/// Largest sum an account may hold on either side: `debits_posted + debits_pending` and
/// `credits_posted + credits_pending` never exceed it, so every balance and every amount is
/// exact as a signed 64-bit number (JSON, SQL `BIGINT`). An operation that would go past it
/// is refused with [`LedgerError::Overflow`], never clamped.
pub const MAX_AMOUNT: u64 = i64::MAX as u64;

/// Transfer id prefixes the gateway writes itself: `call:{id}` (a call's reservation, with
/// its `:post`/`:void`) and `fax:{job}` (a fax job's). API clients may neither create such
/// ids nor settle such transfers (see [`is_gateway_transfer`]).
pub const GATEWAY_TRANSFER_PREFIXES: [&str; 2] = ["call:", "fax:"];

/// Whether `id` is in the gateway's own transfer id space.
pub fn is_gateway_transfer(id: &str) -> bool {
    GATEWAY_TRANSFER_PREFIXES.iter().any(|p| id.starts_with(p))
}

/// Whether `id` is one of the gateway's own accounts (`@topup`, `@calls`, `@faxes`): they
/// start with `@`, which no customer account may.
pub fn is_internal_account(id: &str) -> bool {
    id.starts_with('@')
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Record version.
    pub v: u32,
    /// Id (client-chosen).
    pub id: String,
    /// Refuse debits beyond the posted credits.
    pub debits_must_not_exceed_credits: bool,
    /// Reserved, not yet posted, debits.
    pub debits_pending: u64,
    /// Posted debits.
    pub debits_posted: u64,
    /// Reserved, not yet posted, credits.
    pub credits_pending: u64,
    /// Posted credits.
    pub credits_posted: u64,
    /// Transfers touching it, for its index.
    pub transfers: u64,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
}

impl Account {
    /// Current record version.
    pub const VERSION: u32 = 1;

    /// `credits_posted - debits_posted` (may be negative on accounts without the flag).
    pub fn balance(&self) -> i128 {
        i128::from(self.credits_posted) - i128::from(self.debits_posted)
    }

    /// What can still be debited under the flag.
    pub fn available(&self) -> i128 {
        self.balance() - i128::from(self.debits_pending)
    }
}

/// What a transfer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    /// Posted at once.
    Single,
    /// Reserves `amount` until posted, voided or expired.
    Pending,
    /// Posts (part of) a pending transfer.
    PostPending,
    /// Releases a pending transfer.
    VoidPending,
}

/// Where a pending transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingState {
    /// Reserved.
    Pending,
    /// Posted.
    Posted,
    /// Voided by a client.
    Voided,
    /// Voided by its timeout.
    Expired,
}

/// A transfer, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Record version.
    pub v: u32,
    /// Id (client-chosen; the idempotency key).
    pub id: String,
    /// Account debited.
    pub debit_account: String,
    /// Account credited.
    pub credit_account: String,
    /// Amount in minor units (for a post: the amount posted).
    pub amount: u64,
    /// Kind.
    pub kind: TransferKind,
    /// For posts and voids: the pending transfer.
    pub pending_id: Option<String>,
    /// For pending transfers: seconds until it expires (0: never).
    pub timeout_secs: u64,
    /// For pending transfers: where it stands.
    pub state: Option<PendingState>,
    /// Free text (e.g. the call id).
    pub reference: Option<String>,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
}

impl Transfer {
    /// Current record version.
    pub const VERSION: u32 = 1;
}

/// What a client asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRequest {
    /// Id (idempotency key).
    pub id: String,
    /// Account debited (for posts and voids: ignored, taken from the pending transfer).
    pub debit_account: String,
    /// Account credited (idem).
    pub credit_account: String,
    /// Amount (posts: 0 means the whole pending amount).
    pub amount: u64,
    /// Kind.
    pub kind: TransferKind,
    /// For posts and voids.
    pub pending_id: Option<String>,
    /// For pending transfers.
    pub timeout_secs: u64,
    /// Free text.
    pub reference: Option<String>,
}

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// An id is empty, too long, or has characters outside `[A-Za-z0-9_.:@+-]` (`+` so a
    /// phone number can name an account).
    #[error("invalid id {0:?}")]
    BadId(String),
    /// The account exists already (with other flags).
    #[error("account {0} exists with different flags")]
    AccountExists(String),
    /// No such account.
    #[error("no account {0}")]
    NoAccount(String),
    /// Debit and credit account are the same.
    #[error("debit and credit account are the same")]
    SameAccount,
    /// Amount 0 where one is needed.
    #[error("invalid amount")]
    BadAmount,
    /// The amount, or an account's sums after it, would exceed [`MAX_AMOUNT`].
    #[error("the amount would overflow an account")]
    Overflow,
    /// The id is taken by a transfer with other fields.
    #[error("transfer {0} exists with different fields")]
    ExistsWithDifferentFields(String),
    /// The debit would exceed the account's credits.
    #[error("exceeds credits of account {0}")]
    ExceedsCredits(String),
    /// No such pending transfer.
    #[error("no pending transfer {0}")]
    NoPending(String),
    /// The pending transfer was already posted, voided or expired.
    #[error("pending transfer {id} is {state:?}")]
    PendingNotPending {
        /// Its id.
        id: String,
        /// Where it stands.
        state: PendingState,
    },
    /// A post of more than was reserved.
    #[error("post exceeds the pending amount")]
    ExceedsPendingAmount,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The write was made but could not be flushed to disk: it is not acknowledged.
    #[error("the ledger could not flush to disk")]
    NotDurable,
}

impl LedgerError {
    /// A stable code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            LedgerError::BadId(_) => "bad_id",
            LedgerError::AccountExists(_) => "account_exists",
            LedgerError::NoAccount(_) => "no_account",
            LedgerError::SameAccount => "same_account",
            LedgerError::BadAmount => "bad_amount",
            LedgerError::Overflow => "overflow",
            LedgerError::ExistsWithDifferentFields(_) => "exists_with_different_fields",
            LedgerError::ExceedsCredits(_) => "exceeds_credits",
            LedgerError::NoPending(_) => "no_pending",
            LedgerError::PendingNotPending { .. } => "pending_not_pending",
            LedgerError::ExceedsPendingAmount => "exceeds_pending_amount",
            LedgerError::Store(_) => "store",
            LedgerError::NotDurable => "not_durable",
        }
    }
}

fn check_id(id: &str) -> Result<(), LedgerError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID
        && id.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'@' | b'+' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(LedgerError::BadId(id.chars().take(80).collect()))
    }
}

/// The ledger over a store.
pub struct Ledger<'a> {
    store: &'a dyn Store,
    /// Flush after every write (else the caller flushes before acknowledging).
    flush_each: bool,
}

/// Whether a transfer was written now or existed already (idempotent replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The transfer.
    pub transfer: Transfer,
    /// False when the same request had been made before.
    pub created: bool,
}

fn index_key(account: &str, seq: u64) -> Vec<u8> {
    let mut k = account.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

impl<'a> Ledger<'a> {
    /// The ledger in `store`.
    pub fn new(store: &'a dyn Store) -> Self {
        Ledger {
            store,
            flush_each: true,
        }
    }

    /// The ledger in `store`, writing without flushing: the caller must call
    /// [`Store::flush`] before it acknowledges any write made through it.
    pub fn deferred(store: &'a dyn Store) -> Self {
        Ledger {
            store,
            flush_each: false,
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        if self.flush_each {
            self.store.flush()?;
        }
        Ok(())
    }

    /// An account.
    pub fn account(&self, id: &str) -> Result<Option<Account>, LedgerError> {
        Ok(self
            .store
            .get(Tree::Accounts, id.as_bytes())?
            .map(|v| decode(Tree::Accounts, id.as_bytes(), &v, Account::VERSION))
            .transpose()?)
    }

    /// The debit and the credit account of a transfer, both existing.
    fn pair(&self, debit: &str, credit: &str) -> Result<(Account, Account), LedgerError> {
        let get = |id: &str| {
            self.account(id)?
                .ok_or_else(|| LedgerError::NoAccount(id.to_string()))
        };
        Ok((get(debit)?, get(credit)?))
    }

    /// A transfer.
    pub fn transfer(&self, id: &str) -> Result<Option<Transfer>, LedgerError> {
        Ok(self
            .store
            .get(Tree::Transfers, id.as_bytes())?
            .map(|v| decode(Tree::Transfers, id.as_bytes(), &v, Transfer::VERSION))
            .transpose()?)
    }

    /// Create an account (idempotent: the same id with the same flags returns it).
    pub fn create_account(
        &self,
        id: &str,
        debits_must_not_exceed_credits: bool,
        now_ms: u64,
    ) -> Result<(Account, bool), LedgerError> {
        check_id(id)?;
        if let Some(a) = self.account(id)? {
            return if a.debits_must_not_exceed_credits == debits_must_not_exceed_credits {
                Ok((a, false))
            } else {
                Err(LedgerError::AccountExists(id.to_string()))
            };
        }
        let a = Account {
            v: Account::VERSION,
            id: id.to_string(),
            debits_must_not_exceed_credits,
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: 0,
            transfers: 0,
            created_ms: now_ms,
        };
        self.store
            .put(Tree::Accounts, id.as_bytes(), &encode(Tree::Accounts, &a)?)?;
        self.flush()?;
        Ok((a, true))
    }

    /// The first `limit` accounts in id order (the gateway's own `@` accounts included).
    pub fn accounts(&self, limit: usize) -> Result<Vec<Account>, LedgerError> {
        self.store
            .scan_prefix(Tree::Accounts, &[], limit, false)?
            .into_iter()
            .map(|(k, v)| Ok(decode(Tree::Accounts, &k, &v, Account::VERSION)?))
            .collect()
    }

    /// The transfers of an account, newest first.
    pub fn account_transfers(&self, id: &str, limit: usize) -> Result<Vec<Transfer>, LedgerError> {
        let mut prefix = id.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for (_, tid) in self
            .store
            .scan_prefix(Tree::AccountTransfers, &prefix, limit, true)?
        {
            let tid = String::from_utf8_lossy(&tid).into_owned();
            if let Some(t) = self.transfer(&tid)? {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Apply a transfer request.
    pub fn apply(&self, req: &TransferRequest, now_ms: u64) -> Result<Outcome, LedgerError> {
        check_id(&req.id)?;
        if let Some(existing) = self.transfer(&req.id)? {
            return if same_request(&existing, req) {
                Ok(Outcome {
                    transfer: existing,
                    created: false,
                })
            } else {
                Err(LedgerError::ExistsWithDifferentFields(req.id.clone()))
            };
        }
        match req.kind {
            TransferKind::Single | TransferKind::Pending => self.new_transfer(req, now_ms),
            TransferKind::PostPending | TransferKind::VoidPending => self.settle(req, now_ms),
        }
    }

    fn new_transfer(&self, req: &TransferRequest, now_ms: u64) -> Result<Outcome, LedgerError> {
        check_id(&req.debit_account)?;
        check_id(&req.credit_account)?;
        if req.debit_account == req.credit_account {
            return Err(LedgerError::SameAccount);
        }
        if req.amount == 0 {
            return Err(LedgerError::BadAmount);
        }
        if req.amount > MAX_AMOUNT {
            return Err(LedgerError::Overflow);
        }
        let (mut debit, mut credit) = self.pair(&req.debit_account, &req.credit_account)?;
        let pending = req.kind == TransferKind::Pending;
        // Each side's total after this transfer; both within MAX_AMOUNT (no sum is clamped).
        let debits = debit
            .debits_pending
            .checked_add(debit.debits_posted)
            .and_then(|d| d.checked_add(req.amount))
            .filter(|d| *d <= MAX_AMOUNT)
            .ok_or(LedgerError::Overflow)?;
        if debit.debits_must_not_exceed_credits && debits > debit.credits_posted {
            return Err(LedgerError::ExceedsCredits(debit.id.clone()));
        }
        credit
            .credits_pending
            .checked_add(credit.credits_posted)
            .and_then(|c| c.checked_add(req.amount))
            .filter(|c| *c <= MAX_AMOUNT)
            .ok_or(LedgerError::Overflow)?;
        // Cannot overflow: each part is at most its side's total, checked above.
        if pending {
            debit.debits_pending += req.amount;
            credit.credits_pending += req.amount;
        } else {
            debit.debits_posted += req.amount;
            credit.credits_posted += req.amount;
        }
        let t = Transfer {
            v: Transfer::VERSION,
            id: req.id.clone(),
            debit_account: req.debit_account.clone(),
            credit_account: req.credit_account.clone(),
            amount: req.amount,
            kind: req.kind,
            pending_id: None,
            timeout_secs: if pending { req.timeout_secs } else { 0 },
            state: pending.then_some(PendingState::Pending),
            reference: req.reference.clone(),
            created_ms: now_ms,
        };
        self.commit(&t, &mut debit, &mut credit, None)?;
        Ok(Outcome {
            transfer: t,
            created: true,
        })
    }

    fn settle(&self, req: &TransferRequest, now_ms: u64) -> Result<Outcome, LedgerError> {
        let pid = req.pending_id.clone().unwrap_or_default();
        let mut p = match self.transfer(&pid)? {
            Some(p) if p.kind == TransferKind::Pending => p,
            _ => return Err(LedgerError::NoPending(pid)),
        };
        if self.expire_one(&mut p, now_ms)? {
            return Err(LedgerError::PendingNotPending {
                id: pid,
                state: PendingState::Expired,
            });
        }
        if let Some(state) = p.state.filter(|s| *s != PendingState::Pending) {
            return Err(LedgerError::PendingNotPending { id: pid, state });
        }
        let post = req.kind == TransferKind::PostPending;
        let amount = match (post, req.amount) {
            (true, 0) => p.amount,
            (true, a) if a > p.amount => return Err(LedgerError::ExceedsPendingAmount),
            (true, a) => a,
            (false, _) => p.amount,
        };
        let (mut debit, mut credit) = self.pair(&p.debit_account, &p.credit_account)?;
        debit.debits_pending = debit.debits_pending.saturating_sub(p.amount);
        credit.credits_pending = credit.credits_pending.saturating_sub(p.amount);
        if post {
            debit.debits_posted = debit.debits_posted.saturating_add(amount);
            credit.credits_posted = credit.credits_posted.saturating_add(amount);
        }
        p.state = Some(if post {
            PendingState::Posted
        } else {
            PendingState::Voided
        });
        let t = Transfer {
            v: Transfer::VERSION,
            id: req.id.clone(),
            debit_account: p.debit_account.clone(),
            credit_account: p.credit_account.clone(),
            amount: if post { amount } else { 0 },
            kind: req.kind,
            pending_id: Some(pid),
            timeout_secs: 0,
            state: None,
            reference: req.reference.clone(),
            created_ms: now_ms,
        };
        self.commit(&t, &mut debit, &mut credit, Some(&p))?;
        Ok(Outcome {
            transfer: t,
            created: true,
        })
    }

    /// Void `p` if it is pending past its timeout; true when it is (now) expired.
    fn expire_one(&self, p: &mut Transfer, now_ms: u64) -> Result<bool, LedgerError> {
        if p.state == Some(PendingState::Expired) {
            return Ok(true);
        }
        let due = p.timeout_secs > 0 && now_ms >= deadline(p);
        if p.state != Some(PendingState::Pending) || !due {
            return Ok(false);
        }
        let (mut debit, mut credit) = self.pair(&p.debit_account, &p.credit_account)?;
        debit.debits_pending = debit.debits_pending.saturating_sub(p.amount);
        credit.credits_pending = credit.credits_pending.saturating_sub(p.amount);
        p.state = Some(PendingState::Expired);
        let ops = vec![
            put(Tree::Transfers, &p.id, p)?,
            put(Tree::Accounts, &debit.id, &debit)?,
            put(Tree::Accounts, &credit.id, &credit)?,
            BatchOp::Delete {
                tree: Tree::PendingDeadlines,
                key: deadline_key(p),
            },
        ];
        self.store.apply_batch(ops)?;
        self.flush()?;
        Ok(true)
    }

    /// Expire every pending transfer past its timeout, earliest deadline first; how many.
    /// Reads only the due part of the deadline index.
    pub fn expire(&self, now_ms: u64) -> Result<usize, LedgerError> {
        const BATCH: usize = 256;
        let mut n = 0;
        loop {
            let due: Vec<Vec<u8>> = self
                .store
                .scan_prefix(Tree::PendingDeadlines, &[], BATCH, false)?
                .into_iter()
                .map(|(k, _)| k)
                .take_while(|k| {
                    k.get(..8)
                        .and_then(|b| <[u8; 8]>::try_from(b).ok())
                        .is_some_and(|b| u64::from_be_bytes(b) <= now_ms)
                })
                .collect();
            let full = due.len() == BATCH;
            for key in due {
                let id = String::from_utf8_lossy(&key[8..]).into_owned();
                if let Some(mut t) = self.transfer(&id)? {
                    let was_pending = t.state == Some(PendingState::Pending);
                    if self.expire_one(&mut t, now_ms)? && was_pending {
                        n += 1;
                    }
                }
                // Expired just now, settled before, or gone: the entry has served.
                self.store.delete(Tree::PendingDeadlines, &key)?;
            }
            if !full {
                return Ok(n);
            }
        }
    }

    fn commit(
        &self,
        t: &Transfer,
        debit: &mut Account,
        credit: &mut Account,
        pending: Option<&Transfer>,
    ) -> Result<(), LedgerError> {
        debit.transfers += 1;
        credit.transfers += 1;
        let mut ops = vec![
            put(Tree::Transfers, &t.id, t)?,
            put(Tree::Accounts, &debit.id, debit)?,
            put(Tree::Accounts, &credit.id, credit)?,
            BatchOp::Put {
                tree: Tree::AccountTransfers,
                key: index_key(&debit.id, debit.transfers),
                value: t.id.as_bytes().to_vec(),
            },
            BatchOp::Put {
                tree: Tree::AccountTransfers,
                key: index_key(&credit.id, credit.transfers),
                value: t.id.as_bytes().to_vec(),
            },
        ];
        if let Some(p) = pending {
            ops.push(put(Tree::Transfers, &p.id, p)?);
            if p.timeout_secs > 0 {
                ops.push(BatchOp::Delete {
                    tree: Tree::PendingDeadlines,
                    key: deadline_key(p),
                });
            }
        }
        if t.kind == TransferKind::Pending && t.timeout_secs > 0 {
            ops.push(BatchOp::Put {
                tree: Tree::PendingDeadlines,
                key: deadline_key(t),
                value: Vec::new(),
            });
        }
        self.store.apply_batch(ops)?;
        self.flush()?;
        Ok(())
    }
}

/// When a pending transfer expires, ms since the epoch.
fn deadline(p: &Transfer) -> u64 {
    p.created_ms
        .saturating_add(p.timeout_secs.saturating_mul(1000))
}

/// Its entry in [`Tree::PendingDeadlines`].
fn deadline_key(p: &Transfer) -> Vec<u8> {
    let mut k = deadline(p).to_be_bytes().to_vec();
    k.extend_from_slice(p.id.as_bytes());
    k
}

fn put<T: Serialize>(tree: Tree, key: &str, v: &T) -> Result<BatchOp, LedgerError> {
    Ok(BatchOp::Put {
        tree,
        key: key.as_bytes().to_vec(),
        value: encode(tree, v)?,
    })
}

/// Whether a replayed request is the one that made `t`.
fn same_request(t: &Transfer, r: &TransferRequest) -> bool {
    if t.kind != r.kind || t.reference != r.reference {
        return false;
    }
    match r.kind {
        TransferKind::Single | TransferKind::Pending => {
            t.debit_account == r.debit_account
                && t.credit_account == r.credit_account
                && t.amount == r.amount
                && (r.kind == TransferKind::Single || t.timeout_secs == r.timeout_secs)
        }
        TransferKind::PostPending => {
            t.pending_id == r.pending_id && (r.amount == 0 || r.amount == t.amount)
        }
        TransferKind::VoidPending => t.pending_id == r.pending_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SledStore;

    fn req(id: &str, d: &str, c: &str, amount: u64, kind: TransferKind) -> TransferRequest {
        TransferRequest {
            id: id.into(),
            debit_account: d.into(),
            credit_account: c.into(),
            amount,
            kind,
            pending_id: None,
            timeout_secs: 0,
            reference: None,
        }
    }

    fn setup(s: &SledStore) -> Ledger<'_> {
        let l = Ledger::new(s);
        l.create_account("@topup", false, 0).unwrap();
        l.create_account("@revenue", false, 0).unwrap();
        l.create_account("acme", true, 0).unwrap();
        l
    }

    #[test]
    fn topup_charge_and_the_credit_limit() {
        let s = SledStore::temporary().unwrap();
        let l = setup(&s);
        l.apply(&req("t1", "@topup", "acme", 100, TransferKind::Single), 1)
            .unwrap();
        l.apply(&req("c1", "acme", "@revenue", 60, TransferKind::Single), 2)
            .unwrap();
        let e = l.apply(&req("c2", "acme", "@revenue", 41, TransferKind::Single), 3);
        assert!(matches!(e, Err(LedgerError::ExceedsCredits(_))), "{e:?}");
        let a = l.account("acme").unwrap().unwrap();
        assert_eq!((a.balance(), a.available()), (40, 40));
        assert_eq!(l.account("@topup").unwrap().unwrap().balance(), -100);
        assert_eq!(l.account_transfers("acme", 10).unwrap().len(), 2);
    }

    #[test]
    fn ids_are_idempotent_and_a_different_replay_is_refused() {
        let s = SledStore::temporary().unwrap();
        let l = setup(&s);
        let a = l
            .apply(&req("t1", "@topup", "acme", 100, TransferKind::Single), 1)
            .unwrap();
        assert!(a.created);
        let b = l
            .apply(&req("t1", "@topup", "acme", 100, TransferKind::Single), 2)
            .unwrap();
        assert!(!b.created);
        assert_eq!(a.transfer, b.transfer);
        assert_eq!(l.account("acme").unwrap().unwrap().credits_posted, 100);
        let e = l.apply(&req("t1", "@topup", "acme", 101, TransferKind::Single), 3);
        assert!(matches!(e, Err(LedgerError::ExistsWithDifferentFields(_))));
    }

    #[test]
    fn two_phase_post_partial_void_and_expiry() {
        let s = SledStore::temporary().unwrap();
        let l = setup(&s);
        l.apply(&req("t1", "@topup", "acme", 100, TransferKind::Single), 0)
            .unwrap();
        let mut p = req("p1", "acme", "@revenue", 80, TransferKind::Pending);
        p.timeout_secs = 60;
        l.apply(&p, 1000).unwrap();
        let a = l.account("acme").unwrap().unwrap();
        assert_eq!((a.debits_pending, a.available()), (80, 20));
        // Another reservation beyond what is left is refused.
        let e = l.apply(
            &req("p2", "acme", "@revenue", 21, TransferKind::Pending),
            1000,
        );
        assert!(matches!(e, Err(LedgerError::ExceedsCredits(_))));
        // Partial post: 30 posted, the other 50 released.
        let mut post = req("p1-post", "", "", 30, TransferKind::PostPending);
        post.pending_id = Some("p1".into());
        l.apply(&post, 2000).unwrap();
        let a = l.account("acme").unwrap().unwrap();
        assert_eq!(
            (a.debits_pending, a.debits_posted, a.balance()),
            (0, 30, 70)
        );
        // A second settle of the same pending is refused, a replay is not.
        assert!(!l.apply(&post, 2001).unwrap().created);
        let mut void = req("p1-void", "", "", 0, TransferKind::VoidPending);
        void.pending_id = Some("p1".into());
        assert!(matches!(
            l.apply(&void, 2002),
            Err(LedgerError::PendingNotPending {
                state: PendingState::Posted,
                ..
            })
        ));
        // Void releases; expiry releases.
        l.apply(
            &req("p3", "acme", "@revenue", 10, TransferKind::Pending),
            3000,
        )
        .unwrap();
        let mut v3 = req("p3-void", "", "", 0, TransferKind::VoidPending);
        v3.pending_id = Some("p3".into());
        l.apply(&v3, 3001).unwrap();
        let mut p4 = req("p4", "acme", "@revenue", 70, TransferKind::Pending);
        p4.timeout_secs = 1;
        l.apply(&p4, 4000).unwrap();
        assert_eq!(l.account("acme").unwrap().unwrap().available(), 0);
        assert_eq!(l.expire(4500).unwrap(), 0);
        assert_eq!(l.expire(5000).unwrap(), 1);
        let a = l.account("acme").unwrap().unwrap();
        assert_eq!((a.debits_pending, a.available()), (0, 70));
        let mut late = req("p4-post", "", "", 0, TransferKind::PostPending);
        late.pending_id = Some("p4".into());
        assert!(matches!(
            l.apply(&late, 5001),
            Err(LedgerError::PendingNotPending {
                state: PendingState::Expired,
                ..
            })
        ));
    }

    #[test]
    fn amounts_past_the_limit_are_refused_never_clamped() {
        let s = SledStore::temporary().unwrap();
        let l = setup(&s);
        // The top-up: u64::MAX is refused, nothing written.
        let e = l.apply(
            &req("t0", "@topup", "acme", u64::MAX, TransferKind::Single),
            1,
        );
        assert_eq!(e.unwrap_err().code(), "overflow");
        assert!(l.transfer("t0").unwrap().is_none());
        // Up to the limit is exact.
        l.apply(
            &req("t1", "@topup", "acme", MAX_AMOUNT - 1, TransferKind::Single),
            2,
        )
        .unwrap();
        let a = l.account("acme").unwrap().unwrap();
        assert_eq!(a.balance(), i128::from(MAX_AMOUNT - 1));
        l.apply(&req("t2", "@topup", "acme", 1, TransferKind::Single), 3)
            .unwrap();
        // One more unit, posted or pending, on either side, is refused.
        for (id, d, c, kind) in [
            ("t3", "@topup", "acme", TransferKind::Single),
            ("t4", "@topup", "acme", TransferKind::Pending),
            ("t5", "@topup", "@revenue", TransferKind::Single),
        ] {
            let e = l.apply(&req(id, d, c, 1, kind), 4).unwrap_err();
            assert_eq!(e.code(), "overflow", "{id}");
        }
        let a = l.account("acme").unwrap().unwrap();
        assert_eq!(a.balance(), i128::from(MAX_AMOUNT));
        assert_eq!(
            l.account("@topup").unwrap().unwrap().balance(),
            -i128::from(MAX_AMOUNT)
        );
        // Spending and topping up again works: the limit is on each side's total.
        l.apply(&req("c1", "acme", "@revenue", 10, TransferKind::Single), 5)
            .unwrap();
        assert_eq!(
            l.account("acme").unwrap().unwrap().available(),
            i128::from(MAX_AMOUNT - 10)
        );
    }

    #[test]
    fn gateway_ids_and_accounts_are_recognised() {
        assert!(is_gateway_transfer("call:0123456789abcdef"));
        assert!(is_gateway_transfer("call:0123456789abcdef:post"));
        assert!(is_gateway_transfer("fax:abc"));
        assert!(!is_gateway_transfer("topup-1") && !is_gateway_transfer("calls:1"));
        assert!(is_internal_account("@calls") && !is_internal_account("acme"));
    }

    #[test]
    fn bad_requests_are_refused() {
        let s = SledStore::temporary().unwrap();
        let l = setup(&s);
        for (r, code) in [
            (req("", "@topup", "acme", 1, TransferKind::Single), "bad_id"),
            (
                req("x y", "@topup", "acme", 1, TransferKind::Single),
                "bad_id",
            ),
            (
                req("t", "acme", "acme", 1, TransferKind::Single),
                "same_account",
            ),
            (
                req("t", "@topup", "acme", 0, TransferKind::Single),
                "bad_amount",
            ),
            (
                req("t", "@topup", "nobody", 1, TransferKind::Single),
                "no_account",
            ),
            (req("t", "", "", 1, TransferKind::PostPending), "no_pending"),
        ] {
            assert_eq!(l.apply(&r, 0).unwrap_err().code(), code, "{r:?}");
        }
        assert!(matches!(
            l.create_account("acme", false, 0),
            Err(LedgerError::AccountExists(_))
        ));
        assert!(!l.create_account("acme", true, 0).unwrap().1);
    }
}
