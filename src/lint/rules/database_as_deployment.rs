//! Seed 001, mistake 1: "Using Deployment for a Database".

use crate::lint::image;
use crate::lint::objects::Object;
use crate::lint::report::{Rule, Severity};
use crate::lint::rules::Findings;
use crate::lint::workload::workloads;

pub const DATABASE_AS_DEPLOYMENT: Rule = Rule {
    id: "database-as-deployment",
    severity: Severity::Error,
    summary: "a database, cache or broker with persistent data runs in a Deployment or ReplicaSet",
    explanation: "A Deployment's pods are interchangeable: \"Pods get random names → DNS breaks; \
        No automatic PVC creation → Data lost on restart; No stable identity → Can't connect to \
        specific instances\" (seed 001, mistake 1). With one PVC in the pod template, every \
        replica, and during a rolling update the old and the new pod at once, mount the same \
        volume: two database processes on one data directory corrupt it, or the new pod hangs \
        waiting for a volume the old one still holds. Found when a Deployment or ReplicaSet runs \
        a well-known database, cache or broker image (postgres, mysql, mariadb, mongo, redis, \
        valkey, rabbitmq, kafka, nats, etcd, cassandra, elasticsearch, ...) and mounts a \
        persistent volume, or any volume at that image's data directory. A cache that keeps \
        nothing on disk is fine in a Deployment.",
    fix: "Run it as a StatefulSet with volumeClaimTemplates (one PVC per pod) and a headless \
        Service, and connect through the pods' stable names (postgres-0.postgres-headless).",
};

pub fn check(objects: &[Object], out: &mut Findings) {
    for w in workloads(objects).filter(|w| matches!(w.kind(), "Deployment" | "ReplicaSet")) {
        for c in w.app_containers() {
            let Some(reference) = c.container.image.as_deref() else {
                continue;
            };
            let Some(database) = image::database(reference) else {
                continue;
            };
            let evidence = c
                .container
                .volume_mounts
                .iter()
                .flatten()
                .find_map(|mount| {
                    let storage = w.storage(&mount.name);
                    if storage.is_persistent() {
                        Some(format!(
                            "mounts {} at {}",
                            storage.describe(),
                            mount.mount_path
                        ))
                    } else if database.holds_data(&mount.mount_path) {
                        Some(format!("keeps its data at {}", mount.mount_path))
                    } else {
                        None
                    }
                });
            if let Some(evidence) = evidence {
                let message = format!(
                    "{} runs {reference} and {evidence}: its pods get random names, and every \
                     replica (and, during a rollout, the old and the new pod) shares or loses that data",
                    w.kind()
                );
                out.add(
                    &DATABASE_AS_DEPLOYMENT,
                    w.object,
                    &c.path.key("image"),
                    message,
                );
            }
        }
    }
}
