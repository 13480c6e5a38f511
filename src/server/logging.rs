use std::io::IsTerminal;
use std::sync::Once;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`). Safe to call more than once.
pub fn init(format: LogFormat) {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
        // Colours only on a terminal: `kubectl logs` and files get plain text.
        let builder = tracing_subscriber::fmt()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr);
        let _ = match format {
            LogFormat::Json => builder
                .json()
                .flatten_event(true)
                .finish()
                .with(filter)
                .try_init(),
            LogFormat::Pretty => builder.finish().with(filter).try_init(),
        };
    });
}

/// `RUST_LOG` as a default level and per-module levels (`warn,statelab::server=info`); unset or
/// unreadable, `info`. (The module-path form of the usual syntax: it needs no regex engine,
/// which span and field filters would.)
fn filter(rust_log: Option<&str>) -> Targets {
    rust_log
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

#[cfg(test)]
mod tests {
    use super::filter;
    use tracing::Level;

    #[test]
    fn rust_log_sets_a_default_and_per_module_levels() {
        let f = filter(Some("error,statelab::server=info"));
        assert!(f.would_enable("statelab::server::layers", &Level::INFO));
        assert!(!f.would_enable("statelab::queue", &Level::WARN));
        assert!(f.would_enable("sqlx::query", &Level::ERROR));
        let default = filter(None);
        assert!(default.would_enable("statelab", &Level::INFO));
        assert!(!default.would_enable("statelab", &Level::DEBUG));
        assert!(!filter(Some("not a level=")).would_enable("x", &Level::DEBUG));
    }
}
