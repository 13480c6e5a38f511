//! Waiting for something to become true (a port in a log, a socket, a process exit, a ready
//! probe) with a deadline: quick first checks, then backing off to a modest interval.

use std::future::Future;
use std::time::{Duration, Instant};

use backon::{BlockingRetryable, ExponentialBuilder, Retryable};

/// 5 ms, 10 ms, 20 ms, ... up to `max_delay` between checks, for as long as the deadline allows.
fn backoff(max_delay: Duration) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(5))
        .with_max_delay(max_delay)
        .without_max_times()
}

const MAX_DELAY: Duration = Duration::from_millis(200);

struct NotYet;

/// Calls `probe` until it returns `Some` or `within` has passed (then `None`).
pub async fn until<T, F, Fut>(within: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    (|| {
        let attempt = probe();
        async move { attempt.await.ok_or(NotYet) }
    })
    .retry(backoff(MAX_DELAY))
    .when(|_| Instant::now() < deadline)
    .await
    .ok()
}

/// [`until`] for code without an async runtime (it sleeps the thread between checks).
pub fn until_blocking<T>(within: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    (|| probe().ok_or(NotYet))
        .retry(backoff(MAX_DELAY))
        .when(|_| Instant::now() < deadline)
        .call()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_at_the_deadline_and_returns_the_first_value() {
        let started = Instant::now();
        assert_eq!(
            until_blocking(Duration::from_millis(100), || None::<()>),
            None
        );
        assert!(started.elapsed() >= Duration::from_millis(100));
        let mut calls = 0;
        let value = until_blocking(Duration::from_secs(5), || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(value, Some(3));
    }

    #[tokio::test]
    async fn async_polls_until_some() {
        let mut calls = 0;
        let value = until(Duration::from_secs(5), || {
            calls += 1;
            let now = calls;
            async move { (now == 4).then_some(now) }
        })
        .await;
        assert_eq!(value, Some(4));
    }
}
