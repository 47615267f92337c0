//! The device supervisor's flushed writes (claim: nonce and credential; commands) run off
//! the async workers (issue 13): on a current-thread runtime, a store whose flush blocks
//! until the test opens it leaves the runtime running, and the answer waits for the flush.

use super::*;
use crate::store_io::gated::Gate;

const FLEET: &str = "test-fleet-secret-0123456789";

/// Stands in for the call supervisor: these tests place no calls.
struct NoCalls;

impl Actor for NoCalls {
    type Msg = crate::supervisor_msg::SupervisorMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Self::Msg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

async fn supervisor(store: Arc<dyn Store>) -> ActorRef<DeviceSupervisorMsg> {
    let toml = format!("[devices]\nfleet_secret = \"{FLEET}\"\n");
    let config = switchboard_config::load_from_str(&toml, &[]).expect("config");
    let (calls, _) = Actor::spawn(None, NoCalls, ()).await.expect("calls");
    let args = DeviceSupervisorArgs {
        drain: Arc::new(crate::drain::Drain::new(config.sip.drain)),
        config: Arc::new(config),
        store,
        calls,
    };
    let (actor, _) = Actor::spawn(None, DeviceSupervisor, args)
        .await
        .expect("device supervisor");
    actor
}

fn claim_request(id: &str) -> ClaimRequest {
    let ts = (now_unix_ms() / 1000) as i64;
    let nonce = format!("nonce-{id}-0123456789");
    let secret = claim::device_secret(FLEET.as_bytes(), id);
    ClaimRequest {
        device_id: id.into(),
        hmac: claim::claim_mac(&secret, id, &nonce, ts),
        nonce,
        ts,
    }
}

/// While the flush the request started is held, other work on the runtime's only thread
/// (a task and a timer) completes and the request is still unanswered; once the flush is
/// let through, the answer comes. A flush on the worker would hold the thread until the
/// gate's deadline, which the store records.
async fn held_flush_stalls_nothing<T: Send + 'static>(
    gated: &Gate,
    entered: &mut tokio::sync::mpsc::UnboundedReceiver<()>,
    request: tokio::task::JoinHandle<T>,
) -> T {
    entered.recv().await.expect("a flush");
    let other = tokio::spawn(async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        7
    });
    assert_eq!(other.await.expect("the other task"), 7);
    assert!(!request.is_finished(), "answered before its flush returned");
    gated.open();
    let answer = request.await.expect("the request task");
    assert!(!gated.timed_out(), "a flush held the runtime's thread");
    answer
}

#[tokio::test(flavor = "current_thread")]
async fn a_claims_flushes_run_off_the_runtime_thread_and_the_answer_waits_for_them() {
    let (gated, store, mut entered) = Gate::store();
    let sup = supervisor(Arc::clone(&store)).await;
    let req = claim_request("esp-gated");
    let claim = tokio::spawn({
        let sup = sup.clone();
        async move { ractor::call!(sup, DeviceSupervisorMsg::Claim, req) }
    });
    let answer = held_flush_stalls_nothing(&gated, &mut entered, claim).await;
    assert!(answer.expect("supervisor").is_ok(), "claim refused");
    assert!(get_device(store.as_ref(), "esp-gated").unwrap().is_some());
    // The same nonce again is a replay, answered without a new credential.
    let again = ractor::call!(sup, DeviceSupervisorMsg::Claim, claim_request("esp-gated"));
    assert!(again.expect("supervisor").is_err());
    sup.stop(None);
}

#[tokio::test(flavor = "current_thread")]
async fn a_commands_flush_runs_off_the_runtime_thread_and_the_answer_waits_for_it() {
    let (gated, store, mut entered) = Gate::store();
    let sup = supervisor(Arc::clone(&store)).await;
    gated.open();
    let claimed = ractor::call!(sup, DeviceSupervisorMsg::Claim, claim_request("esp-cmd"));
    assert!(claimed.expect("supervisor").is_ok());
    while entered.try_recv().is_ok() {}
    gated.close();
    let id = DeviceId::parse("esp-cmd").unwrap();
    let command = tokio::spawn({
        let sup = sup.clone();
        async move {
            ractor::call!(sup, |reply| DeviceSupervisorMsg::Command {
                device: id,
                payload: serde_json::json!({"op": "reboot"}),
                reply,
            })
        }
    });
    let rec = held_flush_stalls_nothing(&gated, &mut entered, command)
        .await
        .expect("supervisor")
        .expect("command stored");
    let pending = pending_commands(store.as_ref(), "esp-cmd").unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, rec.id);
    sup.stop(None);
}
