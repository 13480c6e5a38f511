//! After a run: read back everything the service stored and compare it with what each
//! request was told. Every write is recognised by one body field (the guestbook's `name`,
//! unique per request thanks to `{run}`/`{n}`).
//!
//! The read-back follows the guestbook's paging contract: `GET <path>?limit=1000` returns
//! `{"messages": [...], "next_before_id": N | null}`, and `&before_id=N` gives the next page.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::Value;

use super::stats::Class;

/// How many example keys the report lists for LOST and PHANTOM writes.
const EXAMPLES: usize = 20;
const PAGE: u32 = 1000;

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct AuditReport {
    /// Where the rows were read: base URL and path
    pub url: String,
    /// Rows the service returned, from this run or not
    pub rows_read: u64,
    /// Requests answered 2xx/3xx
    pub acknowledged: u64,
    /// ... and found in storage
    pub acknowledged_stored: u64,
    /// Acknowledged but missing from storage: the service said yes and forgot
    pub lost: u64,
    /// Requests answered with an error (lock error, 4xx, 5xx)
    pub rejected: u64,
    /// Answered with an error, yet stored: the client was told no and it happened anyway
    pub phantom: u64,
    /// Requests with no answer (timeout, connection error): either outcome is honest
    pub unanswered: u64,
    pub unanswered_stored: u64,
    /// Rows of this run stored more than once
    pub duplicates: u64,
    /// Stored rows of this run (acknowledged or not)
    pub stored: u64,
    /// Rows that belong to no request of this run (earlier runs, other users)
    pub other_rows: u64,
    pub lost_examples: Vec<String>,
    pub phantom_examples: Vec<String>,
}

impl AuditReport {
    /// True when nothing acknowledged went missing and nothing rejected was stored.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.phantom == 0
    }
}

/// Compares what each request was told with the keys found in storage.
pub fn compare(url: String, sent: &[(String, Class)], stored: &[String]) -> AuditReport {
    let mut found: HashMap<&str, u64> = HashMap::with_capacity(stored.len());
    for key in stored {
        *found.entry(key.as_str()).or_default() += 1;
    }
    let mut report = AuditReport {
        url,
        rows_read: stored.len() as u64,
        ..AuditReport::default()
    };
    let mut ours = HashSet::with_capacity(sent.len());
    for (key, class) in sent {
        ours.insert(key.as_str());
        let copies = found.get(key.as_str()).copied().unwrap_or(0);
        let is_stored = copies > 0;
        if is_stored {
            report.stored += 1;
            report.duplicates += copies - 1;
        }
        if class.acknowledged() {
            report.acknowledged += 1;
            if is_stored {
                report.acknowledged_stored += 1;
            } else {
                report.lost += 1;
                if report.lost_examples.len() < EXAMPLES {
                    report.lost_examples.push(key.clone());
                }
            }
        } else if class.rejected() {
            report.rejected += 1;
            if is_stored {
                report.phantom += 1;
                if report.phantom_examples.len() < EXAMPLES {
                    report.phantom_examples.push(key.clone());
                }
            }
        } else {
            report.unanswered += 1;
            if is_stored {
                report.unanswered_stored += 1;
            }
        }
    }
    report.other_rows = stored.iter().filter(|k| !ours.contains(k.as_str())).count() as u64;
    report
}

/// Reads every stored row's `key` field, newest first, following `next_before_id`.
pub async fn read_back(
    base: &str,
    path: &str,
    key: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<String>> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut keys = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut url = format!("{base}{path}{separator}limit={PAGE}");
        if let Some(before) = before {
            url.push_str(&format!("&before_id={before}"));
        }
        let response = client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("audit: cannot read {url}"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .with_context(|| format!("audit: cannot read {url}"))?;
        if !status.is_success() {
            let excerpt: String = body.chars().take(200).collect();
            bail!("audit: {url} answered {status}: {excerpt}");
        }
        let page: Value = serde_json::from_str(&body)
            .with_context(|| format!("audit: {url} did not answer JSON"))?;
        let rows = page
            .get("messages")
            .and_then(Value::as_array)
            .with_context(|| format!("audit: {url} has no \"messages\" array"))?;
        for row in rows {
            match row.get(key) {
                Some(Value::String(s)) => keys.push(s.clone()),
                Some(other) => keys.push(other.to_string()),
                None => bail!("audit: a stored row has no field {key:?}: {row}"),
            }
        }
        match page.get("next_before_id").and_then(Value::as_i64) {
            Some(next) if Some(next) != before => before = Some(next),
            _ => return Ok(keys),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_phantom_and_the_rest() {
        let sent = vec![
            ("a".to_owned(), Class::Ok),
            ("b".to_owned(), Class::Ok),
            ("c".to_owned(), Class::LockError),
            ("d".to_owned(), Class::LockError),
            ("e".to_owned(), Class::Timeout),
            ("f".to_owned(), Class::Redirect),
        ];
        let stored: Vec<String> = ["a", "a", "d", "e", "f", "zz"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let report = compare("u".into(), &sent, &stored);
        assert_eq!(report.rows_read, 6);
        assert_eq!(report.acknowledged, 3);
        assert_eq!(report.acknowledged_stored, 2);
        assert_eq!(report.lost, 1);
        assert_eq!(report.lost_examples, vec!["b".to_owned()]);
        assert_eq!(report.rejected, 2);
        assert_eq!(report.phantom, 1);
        assert_eq!(report.phantom_examples, vec!["d".to_owned()]);
        assert_eq!(report.unanswered, 1);
        assert_eq!(report.unanswered_stored, 1);
        assert_eq!(report.duplicates, 1);
        assert_eq!(report.stored, 4);
        assert_eq!(report.other_rows, 1);
        assert!(!report.clean());
    }
}
