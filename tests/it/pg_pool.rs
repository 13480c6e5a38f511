//! The PostgreSQL pool the services share (`server::pg_pool`): a connection goes back without a
//! round trip only when its query ended; one abandoned midway is never handed out again.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use statelab::server::pg_pool::Pool;

use crate::support::postgres::TestDatabase;

fn pool(db: &TestDatabase, max: u32) -> Pool {
    let options = PgConnectOptions::from_str(&db.url).expect("test URL parses");
    Pool::lazy(options, max, Duration::from_secs(5))
}

async fn backend_pid(pool: &Pool) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await
        .expect("query runs")
}

#[tokio::test]
async fn a_finished_query_leaves_its_connection_for_the_next_one() {
    let db = TestDatabase::create().await;
    let pool = pool(&db, 2);
    let first = backend_pid(&pool).await;
    for _ in 0..20 {
        assert_eq!(
            backend_pid(&pool).await,
            first,
            "the same connection is reused"
        );
    }
    // An error the server sent leaves the connection ready for the next query.
    let refused = sqlx::query("SELECT 1/0").execute(&pool).await;
    assert!(
        matches!(refused, Err(sqlx::Error::Database(_))),
        "{refused:?}"
    );
    assert_eq!(backend_pid(&pool).await, first);
    assert_eq!((pool.idle_count(), pool.in_use()), (1, 0));
}

#[tokio::test]
async fn an_abandoned_query_closes_its_connection_and_the_next_gets_its_own_answer() {
    let db = TestDatabase::create().await;
    let pool = pool(&db, 1);
    let first = backend_pid(&pool).await;

    // A query dropped before its answer came (as a timeout or a client gone does): its answer
    // is still on the way on that connection.
    let slow = sqlx::query_scalar::<_, i32>("SELECT 41 FROM pg_sleep(0.3)").fetch_one(&pool);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), slow)
            .await
            .is_err()
    );
    assert_eq!(pool.in_use(), 0, "its place is free at once");

    let answer: i32 = sqlx::query_scalar("SELECT 42")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(answer, 42, "never the abandoned query's answer");
    assert_ne!(backend_pid(&pool).await, first, "a new connection");
}

#[tokio::test]
async fn a_connection_the_server_ended_is_replaced_before_use() {
    let db = TestDatabase::create().await;
    let pool = pool(&db, 1);
    let first = backend_pid(&pool).await;
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(ended);
    // Idle for over a second: pinged before use, found dead, replaced.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = backend_pid(&pool).await;
    assert_ne!(second, first);
}

#[tokio::test]
async fn no_more_connections_than_the_limit_and_waits_are_bounded() {
    let db = TestDatabase::create().await;
    let options = PgConnectOptions::from_str(&db.url).unwrap();
    let pool = Pool::lazy(options, 2, Duration::from_millis(200));
    let a = pool.acquire().await.unwrap();
    let b = pool.acquire().await.unwrap();
    assert_eq!(pool.in_use(), 2);
    let third = pool.acquire().await;
    assert!(
        matches!(third, Err(sqlx::Error::PoolTimedOut)),
        "{:?}",
        third.err()
    );
    a.release();
    drop(b); // not released: closed, not kept
    assert_eq!((pool.idle_count(), pool.in_use()), (1, 0));
    let rows: Vec<i32> = sqlx::query_scalar("SELECT generate_series(1, 3)")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows, [1, 2, 3]);
}
