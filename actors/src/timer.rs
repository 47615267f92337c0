//! Actor timers. [`run`]: the one timer of a sans-IO core's actor, a task
//! that sleeps until the deadline the actor publishes on a watch channel and
//! sends it one tick message. [`Deadline`]: a single `send_after` re-armed at
//! the actor's next deadline, tagged with a generation so that a timer that
//! was replaced is ignored when it fires.

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

/// One re-armable timer of an actor (a generation-tagged `send_after`).
#[derive(Debug, Default)]
pub struct Deadline {
    gen: u64,
    armed: Option<Instant>,
}

impl Deadline {
    /// Arm for `next` (the earliest of the actor's deadlines), unless already
    /// armed for it; `tick` makes the message carrying the generation.
    pub fn arm<M: Message>(
        &mut self,
        myself: &ActorRef<M>,
        next: Option<Instant>,
        tick: fn(u64) -> M,
    ) {
        self.arm_from(myself, Instant::now(), next, tick);
    }

    /// [`Self::arm`] with the wait counted from `now` (an actor that reads time from its
    /// injected clock).
    pub fn arm_from<M: Message>(
        &mut self,
        myself: &ActorRef<M>,
        now: Instant,
        next: Option<Instant>,
        tick: fn(u64) -> M,
    ) {
        if next == self.armed {
            return;
        }
        self.armed = next;
        self.gen += 1;
        if let Some(at) = next {
            let gen = self.gen;
            let wait = at.saturating_duration_since(now);
            myself.send_after(wait, move || tick(gen));
        }
    }

    /// A timer message arrived: true when it is the current one.
    pub fn fired(&mut self, gen: u64) -> bool {
        if gen != self.gen {
            return false;
        }
        self.armed = None;
        true
    }
}
