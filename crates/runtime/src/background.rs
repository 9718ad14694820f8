//! A node's background loops: tasks that share one stop signal and are stopped and awaited
//! together.

use std::{
    future::Future,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tokio::task::JoinHandle;

use crate::Shutdown;

/// The background tasks of one node.
#[derive(Debug, Default)]
pub struct Background {
    stop: Shutdown,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Background {
    /// No tasks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The signal the tasks watch; it fires when [`Background::stop`] is called.
    pub fn stop_signal(&self) -> Shutdown {
        self.stop.clone()
    }

    /// Spawns `task`, which should end soon after [`Background::stop_signal`] fires.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tokio::spawn(task));
    }

    /// Runs `tick` every `period` until stopped, the first time one period from now.
    pub fn every<F, Fut>(&self, period: Duration, mut tick: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let stop = self.stop.clone();
        self.spawn(async move {
            loop {
                tokio::select! {
                    () = stop.wait() => break,
                    () = tokio::time::sleep(period) => {}
                }
                tick().await;
            }
        });
    }

    /// Fires the stop signal and waits for every task to end.
    pub async fn stop(&self) {
        self.stop.trigger();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    };

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn periodic_work_runs_until_stopped_and_stop_waits_for_it() {
        let background = Background::new();
        let ticks = Arc::new(AtomicU32::new(0));
        let counted = ticks.clone();
        background.every(Duration::from_millis(100), move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        let watcher = background.stop_signal();
        let ended = Arc::new(AtomicU32::new(0));
        let marked = ended.clone();
        background.spawn(async move {
            watcher.wait().await;
            marked.fetch_add(1, Ordering::SeqCst);
        });
        tokio::time::sleep(Duration::from_millis(350)).await;
        background.stop().await;
        let after_stop = ticks.load(Ordering::SeqCst);
        assert_eq!(after_stop, 3);
        assert_eq!(ended.load(Ordering::SeqCst), 1, "stop waited for the task");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            after_stop,
            "no tick after stop"
        );
    }
}
