//! Seed 001 §2: the cache API on Redis with AOF. The seed's keys written and read back with its
//! JSON, `redis-0`'s stable DNS name, and `redis-0` deleted: back with the same PVC and every
//! key still there.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Outcome, backend_deleted_under_api, failed, not_run, resolves_from_a_pod, run_tag};
use crate::verify::cluster::Cluster;
use crate::verify::report::Check;

const SERVICE: &str = "cache-api:8000";
const API_PODS: &str = "app=cache-api";
/// The seed's commands: `curl -X POST http://localhost:8000/cache/mykey/myvalue` and two more.
const SEED_KEYS: [(&str, &str); 3] = [
    ("mykey", "myvalue"),
    ("username", "alice"),
    ("session", "abc123"),
];

pub async fn verify(cluster: &Cluster) -> Vec<Check> {
    let health = health(cluster).await;
    // This run's own key too: written just before redis-0 goes, so AOF must have it.
    let tag = run_tag();
    let own_key = format!("verify-{tag}");
    let mut keys: Vec<(String, String)> = SEED_KEYS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    keys.push((own_key, tag));
    let written = write_and_read(cluster, &keys).await;
    let listed = match &written {
        Ok(_) => listed(cluster).await,
        Err(why) => not_run(why),
    };
    let ns = &cluster.namespace;
    let dns = resolves_from_a_pod(
        cluster,
        &format!("redis-0.redis-headless.{ns}.svc.cluster.local"),
        "redis-0",
    )
    .await;

    let keys = &keys;
    let (survived, reconnected) = backend_deleted_under_api(
        cluster,
        ("redis-0", "redis-storage"),
        (API_PODS, "cache-api"),
        written.clone().map(|_| {
            move || async move {
                for (key, value) in keys {
                    let answer = cluster
                        .service_http(SERVICE, "GET", &format!("/cache/{key}"), None)
                        .await
                        .map_err(failed)?;
                    if answer.json().map(|j| j["value"] == value.as_str()) != Some(true) {
                        return Err(format!("GET /cache/{key}: {}", answer.brief()));
                    }
                }
                Ok(format!("all {} keys still there (AOF)", keys.len()))
            }
        }),
    )
    .await;
    vec![
        Check::new("GET /health: healthy, Redis connected", 10, health),
        Check::new(
            "the seed's keys stored and read back with its JSON",
            20,
            written,
        ),
        Check::new("GET /cache lists the keys", 10, listed),
        Check::new("redis-0.redis-headless resolves from a pod", 15, dns),
        Check::new(
            "redis-0 deleted: back with the same PVC, every key still there (AOF)",
            30,
            survived,
        ),
        Check::new(
            "the API pods reconnected without restarting",
            15,
            reconnected,
        ),
    ]
}

async fn health(cluster: &Cluster) -> Outcome {
    let answer = cluster
        .service_http(SERVICE, "GET", "/health", None)
        .await
        .map_err(failed)?;
    let json = answer.json().unwrap_or(Value::Null);
    if answer.status == 200 && json["status"] == "healthy" {
        Ok(answer.body.trim().to_string())
    } else {
        Err(answer.brief())
    }
}

async fn write_and_read(cluster: &Cluster, keys: &[(String, String)]) -> Outcome {
    for (key, value) in keys {
        let path = format!("/cache/{key}/{value}");
        let stored = cluster
            .service_http(SERVICE, "POST", &path, None)
            .await
            .map_err(failed)?;
        let json = stored.json().unwrap_or(Value::Null);
        if !stored.ok()
            || json["key"] != key.as_str()
            || json["value"] != value.as_str()
            || json["status"] != "stored"
        {
            return Err(format!("POST {path}: {}", stored.brief()));
        }
        let path = format!("/cache/{key}");
        let read = cluster
            .service_http(SERVICE, "GET", &path, None)
            .await
            .map_err(failed)?;
        let json = read.json().unwrap_or(Value::Null);
        if read.status != 200 || json["value"] != value.as_str() || json["status"] != "found" {
            return Err(format!("GET {path}: {}", read.brief()));
        }
    }
    Ok(format!(
        "{} keys: POST answered \"stored\", GET \"found\" with the value",
        keys.len()
    ))
}

async fn listed(cluster: &Cluster) -> Outcome {
    let mut keys = BTreeSet::new();
    let mut path = "/cache?limit=1000".to_string();
    loop {
        let answer = cluster
            .service_http(SERVICE, "GET", &path, None)
            .await
            .map_err(failed)?;
        let json = answer
            .json()
            .filter(|_| answer.ok())
            .ok_or_else(|| format!("GET {path}: {}", answer.brief()))?;
        keys.extend(
            json["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(String::from)),
        );
        match json["next_cursor"].as_str() {
            Some(cursor) => path = format!("/cache?limit=1000&cursor={cursor}"),
            None => break,
        }
    }
    let missing: Vec<_> = SEED_KEYS
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| !keys.contains(*k))
        .collect();
    if missing.is_empty() {
        Ok(format!(
            "{} keys listed, the seed's three among them",
            keys.len()
        ))
    } else {
        Err(format!("GET /cache does not list {missing:?}"))
    }
}
