//! The one timer of a sans-IO core's actor: sleeps until the deadline the actor
//! publishes on a watch channel and sends it one tick message.

use std::time::Instant;

use ractor::{ActorRef, Message};
use tokio::sync::watch;

/// Run until the actor or the channel is gone.
pub async fn run<M: Message>(
    mut rx: watch::Receiver<Option<Instant>>,
    actor: ActorRef<M>,
    tick: fn() -> M,
) {
    loop {
        let deadline = *rx.borrow_and_update();
        match deadline {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {
                        if actor.send_message(tick()).is_err() { return; }
                        // Wait for the actor to publish its next deadline.
                        if rx.changed().await.is_err() { return; }
                    }
                    r = rx.changed() => if r.is_err() { return },
                }
            }
            None => {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}
