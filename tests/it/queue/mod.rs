//! `statelab queue` and `statelab worker`: one suite, run against both backends (real
//! PostgreSQL and real redis-server), through the real binary.

mod harness;
mod hostile;
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

/// Scenarios in `hostile`, each written once and run against both backends.
macro_rules! hostile_against_both_backends {
    ($($name:ident),* $(,)?) => {
        mod hostile_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::hostile::$name(super::harness::Kind::Postgres).await;
                }
            )*
        }
        mod hostile_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::hostile::$name(super::harness::Kind::Redis).await;
                }
            )*
        }
    };
}

hostile_against_both_backends!(
    payloads_are_kept_exactly_or_refused_the_same_way,
    a_write_answered_503_is_safe_to_retry_with_its_idempotency_key,
    the_openapi_document_matches_what_the_api_answers,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_gets_503_within_the_deadline_and_readiness_answers_at_once() {
    hostile::a_frozen_redis_gets_503_within_the_deadline_and_readiness_answers_at_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_answers_507_and_readiness_says_why() {
    hostile::a_full_redis_answers_507_and_readiness_says_why().await;
}
