//! `statelab queue` and `statelab worker`: one suite, run against both backends (real
//! PostgreSQL and real redis-server), through the real binary.

mod harness;
mod scenarios;

macro_rules! against_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::scenarios::$name(super::harness::Kind::Postgres).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::scenarios::$name(super::harness::Kind::Redis).await;
                }
            )*
        }
    };
}

against_both_backends!(
    api_validates_input_and_honours_idempotency_keys,
    failed_tasks_retry_with_backoff_then_go_dead_and_can_be_requeued,
    a_stale_acknowledgement_is_fenced,
    sigterm_releases_unfinished_tasks_at_once,
    worker_without_listen_finishes_running_tasks_on_sigterm,
    ten_thousand_tasks_survive_worker_kills_and_a_backend_restart,
);
