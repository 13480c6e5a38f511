//! One module per lab: the seed's experiments, each turned into scored checks. What several
//! labs share (a DNS lookup from a pod, a backend pod deleted and its data checked) is here.

pub mod cache;
pub mod chart;
pub mod counter;
pub mod guestbook;
pub mod queue;
pub mod users;
pub mod visits;

use std::future::Future;
use std::time::Duration;

use super::cluster::{Cluster, PodState};
use crate::demo::poll;

/// A check's outcome: what was seen when it passed, or why it did not.
pub type Outcome = Result<String, String>;

/// An error of the experiment itself (the API refused, a pod never came back) as a failure.
pub fn failed(error: anyhow::Error) -> String {
    format!("{error:#}")
}

/// The outcome of a check that could not run because an earlier one failed.
pub fn not_run(because: &str) -> Outcome {
    Err(format!("not run: {because}"))
}

/// A unique tag for what this run writes, so reruns and other clients never confuse it.
pub fn run_tag() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}", now.as_millis())
}

/// `nslookup NAME` from a fresh busybox pod, as the seeds run it; passes when the answer
/// carries the pod's current IP.
pub async fn resolves_from_a_pod(cluster: &Cluster, name: &str, pod: &str) -> Outcome {
    let ip = pod_ip(cluster, pod).await?;
    let out = cluster
        .run_pod("verify-dns", "busybox:latest", &["nslookup", name])
        .await
        .map_err(failed)?;
    answer_has_ip(name, &ip, &out.stdout)
}

/// `nslookup NAME` inside a running pod, as seed 004 does with `kubectl exec`.
pub async fn resolves_in_pod(cluster: &Cluster, from: &str, name: &str, pod: &str) -> Outcome {
    let ip = pod_ip(cluster, pod).await?;
    let out = cluster
        .exec(from, None, &["nslookup", name])
        .await
        .map_err(failed)?;
    answer_has_ip(name, &ip, &out.stdout)
}

async fn pod_ip(cluster: &Cluster, pod: &str) -> Result<String, String> {
    cluster
        .pods()
        .get(pod)
        .await
        .ok()
        .and_then(|p| p.status?.pod_ip)
        .ok_or_else(|| format!("pod {pod} has no IP"))
}

fn answer_has_ip(name: &str, ip: &str, answer: &str) -> Outcome {
    let after_name = answer.split_once(&format!("Name:\t{name}")).or_else(|| {
        answer
            .split_once("Name:")
            .filter(|(_, rest)| rest.trim_start().starts_with(name))
    });
    match after_name {
        Some((_, rest)) if rest.split_whitespace().any(|word| word == ip) => {
            Ok(format!("{name} -> {ip}"))
        }
        _ => Err(format!(
            "{name} did not resolve to {ip}: {}",
            answer.trim().replace('\n', " | ")
        )),
    }
}

/// The pods of a workload (by label selector), for comparing before and after an experiment.
pub async fn pod_states(cluster: &Cluster, selector: &str) -> Result<Vec<PodState>, String> {
    let pods = cluster.pods_matching(selector).await.map_err(failed)?;
    Ok(pods.values().map(super::cluster::state_of).collect())
}

/// Seed 001's critical experiment: delete a StatefulSet's pod, see it come back under the same
/// name with the same PVC, and the data still there (`data_intact` is polled for up to a
/// minute: clients reconnect in their own time).
pub async fn backend_pod_survives<F, Fut>(
    cluster: &Cluster,
    pod: &str,
    volume: &str,
    data_intact: F,
) -> Outcome
where
    F: Fn() -> Fut,
    Fut: Future<Output = Outcome>,
{
    let (claim, claim_uid) = cluster.claim_of(pod, volume).await.map_err(failed)?;
    let replaced = cluster.delete_pod_and_wait(pod).await.map_err(failed)?;
    let (claim_after, uid_after) = cluster.claim_of(pod, volume).await.map_err(failed)?;
    if (claim_after.as_str(), uid_after.as_str()) != (claim.as_str(), claim_uid.as_str()) {
        return Err(format!(
            "{pod} came back with PVC {claim_after} ({uid_after}), not {claim} ({claim_uid})"
        ));
    }
    let last = std::sync::Mutex::new(String::from("not checked"));
    let intact = poll::until(Duration::from_secs(60), || async {
        match data_intact().await {
            Ok(detail) => Some(detail),
            Err(why) => {
                *last.lock().unwrap() = why;
                None
            }
        }
    })
    .await;
    let last = last.into_inner().unwrap();
    match intact {
        Some(detail) => Ok(format!(
            "{pod} deleted; back as a new pod ({}) with PVC {claim}; {detail}",
            short(&replaced.uid)
        )),
        None => Err(format!("{pod} is back with PVC {claim}, but: {last}")),
    }
}

/// Seed 001's experiment on an API over a StatefulSet backend: the backend pod deleted (its
/// data checked by `data_intact` once it is back), then the API pods found unrestarted. Either
/// outcome is "not run" when the data could not be prepared (`data_intact` is an `Err`).
pub async fn backend_deleted_under_api<F, Fut>(
    cluster: &Cluster,
    (pod, volume): (&str, &str),
    (api_pods, api): (&str, &str),
    data_intact: Result<F, String>,
) -> (Outcome, Outcome)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Outcome>,
{
    let api_before = pod_states(cluster, api_pods).await;
    let survived = match data_intact {
        Err(why) => not_run(&why),
        Ok(data_intact) => backend_pod_survives(cluster, pod, volume, data_intact).await,
    };
    let reconnected = match (&survived, api_before) {
        (Err(why), _) => not_run(why),
        (Ok(_), Err(why)) => Err(why),
        (Ok(_), Ok(before)) => clients_reconnected(cluster, api_pods, &before, api).await,
    };
    (survived, reconnected)
}

/// Clients of a backend kept running while it was replaced: the same pods, no restarts, and
/// ready again (their readiness follows the backend's; a minute is given for the next probes).
pub async fn clients_reconnected(
    cluster: &Cluster,
    selector: &str,
    before: &[PodState],
    what: &str,
) -> Outcome {
    let describe = |pods: &[PodState]| {
        pods.iter()
            .map(|p| {
                format!(
                    "{} (restarts {}{})",
                    p.name,
                    p.restarts,
                    if p.ready { "" } else { ", not ready" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if before.is_empty() {
        return Err(format!("no {what} pod found"));
    }
    let same_pods = |after: &[PodState]| {
        before.len() == after.len()
            && before
                .iter()
                .zip(after)
                .all(|(b, a)| b.uid == a.uid && b.restarts == a.restarts)
    };
    let mut last = Vec::new();
    for _ in 0..30 {
        last = pod_states(cluster, selector).await?;
        if !same_pods(&last) {
            break;
        }
        if last.iter().all(|p| p.ready) {
            return Ok(format!(
                "{what} pods never restarted, ready again: {}",
                describe(&last)
            ));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Err(format!(
        "{what} pods: before {}; after {}",
        describe(before),
        describe(&last)
    ))
}

fn short(uid: &str) -> &str {
    &uid[..uid.len().min(8)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_counts_only_with_the_pods_ip_under_the_name() {
        let answer = "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\nName:\tpostgres-0.postgres-headless.default.svc.cluster.local\nAddress: 10.244.0.7\n";
        let name = "postgres-0.postgres-headless.default.svc.cluster.local";
        assert!(answer_has_ip(name, "10.244.0.7", answer).is_ok());
        assert!(answer_has_ip(name, "10.244.0.8", answer).is_err());
        assert!(answer_has_ip(name, "10.244.0.70", answer).is_err());
        // The server's own address is not an answer.
        assert!(
            answer_has_ip(
                name,
                "10.96.0.10",
                "Server: 10.96.0.10\n** server can't find x: NXDOMAIN"
            )
            .is_err()
        );
    }
}
