//! Store writes off the async workers. A write that must survive a crash is flushed (an
//! fsync, milliseconds to a second on a busy disk) before it is acknowledged; run on a tokio
//! worker, that fsync would stall every call, device and timer scheduled on the same thread.
//! [`on_store`] runs such work on tokio's blocking pool and waits for it, so the caller still
//! answers only once the write returned ("flushed before acknowledged"), and an actor that
//! awaits it still handles one message at a time (a claim's nonce check and record stay
//! serialised). Writers that batch many records (CDRs, the call journal) keep their own
//! thread instead.

use std::sync::Arc;

use switchboard_storage::{Store, StoreError};

/// Run `f` (store work that may flush) on the blocking pool and wait for its result. A task
/// that panicked or was cancelled at shutdown gives [`StoreError::Interrupted`].
pub async fn blocking<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(StoreError::Interrupted.into()))
}

/// [`blocking`] with `store` handed to `f`.
pub async fn on_store<T, E>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    let store = Arc::clone(store);
    blocking(move || f(store.as_ref())).await
}

/// A store whose `flush` waits until the test opens its gate (or a deadline passes): with
/// the flush on a worker thread, a current-thread runtime stops until then.
#[cfg(test)]
pub(crate) mod gated {
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Duration;

    use switchboard_storage::hooked::Hooked;
    use switchboard_storage::Store;
    use tokio::sync::mpsc;

    /// How long a flush waits for the gate before going on (and recording that it waited).
    const GATE_DEADLINE: Duration = Duration::from_secs(3);

    /// The gate every flush of the store passes.
    #[derive(Default)]
    pub(crate) struct Gate {
        open: Mutex<bool>,
        opened: Condvar,
        timed_out: Mutex<bool>,
    }

    impl Gate {
        /// A temporary store whose flushes wait at a new gate, and the receiver told each
        /// time a flush starts waiting.
        pub(crate) fn store() -> (Arc<Gate>, Arc<dyn Store>, mpsc::UnboundedReceiver<()>) {
            let gate = Arc::new(Gate::default());
            let (entered, rx) = mpsc::unbounded_channel();
            let g = Arc::clone(&gate);
            let store = Hooked::temporary(
                || {},
                move || {
                    let _ = entered.send(());
                    g.wait();
                },
            )
            .expect("temporary store");
            (gate, Arc::new(store), rx)
        }

        fn wait(&self) {
            let open = self.open.lock().unwrap();
            let (open, wait) = self
                .opened
                .wait_timeout_while(open, GATE_DEADLINE, |open| !*open)
                .unwrap();
            if wait.timed_out() && !*open {
                *self.timed_out.lock().unwrap() = true;
            }
        }

        /// Let every flush, waiting or to come, through.
        pub(crate) fn open(&self) {
            *self.open.lock().unwrap() = true;
            self.opened.notify_all();
        }

        /// Hold every flush from now on (until [`Gate::open`]).
        pub(crate) fn close(&self) {
            *self.open.lock().unwrap() = false;
        }

        /// Whether a flush gave up waiting: the gate could not be opened in time because
        /// the flush held the thread the test runs on.
        pub(crate) fn timed_out(&self) -> bool {
            *self.timed_out.lock().unwrap()
        }
    }
}
