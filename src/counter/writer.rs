//! Group commit: one writer thread per counter file takes every update that is waiting, applies
//! them in order under one lock, writes and fsyncs once, and only then answers each request.
//! With many concurrent clients this turns N fsyncs into one, and every answer still names a
//! value that is already on disk.

use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::store::{CounterFile, Op, StoreError};

/// The most updates one write carries.
const MAX_BATCH: usize = 1024;
/// Updates that may wait for the writer before callers wait to enqueue.
const QUEUE: usize = 4096;

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<u64, StoreError>>,
}

/// A handle to a counter file's writer thread. Cheap to clone; the thread ends when every
/// handle is dropped.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Request>,
    file: CounterFile,
}

impl Writer {
    pub fn start(file: CounterFile) -> anyhow::Result<Writer> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let thread_file = file.clone();
        std::thread::Builder::new()
            .name(format!("writer-{}", file.name()))
            .spawn(move || run(thread_file, rx))?;
        Ok(Writer { tx, file })
    }

    pub fn file(&self) -> &CounterFile {
        &self.file
    }

    /// Applies one update and returns the value right after it, once that value is durable.
    pub async fn apply(&self, op: Op) -> Result<u64, StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Io {
            action: "update",
            path: self.file.path(),
            message: "the writer has stopped".into(),
        };
        self.tx
            .send(Request { op, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Reads the current value off disk (outside the async runtime's worker threads).
    pub async fn read(&self) -> Result<u64, StoreError> {
        let file = self.file.clone();
        let path = self.file.path();
        tokio::task::spawn_blocking(move || file.read())
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Io {
                    action: "read",
                    path,
                    message: e.to_string(),
                })
            })
    }
}

fn run(file: CounterFile, mut rx: mpsc::Receiver<Request>) {
    let name = file.name().to_owned();
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let ops: Vec<Op> = batch.iter().map(|r| r.op).collect();
        let started = Instant::now();
        let result = file.apply(&ops);
        let elapsed = started.elapsed().as_secs_f64();
        match result {
            Ok(values) => {
                metrics::counter!("counter_updates_total", "file" => name.clone())
                    .increment(ops.len() as u64);
                metrics::counter!("counter_writes_total", "file" => name.clone()).increment(1);
                metrics::histogram!("counter_write_duration_seconds", "file" => name.clone())
                    .record(elapsed);
                metrics::histogram!("counter_write_batch_size", "file" => name.clone())
                    .record(ops.len() as f64);
                for (request, value) in batch.into_iter().zip(values) {
                    let _ = request.reply.send(Ok(value));
                }
            }
            Err(error) => {
                metrics::counter!(
                    "counter_write_errors_total",
                    "file" => name.clone(),
                    "kind" => error.kind()
                )
                .increment(ops.len() as u64);
                tracing::error!(file = %name, %error, updates = ops.len(), "update failed");
                for request in batch {
                    let _ = request.reply.send(Err(error.clone()));
                }
            }
        }
    }
}
