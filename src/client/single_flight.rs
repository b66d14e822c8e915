//! Single flight: concurrent requests for the same thing (a blob, a manifest) make one request;
//! the others wait for its result. Only successes are shared: if the request fails, the next
//! waiter makes its own attempt, so one failure does not fail everyone with a stale error.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::OnceCell;

type Cell = Arc<dyn Any + Send + Sync>;

/// The table of calls in flight, by key.
#[derive(Default)]
pub struct SingleFlight {
    calls: Mutex<HashMap<String, Cell>>,
}

impl std::fmt::Debug for SingleFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight")
            .field("in_flight", &self.calls.lock().len())
            .finish()
    }
}

impl SingleFlight {
    /// Runs `call` unless a call with `key` is already running, in which case waits for that
    /// one's value instead.
    pub async fn run<T, E, F, Fut>(&self, key: &str, call: F) -> Result<T, E>
    where
        T: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let cell = self.cell::<T>(key);
        let Some(cell) = cell else {
            return call().await;
        };
        let result = cell.get_or_try_init(call).await.cloned();
        let mut calls = self.calls.lock();
        let finished = calls.get(key).is_some_and(|current| {
            current
                .clone()
                .downcast::<OnceCell<T>>()
                .is_ok_and(|current| Arc::ptr_eq(&current, &cell))
        });
        if finished {
            calls.remove(key);
        }
        result
    }

    /// The shared cell for `key` (`None` if the key is in use with another value type).
    fn cell<T: Send + Sync + 'static>(&self, key: &str) -> Option<Arc<OnceCell<T>>> {
        let mut calls = self.calls.lock();
        let entry = calls
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(OnceCell::<T>::new()));
        entry.clone().downcast::<OnceCell<T>>().ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_call() {
        let flights = Arc::new(SingleFlight::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (flights, calls) = (Arc::clone(&flights), Arc::clone(&calls));
            tasks.push(tokio::spawn(async move {
                flights
                    .run("k", || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, ()>(42)
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), Ok(42));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            flights.calls.lock().len(),
            0,
            "finished calls are forgotten"
        );
    }

    #[tokio::test]
    async fn failures_are_not_shared() {
        let flights = SingleFlight::default();
        assert_eq!(
            flights.run("k", || async { Err::<u8, _>("no") }).await,
            Err("no")
        );
        assert_eq!(
            flights.run("k", || async { Ok::<u8, &str>(1) }).await,
            Ok(1)
        );
    }
}
