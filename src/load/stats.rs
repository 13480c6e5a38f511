//! How each answer is classified, and the counts and latency histograms kept per worker and
//! merged at the end (no shared lock on the hot path).

use hdrhistogram::Histogram;
use serde::Serialize;

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// 2xx
    Ok,
    /// 3xx (redirects are not followed: the guestbook's form answers 303 after a write)
    Redirect,
    /// 503 whose body mentions the lock ("database is locked")
    LockError,
    /// any other 4xx
    ClientError,
    /// any other 5xx (and 1xx, which no server should send here)
    ServerError,
    /// no complete answer within the request timeout
    Timeout,
    /// connection refused, reset or closed before a complete answer
    ConnectionError,
}

impl Class {
    pub fn from_answer(status: u16, body: &[u8]) -> Class {
        match status {
            200..=299 => Class::Ok,
            300..=399 => Class::Redirect,
            503 if mentions_lock(body) => Class::LockError,
            400..=499 => Class::ClientError,
            _ => Class::ServerError,
        }
    }

    /// The service said yes: 2xx, or a redirect after a form post.
    pub fn acknowledged(self) -> bool {
        matches!(self, Class::Ok | Class::Redirect)
    }

    /// The service answered, and said no.
    pub fn rejected(self) -> bool {
        matches!(
            self,
            Class::LockError | Class::ClientError | Class::ServerError
        )
    }
}

fn mentions_lock(body: &[u8]) -> bool {
    body.windows(6).any(|w| w.eq_ignore_ascii_case(b"locked"))
}

/// Requests by class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub ok: u64,
    pub redirect: u64,
    pub lock_error: u64,
    pub client_error: u64,
    pub server_error: u64,
    pub timeout: u64,
    pub connection_error: u64,
}

impl Counts {
    pub fn add(&mut self, class: Class) {
        *self.slot(class) += 1;
    }

    fn slot(&mut self, class: Class) -> &mut u64 {
        match class {
            Class::Ok => &mut self.ok,
            Class::Redirect => &mut self.redirect,
            Class::LockError => &mut self.lock_error,
            Class::ClientError => &mut self.client_error,
            Class::ServerError => &mut self.server_error,
            Class::Timeout => &mut self.timeout,
            Class::ConnectionError => &mut self.connection_error,
        }
    }

    pub fn merge(&mut self, other: &Counts) {
        self.ok += other.ok;
        self.redirect += other.redirect;
        self.lock_error += other.lock_error;
        self.client_error += other.client_error;
        self.server_error += other.server_error;
        self.timeout += other.timeout;
        self.connection_error += other.connection_error;
    }

    pub fn total(&self) -> u64 {
        self.ok
            + self.redirect
            + self.lock_error
            + self.client_error
            + self.server_error
            + self.timeout
            + self.connection_error
    }

    /// Everything that is neither acknowledged nor a lock error.
    pub fn other_errors(&self) -> u64 {
        self.client_error + self.server_error + self.timeout + self.connection_error
    }
}

/// Latencies in microseconds, from 1 µs to 10 minutes, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds are valid")
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    /// None when nothing was recorded.
    pub fn of(histogram: &Histogram<u64>) -> Option<Latency> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |micros: u64| round2(micros as f64 / 1000.0);
        Some(Latency {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            max: ms(histogram.max()),
            mean: round2(histogram.mean() / 1000.0),
        })
    }
}

pub fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// What one replica (by its `X-Served-By` header) answered.
#[derive(Clone)]
pub struct ReplicaTally {
    pub counts: Counts,
    pub latency: Histogram<u64>,
}

impl Default for ReplicaTally {
    fn default() -> Self {
        ReplicaTally {
            counts: Counts::default(),
            latency: new_histogram(),
        }
    }
}

/// One worker's figures; workers' tallies are merged when the run ends.
#[derive(Clone)]
pub struct Tally {
    pub counts: Counts,
    /// every answer (any status)
    pub all: Histogram<u64>,
    /// acknowledged answers only
    pub ok: Histogram<u64>,
    /// By replica name, in order of first appearance (a handful: a linear scan beats hashing)
    pub replicas: Vec<(String, ReplicaTally)>,
    /// (audit key, class) per request, only when auditing
    pub keys: Vec<(String, Class)>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            counts: Counts::default(),
            all: new_histogram(),
            ok: new_histogram(),
            replicas: Vec::new(),
            keys: Vec::new(),
        }
    }
}

/// Distinct `X-Served-By` values tracked one by one; the rest share one row.
const MAX_REPLICAS: usize = 256;
/// The row for replicas beyond [`MAX_REPLICAS`].
pub const OTHER_REPLICAS: &str = "(other replicas)";

/// Per-replica key for requests that got no answer (so no `X-Served-By`).
pub const NO_ANSWER: &str = "(no answer)";
/// Per-replica key for answers without an `X-Served-By` header.
pub const NO_HEADER: &str = "(no X-Served-By)";

impl Tally {
    pub fn record(&mut self, class: Class, replica: Option<&str>, micros: Option<u64>) {
        self.counts.add(class);
        if let Some(micros) = micros {
            self.all.saturating_record(micros.max(1));
            if class.acknowledged() {
                self.ok.saturating_record(micros.max(1));
            }
        }
        let key = match (replica, micros) {
            (Some(name), _) => name,
            (None, Some(_)) => NO_HEADER,
            (None, None) => NO_ANSWER,
        };
        let index = match self.replicas.iter().position(|(name, _)| name == key) {
            Some(index) => index,
            None if self.replicas.len() < MAX_REPLICAS => {
                self.replicas
                    .push((key.to_owned(), ReplicaTally::default()));
                self.replicas.len() - 1
            }
            None => self.other_replicas(),
        };
        let entry = &mut self.replicas[index].1;
        entry.counts.add(class);
        if let Some(micros) = micros {
            entry.latency.saturating_record(micros.max(1));
        }
    }

    fn other_replicas(&mut self) -> usize {
        match self
            .replicas
            .iter()
            .position(|(name, _)| name == OTHER_REPLICAS)
        {
            Some(index) => index,
            None => {
                self.replicas
                    .push((OTHER_REPLICAS.to_owned(), ReplicaTally::default()));
                self.replicas.len() - 1
            }
        }
    }

    /// The figures of one replica, by name.
    pub fn replica(&self, name: &str) -> Option<&ReplicaTally> {
        self.replicas
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r)
    }

    pub fn merge(&mut self, other: Tally) {
        self.counts.merge(&other.counts);
        // Same bounds on both sides: adding cannot fail.
        let _ = self.all.add(&other.all);
        let _ = self.ok.add(&other.ok);
        for (name, theirs) in other.replicas {
            let index = match self.replicas.iter().position(|(mine, _)| *mine == name) {
                Some(index) => index,
                None => {
                    self.replicas.push((name, ReplicaTally::default()));
                    self.replicas.len() - 1
                }
            };
            let mine = &mut self.replicas[index].1;
            mine.counts.merge(&theirs.counts);
            let _ = mine.latency.add(&theirs.latency);
        }
        self.keys.extend(other.keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        assert_eq!(Class::from_answer(201, b""), Class::Ok);
        assert_eq!(Class::from_answer(303, b""), Class::Redirect);
        assert_eq!(
            Class::from_answer(503, br#"{"error":"database is locked"}"#),
            Class::LockError
        );
        assert_eq!(
            Class::from_answer(503, b"DATABASE IS LOCKED!"),
            Class::LockError
        );
        assert_eq!(
            Class::from_answer(503, b"database unavailable"),
            Class::ServerError
        );
        assert_eq!(Class::from_answer(500, b"locked"), Class::ServerError);
        assert_eq!(Class::from_answer(422, b""), Class::ClientError);
        assert_eq!(Class::from_answer(101, b""), Class::ServerError);
    }

    #[test]
    fn tallies_merge() {
        let mut a = Tally::default();
        a.record(Class::Ok, Some("r0"), Some(1000));
        a.record(Class::Timeout, None, None);
        let mut b = Tally::default();
        b.record(Class::LockError, Some("r0"), Some(3000));
        b.record(Class::Ok, None, Some(2000));
        a.merge(b);
        assert_eq!(a.counts.total(), 4);
        assert_eq!(a.counts.other_errors(), 1);
        assert_eq!(a.replica("r0").unwrap().counts.total(), 2);
        assert_eq!(a.replica(NO_ANSWER).unwrap().counts.timeout, 1);
        assert_eq!(a.replica(NO_HEADER).unwrap().counts.ok, 1);
        assert_eq!(a.all.len(), 3);
        assert_eq!(a.ok.len(), 2);
        let latency = Latency::of(&a.all).unwrap();
        assert!(latency.p50 >= 1.99 && latency.p50 <= 2.01, "{latency:?}");
        assert!(Latency::of(&new_histogram()).is_none());
    }
}
