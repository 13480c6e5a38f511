//! Progress while a run is going: a bar on a terminal, a plain line every few seconds
//! otherwise (logs, CI), or nothing.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::engine::Limit;
use super::stats::Class;

/// Running totals the workers bump and the reporter reads.
#[derive(Default)]
pub struct Live {
    done: AtomicU64,
    ok: AtomicU64,
    lock: AtomicU64,
    failed: AtomicU64,
}

impl Live {
    pub fn add(&self, class: Class) {
        self.done.fetch_add(1, Ordering::Relaxed);
        let slot = match class {
            Class::Ok | Class::Redirect => &self.ok,
            Class::LockError => &self.lock,
            _ => &self.failed,
        };
        slot.fetch_add(1, Ordering::Relaxed);
    }

    fn summary(&self, elapsed: Duration) -> (u64, String) {
        let done = self.done.load(Ordering::Relaxed);
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
        let text = format!(
            "{rate:.0} req/s · ok {} · lock errors {} · other errors {}",
            self.ok.load(Ordering::Relaxed),
            self.lock.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        );
        (done, text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Bar,
    Lines(Duration),
    Off,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressChoice {
    /// A bar when stderr is a terminal, plain lines otherwise
    Auto,
    Bar,
    Lines,
    Off,
}

impl ProgressMode {
    pub fn choose(choice: ProgressChoice, every: Duration) -> ProgressMode {
        match choice {
            ProgressChoice::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressChoice::Auto | ProgressChoice::Lines => ProgressMode::Lines(every),
            ProgressChoice::Bar => ProgressMode::Bar,
            ProgressChoice::Off => ProgressMode::Off,
        }
    }

    pub fn start(self, live: Arc<Live>, limit: Limit, started: Instant) -> Reporter {
        let done = CancellationToken::new();
        let task = match self {
            ProgressMode::Off => None,
            ProgressMode::Bar => Some(tokio::spawn(bar(live, limit, started, done.clone()))),
            ProgressMode::Lines(every) => Some(tokio::spawn(lines(
                live,
                limit,
                started,
                every,
                done.clone(),
            ))),
        };
        Reporter { done, task }
    }
}

pub struct Reporter {
    done: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Reporter {
    pub async fn finish(self) {
        self.done.cancel();
        if let Some(task) = self.task {
            let _ = task.await;
        }
    }
}

async fn bar(live: Arc<Live>, limit: Limit, started: Instant, done: CancellationToken) {
    let (len, template) = match limit {
        Limit::Count(count) => (count, "{elapsed:>4} [{wide_bar}] {pos}/{len} {msg}"),
        Limit::Duration(d) => (d.as_millis() as u64, "{elapsed:>4} [{wide_bar}] {msg}"),
    };
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            _ = done.cancelled() => true,
        };
        let elapsed = started.elapsed();
        let (count, message) = live.summary(elapsed);
        match limit {
            Limit::Count(_) => bar.set_position(count),
            Limit::Duration(_) => bar.set_position((elapsed.as_millis() as u64).min(len)),
        }
        bar.set_message(message);
        if stop {
            bar.finish_and_clear();
            return;
        }
    }
}

async fn lines(
    live: Arc<Live>,
    limit: Limit,
    started: Instant,
    every: Duration,
    done: CancellationToken,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = done.cancelled() => return,
        }
        let elapsed = started.elapsed();
        let (count, message) = live.summary(elapsed);
        let of = match limit {
            Limit::Count(total) => format!("{count}/{total}"),
            Limit::Duration(d) => format!(
                "{count} ({:.0}s of {:.0}s)",
                elapsed.as_secs_f64(),
                d.as_secs_f64()
            ),
        };
        eprintln!("[{:>6.1}s] {of} done · {message}", elapsed.as_secs_f64());
    }
}
