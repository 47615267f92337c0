//! The ledger actor: the one writer of the credits ledger. Every operation runs to the end
//! (written and flushed) before the next starts, so checks such as "debits must not exceed
//! credits" see every earlier transfer; reads go through it too, so they see every
//! acknowledged write. Pending transfers past their timeout are swept once a second.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use switchboard_storage::ledger::{
    Account, Ledger, LedgerError, Outcome, Transfer, TransferRequest,
};
use switchboard_storage::{now_unix_ms, Store};

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
    /// Read a transfer.
    Transfer(String, RpcReplyPort<Result<Option<Transfer>, LedgerError>>),
    /// An account's transfers, newest first.
    Transfers(
        String,
        usize,
        RpcReplyPort<Result<Vec<Transfer>, LedgerError>>,
    ),
    /// Sweep expired pending transfers.
    Sweep,
}

/// The actor.
#[derive(Debug, Default)]
pub struct LedgerActor;

/// Its state: the store.
pub struct LedgerState {
    store: Arc<dyn Store>,
}

/// Run `f` on the ledger off the async workers (writes flush to disk).
async fn on_ledger<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&Ledger<'_>) -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, LedgerError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(&Ledger::new(store.as_ref())))
        .await
        .unwrap_or_else(|_| {
            Err(LedgerError::Store(
                switchboard_storage::StoreError::Locked {
                    path: "ledger task".into(),
                },
            ))
        })
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
            l.create_account(TOPUP_ACCOUNT, false, now_unix_ms())
        })
        .await?;
        myself.send_interval(Duration::from_secs(1), || LedgerMsg::Sweep);
        Ok(LedgerState { store })
    }

    async fn handle(
        &self,
        _myself: ActorRef<LedgerMsg>,
        msg: LedgerMsg,
        state: &mut LedgerState,
    ) -> Result<(), ActorProcessingErr> {
        let s = &state.store;
        match msg {
            LedgerMsg::CreateAccount { id, limited, reply } => {
                let r = on_ledger(s, move |l| l.create_account(&id, limited, now_unix_ms())).await;
                let _ = reply.send(r);
            }
            LedgerMsg::Apply(req, reply) => {
                let r = on_ledger(s, move |l| l.apply(&req, now_unix_ms())).await;
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
                let _ = reply.send(r);
            }
            LedgerMsg::Account(id, reply) => {
                let _ = reply.send(on_ledger(s, move |l| l.account(&id)).await);
            }
            LedgerMsg::Transfer(id, reply) => {
                let _ = reply.send(on_ledger(s, move |l| l.transfer(&id)).await);
            }
            LedgerMsg::Transfers(id, limit, reply) => {
                let _ = reply.send(on_ledger(s, move |l| l.account_transfers(&id, limit)).await);
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
