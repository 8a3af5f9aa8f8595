//! The thread that owns the PostgreSQL connection.
//!
//! The sync `postgres::Client` drives its own Tokio runtime and panics when called from
//! inside another one, and much of Cordon calls the store from async code. So the client
//! lives on a dedicated OS thread and only ever runs there: callers send it closures over
//! a channel and wait for the answer on a one-shot channel. The caller blocks as it would
//! on SQLite's mutex; the connection never touches the caller's runtime.

use std::sync::mpsc;
use std::thread::JoinHandle;

use postgres::Client;

use crate::error::StoreError;

type Job = Box<dyn FnOnce(&mut Client) + Send>;

/// The connection thread. Dropping it closes the channel, which ends the thread (and
/// with it the connection) once the job in progress is done.
pub(crate) struct Actor {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Actor {
    /// Connect on a new thread; returns once the connection is up (or failed).
    pub(crate) fn spawn(config: postgres::Config, target: &str) -> Result<Actor, StoreError> {
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("cordon-store-pg".into())
            .spawn(move || {
                let mut client = match config.connect(postgres::NoTls) {
                    Ok(client) => {
                        let _ = ready_tx.send(Ok(()));
                        client
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = queue.recv() {
                    job(&mut client);
                }
            })
            .map_err(|_| StoreError::Disconnected)?;
        let actor = Actor {
            jobs: Some(jobs),
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(actor),
            Ok(Err(source)) => Err(StoreError::Connect {
                target: target.to_string(),
                source,
            }),
            Err(_) => Err(StoreError::Disconnected),
        }
    }

    /// Run `f` on the connection thread and wait for its result.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let jobs = self.jobs.as_ref().ok_or(StoreError::Disconnected)?;
        jobs.send(Box::new(move |client: &mut Client| {
            let _ = tx.send(f(client));
        }))
        .map_err(|_| StoreError::Disconnected)?;
        rx.recv().map_err(|_| StoreError::Disconnected)
    }
}

impl Drop for Actor {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
