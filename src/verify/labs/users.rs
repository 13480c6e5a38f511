//! Seed 001 §1: the users API on a PostgreSQL StatefulSet. The seed's curl sequence with its
//! JSON, the stable DNS name of `postgres-0`, and the critical experiment: `postgres-0`
//! deleted comes back with the same PVC and every user, while the API pods reconnect on their
//! own.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Outcome, backend_deleted_under_api, failed, resolves_from_a_pod};
use crate::verify::cluster::{Answer, Cluster};
use crate::verify::report::Check;

const SERVICE: &str = "user-api:8000";
const API_PODS: &str = "app=user-api";
/// The seed's three users, created with its exact commands.
const SEED_USERS: [(&str, &str); 3] = [
    ("Alice", "alice@example.com"),
    ("Bob", "bob@example.com"),
    ("Charlie", "charlie@example.com"),
];

pub async fn verify(cluster: &Cluster) -> Vec<Check> {
    let health = health(cluster).await;
    let sequence = curl_sequence(cluster).await;
    let ns = &cluster.namespace;
    let dns = resolves_from_a_pod(
        cluster,
        &format!("postgres-0.postgres-headless.{ns}.svc.cluster.local"),
        "postgres-0",
    )
    .await;

    let before = match all_emails(cluster).await {
        Err(why) => Err(format!("the users could not be listed before: {why}")),
        Ok(before) if before.is_empty() => Err("no user to lose".to_string()),
        Ok(before) => Ok(before),
    };
    let (survived, reconnected) = backend_deleted_under_api(
        cluster,
        ("postgres-0", "postgres-storage"),
        (API_PODS, "user-api"),
        before.map(|before| {
            move || {
                let before = before.clone();
                async move {
                    let after = all_emails(cluster).await?;
                    let missing: Vec<_> = before.difference(&after).collect();
                    if missing.is_empty() {
                        Ok(format!("all {} users still there", before.len()))
                    } else {
                        Err(format!(
                            "{} of {} users missing, e.g. {:?}",
                            missing.len(),
                            before.len(),
                            missing[0]
                        ))
                    }
                }
            }
        }),
    )
    .await;

    vec![
        Check::new("GET /health: healthy, database connected", 10, health),
        Check::new(
            "the seed's curl sequence: Alice, Bob, Charlie created and listed",
            25,
            sequence,
        ),
        Check::new("postgres-0.postgres-headless resolves from a pod", 15, dns),
        Check::new(
            "postgres-0 deleted: back with the same PVC, every user still there",
            30,
            survived,
        ),
        Check::new(
            "the API pods reconnected without restarting",
            20,
            reconnected,
        ),
    ]
}

async fn get(cluster: &Cluster, path: &str) -> Result<Answer, String> {
    cluster
        .service_http(SERVICE, "GET", path, None)
        .await
        .map_err(failed)
}

async fn health(cluster: &Cluster) -> Outcome {
    let answer = get(cluster, "/health").await?;
    let json = answer.json().unwrap_or(Value::Null);
    if answer.status == 200 && json["status"] == "healthy" && json["database"] == "connected" {
        Ok(answer.body.trim().to_string())
    } else {
        Err(answer.brief())
    }
}

/// `curl -X POST "http://localhost:8000/users?name=Alice&email=alice@example.com"` and the
/// others, then `curl http://localhost:8000/users`. A user an earlier run created answers 409
/// and must then be in the list.
async fn curl_sequence(cluster: &Cluster) -> Outcome {
    let mut created = Vec::new();
    for (name, email) in SEED_USERS {
        let path = format!("/users?name={name}&email={email}");
        let answer = cluster
            .service_http(SERVICE, "POST", &path, None)
            .await
            .map_err(failed)?;
        let json = answer.json().unwrap_or(Value::Null);
        match answer.status {
            201 | 200 => {
                let user = &json["user"];
                if user["name"] != name
                    || user["email"] != email
                    || !user["id"].is_i64()
                    || !user["created_at"].is_string()
                    || json["message"] != "User created successfully"
                {
                    return Err(format!(
                        "POST {path}: not the seed's JSON: {}",
                        answer.brief()
                    ));
                }
                created.push(name);
            }
            409 => {}
            _ => return Err(format!("POST {path}: {}", answer.brief())),
        }
    }
    let answer = get(cluster, "/users").await?;
    let json = answer.json().unwrap_or(Value::Null);
    let listed: BTreeSet<&str> = json["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["email"].as_str())
        .collect();
    let missing: Vec<_> = SEED_USERS
        .iter()
        .filter(|(_, e)| !listed.contains(e))
        .collect();
    if !answer.ok() || json["count"].as_u64() != Some(listed.len() as u64) || !missing.is_empty() {
        return Err(format!(
            "GET /users: {} (missing {missing:?})",
            answer.brief()
        ));
    }
    Ok(if created.len() == SEED_USERS.len() {
        format!(
            "created {created:?}; GET /users lists them (count {})",
            listed.len()
        )
    } else {
        format!("created {created:?}, the others already there; GET /users lists all three")
    })
}

/// Every user's email, paged with after_id.
async fn all_emails(cluster: &Cluster) -> Result<BTreeSet<String>, String> {
    let mut emails = BTreeSet::new();
    let mut after = 0;
    loop {
        let path = format!("/users?limit=1000&after_id={after}");
        let answer = get(cluster, &path).await?;
        let json = answer
            .json()
            .filter(|_| answer.ok())
            .ok_or_else(|| format!("GET {path}: {}", answer.brief()))?;
        let users = json["users"].as_array().cloned().unwrap_or_default();
        for user in &users {
            emails.insert(user["email"].as_str().unwrap_or_default().to_string());
            after = user["id"].as_i64().unwrap_or(after);
        }
        if users.len() < 1000 {
            return Ok(emails);
        }
    }
}
