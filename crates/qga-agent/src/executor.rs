//! Runs command handlers on a worker thread under a time limit, so a
//! handler that hangs (a write to a frozen filesystem, a stuck device)
//! costs the client one error reply instead of the agent.
//!
//! Rust cannot cancel a thread safely, so a handler past its limit is
//! abandoned: its thread keeps running detached, the next command gets a
//! fresh worker, and when the abandoned handler finally returns, its
//! result goes to the task's `late` cleanup instead of to a client (for
//! example a freeze that completes late is thawed again, because the
//! client was told it failed). At most [`MAX_ABANDONED`] handlers may be
//! abandoned at once; past that, new tasks are refused until some finish,
//! except tasks marked `always_run` (thaw), which get a thread regardless.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// How many timed-out handlers may still be running at once.
pub const MAX_ABANDONED: usize = 8;

/// Requests nest up to 1024 levels, and their values are cloned and
/// dropped recursively on this thread: a debug build needs about 4 MiB
/// for that (reserved address space; only what is used is memory).
const HANDLER_STACK: usize = 16 * 1024 * 1024;

/// The reply a handler produced (`None`: nothing to send).
pub type Output = Option<Value>;

pub struct Task {
    pub run: Box<dyn FnOnce() -> Output + Send>,
    /// Gets the output of a handler that finished after its time limit.
    pub late: Box<dyn FnOnce(Output) + Send>,
    /// Run even when too many handlers are abandoned.
    pub always_run: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RunError {
    TimedOut,
    TooManyAbandoned,
    /// The handler panicked; the worker survived.
    Panicked,
    NoThread(String),
}

struct Worker {
    tasks: Sender<Task>,
    outputs: Receiver<Result<Output, RunError>>,
    /// Set by the waiter when it gives up. The worker sends its output and
    /// the waiter sets this under the same lock, so an output that arrives
    /// at the timeout goes either to the client or to `late`, never nowhere.
    given_up: Arc<Mutex<bool>>,
}

#[derive(Default)]
pub struct Executor {
    worker: Mutex<Option<Worker>>,
    abandoned: Arc<AtomicUsize>,
}

impl Executor {
    /// How many timed-out handlers are still running.
    pub fn abandoned(&self) -> usize {
        self.abandoned.load(Ordering::SeqCst)
    }

    fn spawn(&self) -> Result<Worker, RunError> {
        let (tasks, task_rx) = mpsc::channel::<Task>();
        let (output_tx, outputs) = mpsc::channel();
        let given_up = Arc::new(Mutex::new(false));
        let worker_given_up = given_up.clone();
        let abandoned = self.abandoned.clone();
        std::thread::Builder::new()
            .name("qga-handler".into())
            .stack_size(HANDLER_STACK)
            .spawn(move || {
                while let Ok(task) = task_rx.recv() {
                    let output = catch_unwind(AssertUnwindSafe(task.run)).map_err(|_| RunError::Panicked);
                    let given_up = worker_given_up.lock().unwrap_or_else(|e| e.into_inner());
                    if !*given_up {
                        let _ = output_tx.send(output);
                        continue;
                    }
                    drop(given_up);
                    if let Ok(output) = output {
                        let _ = catch_unwind(AssertUnwindSafe(|| (task.late)(output)));
                    }
                    abandoned.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
            })
            .map_err(|e| RunError::NoThread(e.to_string()))?;
        Ok(Worker {
            tasks,
            outputs,
            given_up,
        })
    }

    /// Runs `task` and waits at most `limit` for its output.
    pub fn run(&self, task: Task, limit: Duration) -> Result<Output, RunError> {
        if !task.always_run && self.abandoned() >= MAX_ABANDONED {
            return Err(RunError::TooManyAbandoned);
        }
        let mut slot = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        let worker = match slot.take() {
            Some(worker) => worker,
            None => self.spawn()?,
        };
        if let Err(mpsc::SendError(task)) = worker.tasks.send(task) {
            // The worker thread is gone (it cannot be, short of a bug in
            // the runtime); try once with a fresh one.
            let fresh = self.spawn()?;
            let _ = fresh.tasks.send(task);
            *slot = Some(fresh);
            return self.wait(slot, limit);
        }
        *slot = Some(worker);
        self.wait(slot, limit)
    }

    fn wait(&self, mut slot: std::sync::MutexGuard<'_, Option<Worker>>, limit: Duration) -> Result<Output, RunError> {
        let Some(worker) = slot.as_ref() else {
            return Err(RunError::NoThread("no worker".into()));
        };
        match worker.outputs.recv_timeout(limit) {
            Ok(output) => output,
            Err(RecvTimeoutError::Timeout) => {
                let mut given_up = worker.given_up.lock().unwrap_or_else(|e| e.into_inner());
                // The handler may have finished since the timeout fired.
                if let Ok(output) = worker.outputs.try_recv() {
                    return output;
                }
                *given_up = true;
                self.abandoned.fetch_add(1, Ordering::SeqCst);
                drop(given_up);
                *slot = None;
                Err(RunError::TimedOut)
            }
            Err(RecvTimeoutError::Disconnected) => {
                *slot = None;
                Err(RunError::NoThread("the handler thread ended".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    /// Waits (bounded) until every abandoned handler has finished.
    fn wait_until_none_abandoned(executor: &Executor) {
        let start = std::time::Instant::now();
        while executor.abandoned() != 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "abandoned count never dropped"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn task(run: impl FnOnce() -> Output + Send + 'static) -> Task {
        Task {
            run: Box::new(run),
            late: Box::new(|_| {}),
            always_run: false,
        }
    }

    #[test]
    fn a_hung_handler_times_out_and_the_next_task_runs() {
        let executor = Executor::default();
        let (release, released) = channel::<()>();
        let (late_tx, late_rx) = channel();
        let hung = Task {
            run: Box::new(move || {
                let _ = released.recv();
                Some(Value::from(1))
            }),
            late: Box::new(move |output| late_tx.send(output).unwrap()),
            always_run: false,
        };
        assert_eq!(executor.run(hung, Duration::from_millis(50)), Err(RunError::TimedOut));
        assert_eq!(executor.abandoned(), 1);
        assert_eq!(
            executor.run(task(|| Some(Value::from(2))), Duration::from_secs(10)),
            Ok(Some(Value::from(2)))
        );
        release.send(()).unwrap();
        assert_eq!(late_rx.recv_timeout(Duration::from_secs(10)), Ok(Some(Value::from(1))));
        wait_until_none_abandoned(&executor);
    }

    #[test]
    fn an_output_at_the_timeout_reaches_the_client_or_the_late_cleanup() {
        let executor = Executor::default();
        let (late_tx, late_rx) = channel();
        let rounds = 200;
        let mut answered = 0;
        for round in 0..rounds {
            let late_tx = late_tx.clone();
            let racing = Task {
                run: Box::new(move || {
                    std::thread::sleep(Duration::from_micros(500));
                    Some(Value::from(round))
                }),
                late: Box::new(move |output| late_tx.send(output).unwrap()),
                always_run: true,
            };
            match executor.run(racing, Duration::from_micros(500)) {
                Ok(output) => {
                    assert_eq!(output, Some(Value::from(round)));
                    answered += 1;
                }
                Err(e) => assert_eq!(e, RunError::TimedOut),
            }
        }
        drop(late_tx);
        let late = late_rx.iter().count();
        assert_eq!(answered + late, rounds, "{answered} answered, {late} cleaned up late");
        wait_until_none_abandoned(&executor);
    }

    #[test]
    fn a_panicking_handler_is_an_error_and_the_worker_survives() {
        let executor = Executor::default();
        assert_eq!(
            executor.run(task(|| panic!("boom")), Duration::from_secs(10)),
            Err(RunError::Panicked)
        );
        assert_eq!(executor.run(task(|| None), Duration::from_secs(10)), Ok(None));
    }

    #[test]
    fn too_many_abandoned_handlers_refuse_new_tasks_but_not_always_run_ones() {
        let executor = Executor::default();
        let (release, released) = channel::<()>();
        let released = Arc::new(Mutex::new(released));
        for _ in 0..MAX_ABANDONED {
            let released = released.clone();
            let hung = task(move || {
                let _ = released.lock().unwrap().recv();
                None
            });
            assert_eq!(executor.run(hung, Duration::from_millis(10)), Err(RunError::TimedOut));
        }
        assert_eq!(
            executor.run(task(|| None), Duration::from_secs(10)),
            Err(RunError::TooManyAbandoned)
        );
        let mut urgent = task(|| Some(Value::from(7)));
        urgent.always_run = true;
        assert_eq!(executor.run(urgent, Duration::from_secs(10)), Ok(Some(Value::from(7))));
        drop(release);
    }
}
