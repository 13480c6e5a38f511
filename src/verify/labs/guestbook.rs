//! Seed 000: the guestbook's one SQLite file works with one replica and answers "database is
//! locked" at three, without losing or inventing a message; on PostgreSQL three replicas
//! never lock.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use serde_json::json;

use super::{Outcome, failed, not_run, run_tag};
use crate::verify::cluster::Cluster;
use crate::verify::report::Check;

const WRITES: usize = 60;
const CONCURRENCY: usize = 12;
/// Rounds of concurrent writes tried at three replicas before deciding locks never happen.
const ROUNDS: usize = 4;

/// What a burst of concurrent writes through the Service got back.
#[derive(Default)]
struct Tally {
    acknowledged: BTreeSet<String>,
    locked: BTreeSet<String>,
    other: Vec<String>,
    /// Which replica acknowledged how many writes.
    replicas: BTreeMap<String, usize>,
}

impl Tally {
    fn summary(&self) -> String {
        let replicas: Vec<String> = self
            .replicas
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        format!(
            "{} acknowledged, {} \"database is locked\", {} other errors{} (acknowledged by {})",
            self.acknowledged.len(),
            self.locked.len(),
            self.other.len(),
            self.other
                .first()
                .map(|e| format!(" e.g. {e}"))
                .unwrap_or_default(),
            if replicas.is_empty() {
                "none".into()
            } else {
                replicas.join(", ")
            }
        )
    }
    fn absorb(&mut self, other: Tally) {
        self.acknowledged.extend(other.acknowledged);
        self.locked.extend(other.locked);
        self.other.extend(other.other);
        for (replica, n) in other.replicas {
            *self.replicas.entry(replica).or_default() += n;
        }
    }
}

/// `count` messages posted `CONCURRENCY` at a time through the Service, each with its own text
/// (numbered from `first`, so that several bursts under one tag never repeat a text).
async fn write_burst(
    cluster: &Cluster,
    service: &str,
    tag: &str,
    first: usize,
    count: usize,
) -> Tally {
    let answers: Vec<_> = futures::stream::iter(first..first + count)
        .map(|i| {
            let text = format!("statelab verify {tag} #{i}");
            async move {
                let body = json!({"name": "statelab verify", "message": text});
                // A 503 other than the lock that says `"stored": false` (no database connection
                // in time, a replica draining) is retried, as a client honouring Retry-After
                // would; "database is locked" is the lesson and is counted, not retried.
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let answer = cluster
                        .service_http(service, "POST", "/api/messages", Some(&body))
                        .await;
                    let retry = matches!(&answer, Ok(a) if a.status == 503
                        && !a.body.contains("database is locked")
                        && a.json().is_some_and(|j| j["stored"] == false));
                    if !retry || attempt == 3 {
                        break (text, answer);
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut tally = Tally::default();
    for (text, answer) in answers {
        match answer {
            Ok(a) if a.status == 201 => {
                let replica = a
                    .json()
                    .and_then(|v| v["replica"].as_str().map(String::from));
                *tally
                    .replicas
                    .entry(replica.unwrap_or_else(|| "?".into()))
                    .or_default() += 1;
                tally.acknowledged.insert(text);
            }
            Ok(a) if a.status == 503 && a.body.contains("database is locked") => {
                tally.locked.insert(text);
            }
            Ok(a) => tally.other.push(a.brief()),
            Err(e) => tally.other.push(failed(e)),
        }
    }
    tally
}

/// Every stored message of this run, read back page by page as `statelab load --audit` does.
async fn stored_messages(
    cluster: &Cluster,
    service: &str,
    tag: &str,
) -> Result<Vec<String>, String> {
    let marker = format!("statelab verify {tag} #");
    let mut stored = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(id) => format!("/api/messages?limit=1000&before_id={id}"),
            None => "/api/messages?limit=1000".to_string(),
        };
        let answer = cluster
            .service_http(service, "GET", &path, None)
            .await
            .map_err(failed)?;
        let page = answer
            .json()
            .filter(|_| answer.ok())
            .ok_or_else(|| format!("GET {path}: {}", answer.brief()))?;
        for message in page["messages"].as_array().into_iter().flatten() {
            if let Some(text) = message["message"]
                .as_str()
                .filter(|t| t.starts_with(&marker))
            {
                stored.push(text.to_string());
            }
        }
        match page["next_before_id"].as_i64() {
            Some(id) => before = Some(id),
            None => return Ok(stored),
        }
    }
}

/// Stored rows = acknowledged writes: none lost, none refused yet stored, none twice.
async fn audit(cluster: &Cluster, service: &str, tag: &str, tally: &Tally) -> Outcome {
    let stored = stored_messages(cluster, service, tag).await?;
    compare(&stored, tally)
}

fn compare(stored: &[String], tally: &Tally) -> Outcome {
    let unique: BTreeSet<String> = stored.iter().cloned().collect();
    let lost: Vec<_> = tally.acknowledged.difference(&unique).collect();
    let phantom: Vec<_> = unique.difference(&tally.acknowledged).collect();
    let twice = stored.len() - unique.len();
    if lost.is_empty() && phantom.is_empty() && twice == 0 {
        Ok(format!(
            "{} stored = {} acknowledged; none of the {} refused writes stored",
            stored.len(),
            tally.acknowledged.len(),
            tally.locked.len()
        ))
    } else {
        Err(format!(
            "{} acknowledged but not stored (e.g. {:?}), {} stored but not acknowledged (e.g. {:?}), {twice} stored twice",
            lost.len(),
            lost.first(),
            phantom.len(),
            phantom.first()
        ))
    }
}

async fn replicas(cluster: &Cluster, deployment: &str) -> Result<i32, String> {
    let d = cluster
        .deployments()
        .get(deployment)
        .await
        .map_err(failed)?;
    Ok(d.spec.and_then(|s| s.replicas).unwrap_or(1))
}

/// Seed 000 on its SQLite file (deploy/k8s/guestbook).
pub async fn sqlite(cluster: &Cluster) -> Vec<Check> {
    const DEPLOYMENT: &str = "stateful-app-deployment";
    const SERVICE: &str = "stateful-app-service:80";
    let tag = run_tag();
    let original = replicas(cluster, DEPLOYMENT).await;

    let one = async {
        cluster
            .scale_deployment(DEPLOYMENT, 1)
            .await
            .map_err(failed)?;
        let tally = write_burst(cluster, SERVICE, &format!("{tag}a"), 0, WRITES).await;
        if tally.locked.is_empty() && tally.other.is_empty() {
            Ok(format!(
                "1 replica, {WRITES} writes {CONCURRENCY} at a time: {}",
                tally.summary()
            ))
        } else {
            Err(format!("1 replica: {}", tally.summary()))
        }
    }
    .await;

    let mut three_tally = Tally::default();
    let three = async {
        cluster.scale_deployment(DEPLOYMENT, 3).await.map_err(failed)?;
        for round in 1..=ROUNDS {
            let tally = write_burst(cluster, SERVICE, &format!("{tag}b"), round * WRITES, WRITES).await;
            three_tally.absorb(tally);
            if !three_tally.locked.is_empty() {
                return Ok(format!("3 replicas, round {round}: {}", three_tally.summary()));
            }
        }
        Err(format!(
            "3 replicas on one SQLite file, {ROUNDS} rounds of {WRITES} concurrent writes: no lock error ({})",
            three_tally.summary()
        ))
    }
    .await;
    // Every round of the three-replica burst wrote under the same tag, so one audit covers all.
    let audited = match &three {
        Err(why) if three_tally.acknowledged.is_empty() => not_run(why),
        _ => audit(cluster, SERVICE, &format!("{tag}b"), &three_tally).await,
    };

    // Back to what the lab had.
    if let Ok(n) = original {
        let _ = cluster.scale_deployment(DEPLOYMENT, n).await;
    }
    vec![
        Check::new(
            "1 replica: concurrent writes, no \"database is locked\"",
            30,
            one,
        ),
        Check::new(
            "3 replicas on one SQLite file: \"database is locked\"",
            40,
            three,
        ),
        Check::new(
            "3 replicas: stored messages = acknowledged writes",
            30,
            audited,
        ),
    ]
}

/// Seed 000's fix (deploy/k8s/guestbook-postgres): three replicas, one PostgreSQL.
pub async fn postgres(cluster: &Cluster) -> Vec<Check> {
    const DEPLOYMENT: &str = "guestbook";
    const SERVICE: &str = "guestbook:80";
    let tag = run_tag();
    let original = replicas(cluster, DEPLOYMENT).await;

    let mut tally = Tally::default();
    let burst = async {
        cluster
            .scale_deployment(DEPLOYMENT, 3)
            .await
            .map_err(failed)?;
        for round in 0..2 {
            tally.absorb(write_burst(cluster, SERVICE, &tag, round * WRITES, WRITES).await);
        }
        Ok::<_, String>(())
    }
    .await;
    let no_locks = match &burst {
        Err(why) => Err(why.clone()),
        Ok(()) if tally.locked.is_empty() && tally.other.is_empty() => Ok(format!(
            "3 replicas, {} writes {CONCURRENCY} at a time: {}",
            2 * WRITES,
            tally.summary()
        )),
        Ok(()) => Err(tally.summary()),
    };
    let spread = match &burst {
        Err(why) => not_run(why),
        Ok(()) if tally.replicas.len() >= 2 => Ok(format!(
            "{} replicas acknowledged writes",
            tally.replicas.len()
        )),
        Ok(()) => Err(format!(
            "writes reached only {:?}",
            tally.replicas.keys().collect::<Vec<_>>()
        )),
    };
    let audited = match &burst {
        Err(why) => not_run(why),
        Ok(()) => audit(cluster, SERVICE, &tag, &tally).await,
    };
    if let Ok(n) = original {
        let _ = cluster.scale_deployment(DEPLOYMENT, n).await;
    }
    vec![
        Check::new(
            "3 replicas on PostgreSQL: concurrent writes, no error",
            40,
            no_locks,
        ),
        Check::new("writes served by several replicas", 20, spread),
        Check::new("stored messages = acknowledged writes", 40, audited),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(acknowledged: &[&str], locked: &[&str]) -> Tally {
        Tally {
            acknowledged: acknowledged.iter().map(|s| s.to_string()).collect(),
            locked: locked.iter().map(|s| s.to_string()).collect(),
            ..Tally::default()
        }
    }

    fn stored(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_audit_passes_only_when_stored_equals_acknowledged() {
        let t = tally(&["#0", "#1"], &["#2"]);
        assert!(compare(&stored(&["#1", "#0"]), &t).is_ok());
        // Lost, phantom (a refused write stored anyway), stored twice.
        assert!(
            compare(&stored(&["#0"]), &t)
                .unwrap_err()
                .starts_with("1 acknowledged but not stored")
        );
        assert!(
            compare(&stored(&["#0", "#1", "#2"]), &t)
                .unwrap_err()
                .contains("1 stored but not acknowledged")
        );
        assert!(
            compare(&stored(&["#0", "#1", "#1"]), &t)
                .unwrap_err()
                .ends_with("1 stored twice")
        );
    }
}
