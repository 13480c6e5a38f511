//! Seed 004: per-pod visit counters. Each pod counts only its own visits in the file on its
//! own volume (`kubectl exec pod/web-app-0 -- cat visits`), finds its peer by the headless
//! Service's DNS name, and keeps its count when the pod is deleted.

use super::{Outcome, backend_pod_survives, failed, resolves_in_pod};
use crate::verify::cluster::Cluster;
use crate::verify::report::Check;

const PORT: u16 = 5000;

pub async fn verify(cluster: &Cluster) -> Vec<Check> {
    let own = own_counts(cluster).await;
    let ns = &cluster.namespace;
    let dns = resolves_in_pod(
        cluster,
        "web-app-0",
        &format!("web-app-1.web-app.{ns}.svc.cluster.local"),
        "web-app-1",
    )
    .await;
    let kept = match visits(cluster, "web-app-0").await {
        Err(why) => Err(why),
        Ok(before) => {
            backend_pod_survives(cluster, "web-app-0", "web-app-vol", || async move {
                let after = visits(cluster, "web-app-0").await?;
                if after == before {
                    Ok(format!("cat visits: still {after}"))
                } else {
                    Err(format!("cat visits: {after}, was {before}"))
                }
            })
            .await
        }
    };
    vec![
        Check::new("each pod counts its own visits on its own volume", 35, own),
        Check::new("web-app-1.web-app resolves inside web-app-0", 25, dns),
        Check::new(
            "web-app-0 deleted: back with the same PVC and its count",
            40,
            kept,
        ),
    ]
}

/// `kubectl exec pod/POD -- cat visits`, as a number (an absent or empty file is 0).
async fn visits(cluster: &Cluster, pod: &str) -> Result<u64, String> {
    let out = cluster
        .exec(pod, None, &["cat", "visits"])
        .await
        .map_err(failed)?;
    let text = out.stdout.trim();
    if text.is_empty() && !out.success {
        return Err(format!("{pod}: cat visits: {}", out.stderr.trim()));
    }
    text.trim_end_matches('%').parse().or(if text.is_empty() {
        Ok(0)
    } else {
        Err(format!("{pod}: cat visits printed {text:?}"))
    })
}

async fn visit(cluster: &Cluster, pod: &str, times: u64) -> Result<(), String> {
    for _ in 0..times {
        let answer = cluster
            .pod_http(&format!("{pod}:{PORT}"), "GET", "/", None)
            .await
            .map_err(failed)?;
        if !answer.ok() {
            return Err(format!("GET / on {pod}: {}", answer.brief()));
        }
    }
    Ok(())
}

/// Three visits to web-app-0 and one to web-app-1: each file grows by its own pod's visits only.
async fn own_counts(cluster: &Cluster) -> Outcome {
    let (a0, b0) = (
        visits(cluster, "web-app-0").await?,
        visits(cluster, "web-app-1").await?,
    );
    visit(cluster, "web-app-0", 3).await?;
    visit(cluster, "web-app-1", 1).await?;
    let (a1, b1) = (
        visits(cluster, "web-app-0").await?,
        visits(cluster, "web-app-1").await?,
    );
    if (a1.wrapping_sub(a0), b1.wrapping_sub(b0)) == (3, 1) {
        Ok(format!(
            "3 visits to web-app-0: {a0} -> {a1}; 1 visit to web-app-1: {b0} -> {b1}"
        ))
    } else {
        Err(format!(
            "after 3 visits to web-app-0 and 1 to web-app-1: web-app-0 {a0} -> {a1}, web-app-1 {b0} -> {b1}"
        ))
    }
}
