//! Seed 003's grader (`request-evaluation.sh task-05`), criterion by criterion and with the
//! seed's points: 100 in all. The endpoint checks run the seed's own commands,
//! `kubectl exec -n task-05 counter-app-0 -- curl -s ...`.

use serde_json::Value;

use super::{Outcome, failed};
use crate::verify::cluster::Cluster;
use crate::verify::report::Check;

const STATEFULSET: &str = "counter-app";
const SERVICE: &str = "counter-service";

pub async fn verify(cluster: &Cluster) -> Vec<Check> {
    let set = cluster.statefulsets().get_opt(STATEFULSET).await;
    let spec = match &set {
        Ok(Some(set)) => set.spec.clone(),
        _ => None,
    };
    let exists = match &set {
        Ok(Some(_)) => Ok(format!("statefulset {STATEFULSET}")),
        Ok(None) => Err(format!(
            "no statefulset {STATEFULSET} in {}",
            cluster.namespace
        )),
        Err(e) => Err(e.to_string()),
    };
    let replicas = match spec.as_ref().and_then(|s| s.replicas) {
        Some(2) => Ok("replicas: 2".to_string()),
        other => Err(format!("replicas: {other:?}, not 2")),
    };
    let claims = match spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
    {
        Some(templates) if !templates.is_empty() => Ok(format!(
            "volumeClaimTemplates: {}",
            templates
                .iter()
                .filter_map(|t| t.metadata.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => Err("no volumeClaimTemplates: the pods' data does not outlive them".into()),
    };
    let increment = increment(cluster).await;
    let count = match &increment {
        Ok(after) => count(cluster, *after).await,
        Err(_) => count(cluster, -1).await,
    };
    vec![
        Check::new("StatefulSet exists", 15, exists),
        Check::new("2 replicas", 10, replicas),
        Check::new("All pods running", 10, all_running(cluster).await),
        Check::new("Volume claim templates", 5, claims),
        Check::new("Headless service exists", 10, headless(cluster).await),
        Check::new(
            "Counter increment endpoint",
            10,
            increment.map(|n| format!("POST /increment on counter-app-0: count {n}")),
        ),
        Check::new("Counter get value endpoint", 10, count),
        Check::new(
            "Pod-0 readiness check",
            10,
            ready(cluster, "counter-app-0").await,
        ),
        Check::new(
            "Pod-1 readiness check",
            20,
            ready(cluster, "counter-app-1").await,
        ),
    ]
}

async fn all_running(cluster: &Cluster) -> Outcome {
    let pods = cluster.pods_matching("app=counter").await.map_err(failed)?;
    let phases: Vec<String> = pods
        .iter()
        .map(|(name, pod)| {
            format!(
                "{name}: {}",
                pod.status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default()
            )
        })
        .collect();
    let running = pods
        .values()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .count();
    if running == 2 && pods.len() == 2 {
        Ok(phases.join(", "))
    } else {
        Err(format!(
            "pods app=counter: {}",
            if phases.is_empty() {
                "none".into()
            } else {
                phases.join(", ")
            }
        ))
    }
}

async fn headless(cluster: &Cluster) -> Outcome {
    let service = cluster
        .services()
        .get_opt(SERVICE)
        .await
        .map_err(|e| e.to_string())?;
    let cluster_ip = service
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.cluster_ip.clone());
    match (service, cluster_ip.as_deref()) {
        (None, _) => Err(format!("no service {SERVICE}")),
        (Some(_), Some("None")) => Ok(format!("service {SERVICE}, clusterIP: None")),
        (Some(_), other) => Err(format!(
            "service {SERVICE} is not headless (clusterIP {other:?})"
        )),
    }
}

/// `kubectl exec -n task-05 POD -- curl -s http://localhost:8080PATH [-X POST]`, as JSON.
async fn curl(cluster: &Cluster, pod: &str, method: &str, path: &str) -> Result<Value, String> {
    let url = format!("http://localhost:8080{path}");
    let mut command = vec!["curl", "-s"];
    if method != "GET" {
        command.extend(["-X", method]);
    }
    command.push(&url);
    let out = cluster.exec(pod, None, &command).await.map_err(failed)?;
    serde_json::from_str(&out.stdout).map_err(|_| {
        format!(
            "{}: curl -s {method} {path}: {:?}{}",
            pod,
            out.stdout.trim(),
            out.stderr.trim()
        )
    })
}

async fn increment(cluster: &Cluster) -> Result<i64, String> {
    let json = curl(cluster, "counter-app-0", "POST", "/increment").await?;
    match json["count"].as_i64() {
        Some(n)
            if json["message"] == "Counter incremented" && json["pod_name"] == "counter-app-0" =>
        {
            Ok(n)
        }
        _ => Err(format!("POST /increment answered {json}")),
    }
}

async fn count(cluster: &Cluster, expected: i64) -> Outcome {
    let json = curl(cluster, "counter-app-0", "GET", "/count").await?;
    match json["count"].as_i64() {
        Some(n) if json["pod_name"] == "counter-app-0" && (expected < 0 || n == expected) => {
            Ok(format!("GET /count: {json}"))
        }
        _ => Err(format!(
            "GET /count answered {json}, expected count {expected}"
        )),
    }
}

async fn ready(cluster: &Cluster, pod: &str) -> Outcome {
    let json = curl(cluster, pod, "GET", "/ready").await?;
    if json["status"] == "ready" && json["pod_name"] == pod {
        Ok(format!("GET /ready: {json}"))
    } else {
        Err(format!("GET /ready answered {json}"))
    }
}
