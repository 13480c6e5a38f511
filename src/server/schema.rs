use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;

/// Applies a service's migrations in the background, retrying with exponential backoff
/// (from 100 ms up to `max_delay`) until the database answers, then sets `ready`. The service
/// starts at once and reports not-ready meanwhile, so it never crash-loops because the
/// database came up second.
pub fn migrate_in_background(
    pool: PgPool,
    migrator: Migrator,
    ready: Arc<AtomicBool>,
    max_delay: Duration,
    service: &'static str,
) {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match migrator.run(&pool).await {
                Ok(()) => {
                    ready.store(true, Ordering::SeqCst);
                    tracing::info!(service, "schema is in place");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, service, retry_in_ms = delay.as_millis() as u64, "database not ready");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(max_delay);
                }
            }
        }
    });
}
