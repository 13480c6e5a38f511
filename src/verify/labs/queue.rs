//! Seed 001 §3: the task queue. Tasks enqueued, then a worker pod and the backend pod (whichever
//! `/stats` names) deleted while the tasks run; every task must still end `done`, none lost.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use super::{Outcome, failed, not_run, run_tag};
use crate::verify::cluster::Cluster;
use crate::verify::report::Check;

const SERVICE: &str = "queue-api:8000";
const TASKS: usize = 300;
/// Long enough that the deletions happen while the tasks run.
const TASK_MS: u64 = 8_000;
/// A deleted worker's leases expire and a deleted backend restarts well within this.
const ALL_DONE_WITHIN: Duration = Duration::from_secs(300);

pub async fn verify(cluster: &Cluster) -> Vec<Check> {
    let backend = health(cluster).await;
    let enqueued = match &backend {
        Ok(_) => enqueue(cluster).await,
        Err(why) => Err(why.clone()),
    };
    let deleted = match (&backend, &enqueued) {
        (Ok(backend), Ok(_)) => delete_mid_run(cluster, backend).await,
        (Err(why), _) | (_, Err(why)) => not_run(why),
    };
    let finished = match &enqueued {
        Ok(ids) => all_done(cluster, ids).await,
        Err(why) => not_run(why),
    };
    vec![
        Check::new(
            "GET /health: healthy, backend connected",
            10,
            backend.map(|b| format!("backend {b}")),
        ),
        Check::new(
            &format!("{TASKS} tasks enqueued in one batch"),
            20,
            enqueued.map(|ids| format!("{} ids", ids.len())),
        ),
        Check::new(
            "a worker pod and the backend pod deleted while tasks run",
            30,
            deleted,
        ),
        Check::new("every task ends done, none lost", 40, finished),
    ]
}

/// The backend's name from /health (`postgres` or `redis`).
async fn health(cluster: &Cluster) -> Result<String, String> {
    let answer = cluster
        .service_http(SERVICE, "GET", "/health", None)
        .await
        .map_err(failed)?;
    let json = answer.json().unwrap_or(Value::Null);
    match json["backend"].as_str() {
        Some(backend) if answer.status == 200 && json["status"] == "healthy" => {
            Ok(backend.to_string())
        }
        _ => Err(answer.brief()),
    }
}

async fn enqueue(cluster: &Cluster) -> Result<Vec<i64>, String> {
    let tag = run_tag();
    let batch: Vec<Value> = (0..TASKS)
        .map(|i| json!({"type": "sleep", "payload": {"ms": TASK_MS}, "idempotency_key": format!("verify-{tag}-{i}")}))
        .collect();
    let body = Value::Array(batch);
    // A 503 says the outcome is unknown: the same keys make the retry safe.
    let mut last = String::new();
    for _ in 0..5 {
        let answer = cluster
            .service_http(SERVICE, "POST", "/tasks/batch", Some(&body))
            .await
            .map_err(failed)?;
        if answer.status == 201 || answer.status == 200 {
            let ids: Vec<i64> = answer.json().unwrap_or(Value::Null)["tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["id"].as_i64())
                .collect();
            return if ids.len() == TASKS {
                Ok(ids)
            } else {
                Err(format!("{} ids for {TASKS} tasks", ids.len()))
            };
        }
        last = answer.brief();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Err(format!("POST /tasks/batch: {last}"))
}

async fn unfinished(cluster: &Cluster) -> Option<u64> {
    let stats = cluster
        .service_http(SERVICE, "GET", "/stats", None)
        .await
        .ok()?
        .json()?;
    let counts = &stats["counts"];
    Some(
        counts["queued"].as_u64()?
            + counts["running"].as_u64()?
            + counts["failed"].as_u64().unwrap_or(0),
    )
}

async fn delete_mid_run(cluster: &Cluster, backend: &str) -> Outcome {
    let workers = cluster
        .deployment_selector("queue-worker")
        .await
        .map_err(failed)?;
    let worker = cluster
        .pods_matching(&workers)
        .await
        .map_err(failed)?
        .into_keys()
        .next()
        .ok_or("no worker pod")?;
    let before = unfinished(cluster)
        .await
        .ok_or("GET /stats did not answer")?;
    if before == 0 {
        return Err("every task had finished before the deletions: nothing was tested".into());
    }
    cluster.pods().delete(&worker).await.map_err(failed)?;
    let backend_pod = format!("{backend}-0");
    cluster
        .delete_pod_and_wait(&backend_pod)
        .await
        .map_err(failed)?;
    Ok(format!(
        "{before} tasks unfinished; deleted worker {worker} and {backend_pod} (back and ready)"
    ))
}

/// Polls every task until all are `done`; a task that is gone (404) or dead is lost.
async fn all_done(cluster: &Cluster, ids: &[i64]) -> Outcome {
    let started = Instant::now();
    let mut states: BTreeMap<i64, String> =
        ids.iter().map(|id| (*id, "unknown".to_string())).collect();
    loop {
        let pending: Vec<i64> = states
            .iter()
            .filter(|(_, s)| *s != "done")
            .map(|(id, _)| *id)
            .collect();
        if pending.is_empty() {
            return Ok(format!(
                "all {} done, {:.0} s after the backend pod was back",
                ids.len(),
                started.elapsed().as_secs_f64()
            ));
        }
        let lost: Vec<_> = states
            .iter()
            .filter(|(_, s)| matches!(s.as_str(), "missing" | "dead"))
            .collect();
        if !lost.is_empty() || started.elapsed() > ALL_DONE_WITHIN {
            let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
            for state in states.values() {
                *tally.entry(state).or_default() += 1;
            }
            return Err(format!(
                "after {:.0} s: {tally:?}",
                started.elapsed().as_secs_f64()
            ));
        }
        let answers: Vec<(i64, Option<String>)> = futures::stream::iter(pending)
            .map(|id| async move {
                let state = match cluster
                    .service_http(SERVICE, "GET", &format!("/tasks/{id}"), None)
                    .await
                {
                    Ok(a) if a.status == 404 => Some("missing".to_string()),
                    Ok(a) if a.ok() => a.json().and_then(|j| j["state"].as_str().map(String::from)),
                    _ => None, // backend or API restarting: ask again
                };
                (id, state)
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for (id, state) in answers {
            if let Some(state) = state {
                states.insert(id, state);
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
