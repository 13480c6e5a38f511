use std::io::IsTerminal;
use std::sync::Once;

use tracing_subscriber::EnvFilter;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`). Safe to call more than once.
pub fn init(format: LogFormat) {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        // Colours only on a terminal: `kubectl logs` and files get plain text.
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr);
        let _ = match format {
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
            LogFormat::Pretty => builder.try_init(),
        };
    });
}
