//! Seed 002: the Helm chart (deploy/helm/counter). The release is found by its labels; the
//! checks read `helm test`'s result from Helm's own release record, restart the pods to watch
//! the pod management policy at work, roll a canary with `partition`, and scale down to see
//! what the PVC retention policy keeps. Replica counts, partition and template are put back.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use base64::Engine;
use serde_json::{Value, json};

use super::{Outcome, failed, not_run, run_tag};
use crate::demo::poll;
use crate::verify::cluster::{Cluster, POD_READY_WITHIN, state_of};
use crate::verify::objects::{Meta, Pod, Secret, StatefulSet, StatefulSetSpec, Time};
use crate::verify::report::Check;

/// The chart's release: its name and its StatefulSet.
pub struct Release {
    pub name: String,
    pub set: StatefulSet,
}

/// The StatefulSet Helm installed from this chart (`helm.sh/chart: counter-…`).
pub async fn release(cluster: &Cluster) -> Result<Release> {
    let sets = cluster
        .statefulsets()
        .list("app.kubernetes.io/managed-by=Helm")
        .await?;
    let set = sets
        .into_iter()
        .find(|s| {
            s.labels()
                .get("helm.sh/chart")
                .is_some_and(|c| c.starts_with("counter-"))
        })
        .with_context(|| format!("no release of the counter chart in {}", cluster.namespace))?;
    let name = set
        .labels()
        .get("app.kubernetes.io/instance")
        .cloned()
        .context("the StatefulSet has no app.kubernetes.io/instance label")?;
    Ok(Release { name, set })
}

pub async fn verify(cluster: &Cluster) -> Vec<Check> {
    let release = match release(cluster).await {
        Ok(release) => release,
        Err(e) => {
            let why = failed(e);
            return vec![
                Check::new("release installed, every pod ready", 15, Err(why.clone())),
                Check::new("helm test passed", 15, not_run(&why)),
                Check::new("pods start as podManagementPolicy says", 20, not_run(&why)),
                Check::new(
                    "canary: partition N updates only ordinals >= N",
                    25,
                    not_run(&why),
                ),
                Check::new(
                    "scale-down keeps PVCs as the retention policy says",
                    25,
                    not_run(&why),
                ),
            ];
        }
    };
    let set_name = release.set.name();
    let ready = ready(cluster, &set_name).await;
    let tested = helm_test(cluster, &release.name).await;
    let ordered = start_order(cluster, &set_name).await;
    let canary = canary(cluster, &set_name).await;
    let retained = retention(cluster, &set_name).await;
    vec![
        Check::new(
            "release installed, every pod ready",
            15,
            ready.map(|d| format!("release {}: {d}", release.name)),
        ),
        Check::new("helm test passed", 15, tested),
        Check::new("pods start as podManagementPolicy says", 20, ordered),
        Check::new("canary: partition N updates only ordinals >= N", 25, canary),
        Check::new(
            "scale-down keeps PVCs as the retention policy says",
            25,
            retained,
        ),
    ]
}

async fn ready(cluster: &Cluster, name: &str) -> Outcome {
    let set = cluster
        .statefulsets()
        .get(name)
        .await
        .map_err(|e| e.to_string())?;
    let want = set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let ready = set
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    if ready == want {
        Ok(format!("statefulset {name}: {ready}/{want} ready"))
    } else {
        Err(format!("statefulset {name}: {ready}/{want} ready"))
    }
}

/// `helm test` records each test hook's last run in the release (a Secret
/// `sh.helm.release.v1.NAME.vN`: base64 of gzip of JSON).
async fn helm_test(cluster: &Cluster, release: &str) -> Outcome {
    let secrets = cluster
        .secrets()
        .list(&format!("owner=helm,name={release}"))
        .await
        .map_err(|e| e.to_string())?;
    let latest = secrets
        .into_iter()
        .max_by_key(|s| {
            s.labels()
                .get("version")
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        })
        .ok_or_else(|| format!("no Helm release record for {release}"))?;
    let record = decode_release(&latest).map_err(failed)?;
    let tests: Vec<&Value> = record["hooks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| {
            h["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e == "test"))
        })
        .collect();
    if tests.is_empty() {
        return Err("the chart has no test hook".into());
    }
    let mut results = Vec::new();
    for hook in &tests {
        let phase = hook["last_run"]["phase"].as_str().unwrap_or("");
        let name = hook["name"].as_str().unwrap_or("?");
        match phase {
            "Succeeded" => results.push(format!(
                "{name}: Succeeded at {}",
                hook["last_run"]["completed_at"].as_str().unwrap_or("?")
            )),
            "" | "Unknown" => {
                return Err(format!(
                    "{name} has not run: run `helm test {release}` first"
                ));
            }
            other => return Err(format!("{name}: {other}")),
        }
    }
    Ok(results.join("; "))
}

fn decode_release(secret: &Secret) -> Result<Value> {
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get("release"))
        .context("the release Secret has no data.release")?;
    // Base64 twice: the API's encoding of Secret data, around Helm's own.
    let base64 = base64::engine::general_purpose::STANDARD;
    let helm = base64.decode(data).context("data.release is not base64")?;
    let gzipped = base64
        .decode(&helm)
        .context("data.release is not Helm's base64")?;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&gzipped[..])
        .read_to_end(&mut json)
        .context("data.release is not gzip")?;
    serde_json::from_slice(&json).map_err(|e| anyhow!("the release is not JSON: {e}"))
}

fn ordinal(pod: &str) -> u32 {
    pod.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u32::MAX)
}

/// The set's pods, ordered by ordinal.
async fn pods_of(cluster: &Cluster, set: &str) -> Result<Vec<Pod>> {
    let selector = cluster.statefulset_selector(set).await?;
    let mut pods: Vec<Pod> = cluster
        .pods_matching(&selector)
        .await?
        .into_values()
        .collect();
    pods.sort_by_key(|p| ordinal(&p.name()));
    Ok(pods)
}

async fn wait_all_ready(
    cluster: &Cluster,
    set: &str,
    replicas: i32,
    old_uids: &[String],
) -> Result<Vec<Pod>> {
    poll::until(POD_READY_WITHIN, || async {
        let pods = pods_of(cluster, set).await.ok()?;
        let fresh = pods
            .iter()
            .all(|p| !old_uids.contains(&p.uid().unwrap_or_default()));
        (pods.len() == replicas as usize && fresh && pods.iter().all(|p| state_of(p).ready))
            .then_some(pods)
    })
    .await
    .with_context(|| format!("{set}: not {replicas} ready pods within {POD_READY_WITHIN:?}"))
}

fn created(pod: &Pod) -> Option<&Time> {
    pod.metadata.creation_timestamp.as_ref()
}

fn became_ready(pod: &Pod) -> Option<&Time> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?
        .last_transition_time
        .as_ref()
}

/// Every pod deleted at once; the controller re-creates them one at a time, each after the
/// previous is ready (OrderedReady), or all together (Parallel). Seen in the timestamps.
async fn start_order(cluster: &Cluster, set: &str) -> Outcome {
    let (spec, replicas) = spec_with_two_replicas(cluster, set, "start order").await?;
    let policy = spec
        .pod_management_policy
        .unwrap_or_else(|| "OrderedReady".into());
    let before = pods_of(cluster, set).await.map_err(failed)?;
    let old: Vec<String> = before.iter().filter_map(|p| p.uid()).collect();
    let selector = cluster.statefulset_selector(set).await.map_err(failed)?;
    cluster
        .pods()
        .delete_matching(&selector)
        .await
        .map_err(|e| e.to_string())?;
    let pods = wait_all_ready(cluster, set, replicas, &old)
        .await
        .map_err(failed)?;
    let mut seen = Vec::new();
    for pair in pods.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        let (Some(prev_ready), Some(next_created)) = (became_ready(prev), created(next)) else {
            return Err("a pod without timestamps".into());
        };
        let waited = next_created.0 >= prev_ready.0;
        let gap = (next_created.0 - prev_ready.0).as_seconds_f64().abs();
        seen.push(format!(
            "{} created {gap:.0} s {} {} was ready",
            next.name(),
            if waited { "after" } else { "before" },
            prev.name()
        ));
        let expected = policy != "Parallel";
        if waited != expected {
            return Err(format!(
                "podManagementPolicy {policy}, but {}",
                seen.join("; ")
            ));
        }
    }
    let created_at: Vec<_> = pods.iter().filter_map(created).map(|t| t.0).collect();
    let detail = match (created_at.iter().max(), created_at.iter().min()) {
        (Some(last), Some(first)) if policy == "Parallel" => format!(
            "Parallel: all {} pods created within {:.0} s, none waiting for another to be ready",
            pods.len(),
            (*last - *first).as_seconds_f64()
        ),
        _ => format!("{policy}: {}", seen.join("; ")),
    };
    Ok(detail)
}

/// The set's spec and replica count, when it has at least two replicas (`what` needs them).
async fn spec_with_two_replicas(
    cluster: &Cluster,
    set: &str,
    what: &str,
) -> Result<(StatefulSetSpec, i32), String> {
    let spec = cluster
        .statefulsets()
        .get(set)
        .await
        .map_err(|e| e.to_string())?
        .spec
        .unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    if replicas < 2 {
        return Err(format!("{replicas} replica: {what} needs at least 2"));
    }
    Ok((spec, replicas))
}

fn revision(pod: &Pod) -> String {
    pod.labels()
        .get("controller-revision-hash")
        .cloned()
        .unwrap_or_default()
}

/// `partition: 1` and a changed pod template: only ordinals >= 1 move to the new revision.
/// Then the partition and the template are put back.
async fn canary(cluster: &Cluster, set: &str) -> Outcome {
    let sets = cluster.statefulsets();
    let (spec, replicas) = spec_with_two_replicas(cluster, set, "a canary").await?;
    let strategy = spec.update_strategy.unwrap_or_default();
    if strategy.type_.as_deref() == Some("OnDelete") {
        return Err("updateStrategy OnDelete: partition does not apply".into());
    }
    let original_partition = strategy
        .rolling_update
        .and_then(|r| r.partition)
        .unwrap_or(0);
    let partition = 1;
    let before: Vec<String> = pods_of(cluster, set)
        .await
        .map_err(failed)?
        .iter()
        .map(revision)
        .collect();
    let tag = run_tag();
    let patch = json!({"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}},
        "template": {"metadata": {"annotations": {"statelab.dev/verify-canary": tag}}}
    }});
    let generation = sets
        .merge_patch(set, &patch)
        .await
        .map_err(|e| e.to_string())?
        .metadata
        .generation;
    let outcome = poll::until(POD_READY_WITHIN, || async {
        let set = sets.get(set).await.ok()?;
        // Until the controller has seen the patch, updateRevision is still the old one.
        if set.status.as_ref()?.observed_generation < generation {
            return None;
        }
        let status = set.status?;
        let update = status.update_revision?;
        let pods = pods_of(cluster, &set.metadata.name?).await.ok()?;
        let updated: Vec<bool> = pods.iter().map(|p| revision(p) == update).collect();
        let settled = pods.len() == replicas as usize && pods.iter().all(|p| state_of(p).ready);
        let canary_done = updated.iter().enumerate().skip(partition).all(|(_, u)| *u);
        (settled && canary_done).then(|| (update, pods.iter().map(revision).collect::<Vec<_>>()))
    })
    .await;
    // Put the partition and the template back (the annotation removed), and let it settle.
    let restore = json!({"spec": {
        "updateStrategy": {"rollingUpdate": {"partition": original_partition}},
        "template": {"metadata": {"annotations": {"statelab.dev/verify-canary": null}}}
    }});
    let restored = sets.merge_patch(set, &restore).await;
    let (update, after) = outcome.ok_or_else(|| {
        format!("ordinals >= {partition} not on the new revision within {POD_READY_WITHIN:?}")
    })?;
    restored
        .map_err(|e| format!("the canary rolled, but putting the partition back failed: {e}"))?;
    let _ = poll::until(POD_READY_WITHIN, || async {
        let set = sets.get(set).await.ok()?;
        let status = set.status?;
        (status.update_revision == status.current_revision
            && status.ready_replicas == Some(replicas))
        .then_some(())
    })
    .await;
    let untouched = (0..partition).all(|i| after[i] == before[i] && after[i] != update);
    if untouched {
        Ok(format!(
            "partition {partition}: pods {partition}..{} on the new revision {update}, pod 0 kept {}; partition put back to {original_partition}",
            replicas - 1,
            after[0]
        ))
    } else {
        Err(format!(
            "partition {partition}: revisions before {before:?}, after {after:?}, new {update}"
        ))
    }
}

/// Scaled down by one: the last ordinal's PVC stays (whenScaled: Retain, the default) or goes
/// (Delete); scaled back up, the pod gets its own PVC back when it was kept.
async fn retention(cluster: &Cluster, set: &str) -> Outcome {
    let sets = cluster.statefulsets();
    let (spec, replicas) = spec_with_two_replicas(cluster, set, "scaling down").await?;
    let template = spec
        .volume_claim_templates
        .and_then(|t| t.into_iter().next())
        .and_then(|t| t.metadata.name)
        .ok_or("no volumeClaimTemplates: nothing to retain")?;
    let when_scaled = spec
        .persistent_volume_claim_retention_policy
        .and_then(|p| p.when_scaled)
        .unwrap_or_else(|| "Retain".into());
    let last = format!("{set}-{}", replicas - 1);
    let claim = format!("{template}-{last}");
    let uid_before = cluster
        .claims()
        .get(&claim)
        .await
        .map_err(|e| format!("PVC {claim}: {e}"))?
        .uid();
    let scale = |n: i32| {
        let sets = sets.clone();
        async move { sets.scale(set, n).await.map_err(|e| e.to_string()) }
    };
    scale(replicas - 1).await?;
    let gone = poll::until(POD_READY_WITHIN, || async {
        matches!(cluster.pods().get_opt(&last).await, Ok(None)).then_some(())
    })
    .await;
    // Give the controller a moment to apply a Delete policy before looking.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kept = cluster
        .claims()
        .get_opt(&claim)
        .await
        .map_err(|e| e.to_string())?
        .filter(|c| c.metadata.deletion_timestamp.is_none());
    scale(replicas).await?;
    let back = cluster.wait_pod_ready(&last, None).await.map_err(failed)?;
    gone.ok_or_else(|| format!("{last} still there after scaling to {}", replicas - 1))?;
    let uid_after = cluster
        .claims()
        .get(&claim)
        .await
        .map_err(|e| e.to_string())?
        .uid();
    match (when_scaled.as_str(), kept) {
        ("Retain", Some(_)) if uid_after == uid_before => Ok(format!(
            "whenScaled Retain: {claim} kept while {last} was gone; {} came back with the same PVC",
            back.name
        )),
        ("Retain", Some(_)) => Err(format!("{claim} kept, but {last} came back with a new PVC")),
        ("Retain", None) => Err(format!(
            "whenScaled Retain, but {claim} was deleted on scale-down"
        )),
        (_, None) => Ok(format!(
            "whenScaled {when_scaled}: {claim} deleted on scale-down, a new one on scale-up"
        )),
        (_, Some(_)) => Err(format!(
            "whenScaled {when_scaled}, but {claim} stayed on scale-down"
        )),
    }
}
