//! The ledger actor: the one writer of the credits ledger. Every operation is written before
//! the next starts, so checks such as "debits must not exceed credits" see every earlier
//! transfer; reads go through it too. Transfers and reservations are acknowledged only once
//! flushed, with group commit: the first write after a flush queues a `Flush` behind the
//! messages already waiting, every write until then is answered after that one flush, so
//! under load one fsync covers many transfers. Pending transfers past their timeout are
//! swept once a second.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use switchboard_storage::ledger::{
    Account, Ledger, LedgerError, Outcome, Transfer, TransferKind, TransferRequest,
};
use switchboard_storage::{now_unix_ms, Store};

use crate::store_io::on_store;

/// The system account top-ups are debited from (no credit limit).
pub const TOPUP_ACCOUNT: &str = "@topup";

/// Messages of the ledger.
#[derive(Debug)]
pub enum LedgerMsg {
    /// Create an account (idempotent); the bool says whether it is new.
    CreateAccount {
        /// Id.
        id: String,
        /// `debits_must_not_exceed_credits`.
        limited: bool,
        /// The answer.
        reply: RpcReplyPort<Result<(Account, bool), LedgerError>>,
    },
    /// Apply a transfer.
    Apply(TransferRequest, RpcReplyPort<Result<Outcome, LedgerError>>),
    /// Read an account.
    Account(String, RpcReplyPort<Result<Option<Account>, LedgerError>>),
    /// The first N accounts in id order.
    Accounts(usize, RpcReplyPort<Result<Vec<Account>, LedgerError>>),
    /// Read a transfer.
    Transfer(String, RpcReplyPort<Result<Option<Transfer>, LedgerError>>),
    /// An account's transfers, newest first.
    Transfers(
        String,
        usize,
        RpcReplyPort<Result<Vec<Transfer>, LedgerError>>,
    ),
    /// Reserve, as one pending transfer, what the longest call the debit account can pay for
    /// would cost under `tariff` (see [`crate::tariff::Tariff::max_secs`]). Refused with
    /// `ExceedsCredits` when not even the first block is affordable, `NoAccount` without
    /// an account. The balance is read and the reservation written with no other operation
    /// between, so two calls never reserve the same credit.
    Reserve {
        /// Transfer id (idempotent: a replay returns the first reservation).
        id: String,
        /// Who pays.
        account: String,
        /// Who is paid (e.g. [`crate::tariff::CALLS_ACCOUNT`]).
        credit_account: String,
        /// The price.
        tariff: crate::tariff::Tariff,
        /// Seconds the reservation outlives the call's longest duration before it lapses.
        grace_secs: u64,
        /// Free text (the call id).
        reference: String,
        /// The reservation.
        reply: RpcReplyPort<Result<Reservation, LedgerError>>,
    },
    /// Sweep expired pending transfers.
    Sweep,
    /// Flush the writes made since the last flush, then answer them (sent by the actor to
    /// itself).
    Flush,
}

/// A call's reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// Credit units reserved.
    pub amount: u64,
    /// Seconds of call they pay for.
    pub secs: u64,
}

/// The actor.
#[derive(Debug, Default)]
pub struct LedgerActor;

/// Its state: the store, and the answers waiting for the next flush.
pub struct LedgerState {
    store: Arc<dyn Store>,
    unflushed: Vec<Unflushed>,
}

/// An answer to a write, held until the write is on disk.
enum Unflushed {
    Apply(
        RpcReplyPort<Result<Outcome, LedgerError>>,
        Result<Outcome, LedgerError>,
    ),
    Reserve(
        RpcReplyPort<Result<Reservation, LedgerError>>,
        Result<Reservation, LedgerError>,
    ),
}

impl Unflushed {
    /// Answer: the result if the flush succeeded, else `NotDurable`.
    fn answer(self, flushed: bool) {
        match self {
            Unflushed::Apply(reply, r) => {
                let _ = reply.send(r.and_then(|o| durable(o, flushed)));
            }
            Unflushed::Reserve(reply, r) => {
                let _ = reply.send(r.and_then(|o| durable(o, flushed)));
            }
        }
    }
}

/// `value` if its write reached the disk.
fn durable<T>(value: T, flushed: bool) -> Result<T, LedgerError> {
    if flushed {
        Ok(value)
    } else {
        Err(LedgerError::NotDurable)
    }
}

impl LedgerState {
    /// Hold `answer` until the next flush, asking for one if none is queued.
    fn defer(&mut self, myself: &ActorRef<LedgerMsg>, answer: Unflushed) {
        if self.unflushed.is_empty() {
            let _ = myself.send_message(LedgerMsg::Flush);
        }
        self.unflushed.push(answer);
    }
}

/// Run `f` on the ledger here, without flushing (a writer defers its answer to the next
/// [`LedgerMsg::Flush`]). With no fsync, a transfer is a few reads and one batch in sled's
/// memory, cheaper than a trip to the blocking pool; so is a point read.
fn inline<T>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&Ledger<'_>) -> Result<T, LedgerError>,
) -> Result<T, LedgerError> {
    f(&Ledger::deferred(store.as_ref()))
}

/// Run `f` on the ledger off the async workers (writes flush to disk).
async fn on_ledger<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&Ledger<'_>) -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, LedgerError> {
    on_store(store, move |s| f(&Ledger::new(s))).await
}

impl Actor for LedgerActor {
    type Msg = LedgerMsg;
    type State = LedgerState;
    type Arguments = Arc<dyn Store>;

    async fn pre_start(
        &self,
        myself: ActorRef<LedgerMsg>,
        store: Arc<dyn Store>,
    ) -> Result<LedgerState, ActorProcessingErr> {
        on_ledger(&store, |l| {
            for id in [
                TOPUP_ACCOUNT,
                crate::tariff::CALLS_ACCOUNT,
                crate::tariff::FAX_ACCOUNT,
            ] {
                l.create_account(id, false, now_unix_ms())?;
            }
            Ok(())
        })
        .await?;
        myself.send_interval(Duration::from_secs(1), || LedgerMsg::Sweep);
        Ok(LedgerState {
            store,
            unflushed: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<LedgerMsg>,
        msg: LedgerMsg,
        state: &mut LedgerState,
    ) -> Result<(), ActorProcessingErr> {
        let s = &Arc::clone(&state.store);
        match msg {
            LedgerMsg::CreateAccount { id, limited, reply } => {
                let r = on_ledger(s, move |l| l.create_account(&id, limited, now_unix_ms())).await;
                let _ = reply.send(r);
            }
            LedgerMsg::Apply(req, reply) => {
                let r = inline(s, move |l| l.apply(&req, now_unix_ms()));
                match &r {
                    Ok(o) if o.created => {
                        metrics::counter!("switchboard_ledger_transfers_total", "result" => "created")
                            .increment(1)
                    }
                    Ok(_) => metrics::counter!("switchboard_ledger_transfers_total", "result" => "replayed")
                        .increment(1),
                    Err(e) => metrics::counter!("switchboard_ledger_transfers_total", "result" => e.code())
                        .increment(1),
                }
                state.defer(&myself, Unflushed::Apply(reply, r));
            }
            LedgerMsg::Account(id, reply) => {
                let _ = reply.send(inline(s, |l| l.account(&id)));
            }
            LedgerMsg::Accounts(limit, reply) => {
                let _ = reply.send(on_ledger(s, move |l| l.accounts(limit)).await);
            }
            LedgerMsg::Transfer(id, reply) => {
                let _ = reply.send(inline(s, |l| l.transfer(&id)));
            }
            LedgerMsg::Transfers(id, limit, reply) => {
                let _ = reply.send(on_ledger(s, move |l| l.account_transfers(&id, limit)).await);
            }
            LedgerMsg::Reserve {
                id,
                account,
                credit_account,
                tariff,
                grace_secs,
                reference,
                reply,
            } => {
                let r = inline(s, move |l| {
                    let now = now_unix_ms();
                    if let Some(t) = l.transfer(&id)? {
                        // A replay: the reservation made the first time.
                        return Ok(Reservation {
                            amount: t.amount,
                            secs: t.timeout_secs.saturating_sub(grace_secs),
                        });
                    }
                    let acct = l
                        .account(&account)?
                        .ok_or_else(|| LedgerError::NoAccount(account.clone()))?;
                    let secs = tariff.max_secs(acct.available());
                    if secs == 0 {
                        return Err(LedgerError::ExceedsCredits(account));
                    }
                    let amount = tariff.cost_of_secs(secs);
                    l.apply(
                        &TransferRequest {
                            id,
                            debit_account: account,
                            credit_account,
                            amount,
                            kind: TransferKind::Pending,
                            pending_id: None,
                            timeout_secs: secs + grace_secs,
                            reference: Some(reference),
                        },
                        now,
                    )?;
                    Ok(Reservation { amount, secs })
                });
                let result = match &r {
                    Ok(_) => "reserved",
                    Err(e) => e.code(),
                };
                metrics::counter!("switchboard_ledger_reservations_total", "result" => result)
                    .increment(1);
                state.defer(&myself, Unflushed::Reserve(reply, r));
            }
            LedgerMsg::Flush => {
                let waiting = std::mem::take(&mut state.unflushed);
                let flushed = on_store(s, |store| store.flush()).await;
                if let Err(err) = &flushed {
                    tracing::error!(%err, writes = waiting.len(), "ledger flush failed; the writes are not acknowledged");
                }
                metrics::counter!("switchboard_ledger_flushes_total").increment(1);
                metrics::histogram!("switchboard_ledger_flush_batch").record(waiting.len() as f64);
                for answer in waiting {
                    answer.answer(flushed.is_ok());
                }
            }
            LedgerMsg::Sweep => {
                if let Ok(n) = on_ledger(s, |l| l.expire(now_unix_ms())).await {
                    if n > 0 {
                        metrics::counter!("switchboard_ledger_expired_total").increment(n as u64);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tariff::{Tariff, CALLS_ACCOUNT};
    use ractor::rpc::CallResult;

    async fn reserve(l: &ActorRef<LedgerMsg>, id: &str) -> Result<Reservation, LedgerError> {
        let tariff = Tariff {
            price_per_minute: 10,
            initial_secs: 1,
            increment_secs: 1,
            max_call_secs: 3600,
        };
        let r = l
            .call(
                |reply| LedgerMsg::Reserve {
                    id: id.to_string(),
                    account: "acme".into(),
                    credit_account: CALLS_ACCOUNT.into(),
                    tariff,
                    grace_secs: 300,
                    reference: id.to_string(),
                    reply,
                },
                None,
            )
            .await
            .unwrap();
        match r {
            CallResult::Success(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn reservations_never_share_credit_and_replays_return_the_first() {
        let store: Arc<dyn Store> = Arc::new(switchboard_storage::SledStore::temporary().unwrap());
        let (l, _) = Actor::spawn(None, LedgerActor, Arc::clone(&store))
            .await
            .unwrap();
        assert!(matches!(
            reserve(&l, "call:x").await,
            Err(LedgerError::NoAccount(_))
        ));
        let (acct, _) = l
            .call(
                |reply| LedgerMsg::CreateAccount {
                    id: "acme".into(),
                    limited: true,
                    reply,
                },
                None,
            )
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(acct.available(), 0);
        let topup = TransferRequest {
            id: "t1".into(),
            debit_account: TOPUP_ACCOUNT.into(),
            credit_account: "acme".into(),
            amount: 15,
            kind: TransferKind::Single,
            pending_id: None,
            timeout_secs: 0,
            reference: None,
        };
        l.call(|reply| LedgerMsg::Apply(topup, reply), None)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        // 15 units at 10/min: 90 s for the first call (all 15), nothing for the second.
        let (a, b) = tokio::join!(reserve(&l, "call:a"), reserve(&l, "call:b"));
        let (won, lost) = if a.is_ok() { (a, b) } else { (b, a) };
        assert_eq!(
            won.unwrap(),
            Reservation {
                amount: 15,
                secs: 90
            }
        );
        assert!(matches!(lost, Err(LedgerError::ExceedsCredits(_))));
        // A replay returns the first reservation and reserves nothing more.
        let first = if exists("call:a", &l).await {
            "call:a"
        } else {
            "call:b"
        };
        assert_eq!(reserve(&l, first).await.unwrap().amount, 15);
        let acct = Ledger::new(store.as_ref())
            .account("acme")
            .unwrap()
            .unwrap();
        assert_eq!((acct.debits_pending, acct.available()), (15, 0));
        l.stop(None);
    }

    /// Whether the transfer `id` exists.
    async fn exists(id: &str, l: &ActorRef<LedgerMsg>) -> bool {
        let id = id.to_string();
        matches!(
            l.call(|reply| LedgerMsg::Transfer(id, reply), None).await,
            Ok(CallResult::Success(Ok(Some(_))))
        )
    }
}
