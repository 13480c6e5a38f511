//! Seed 001, mistake 1: "Using Deployment for a Database".

use k8s_openapi::api::core::v1::Container;

use crate::lint::image;
use crate::lint::objects::{Object, Resource};
use crate::lint::report::{Rule, Severity};
use crate::lint::rules::Findings;
use crate::lint::workload::workloads;

pub const DATABASE_AS_DEPLOYMENT: Rule = Rule {
    id: "database-as-deployment",
    severity: Severity::Error,
    summary: "a database, cache or broker runs in a Deployment, ReplicaSet or \
        ReplicationController, with its data on a shared persistent volume or on none",
    explanation: "A Deployment's pods are interchangeable: \"Pods get random names → DNS breaks; \
        No automatic PVC creation → Data lost on restart; No stable identity → Can't connect to \
        specific instances\" (seed 001, mistake 1). With one PVC in the pod template, every \
        replica, and during a rolling update the old and the new pod at once, mount the same \
        volume: two database processes on one data directory corrupt it, or the new pod hangs \
        waiting for a volume the old one still holds. Found when a Deployment or ReplicaSet runs \
        a well-known database, cache or broker image (postgres, mysql, mariadb, mongo, redis, \
        valkey, rabbitmq, kafka, nats, etcd, cassandra, elasticsearch, ...) and mounts a \
        persistent volume (a PVC, hostPath, network filesystem, or a disk such as \
        gcePersistentDisk, awsElasticBlockStore, cinder or a CSI volume). A database whose data \
        directory (its image's default, or the one PGDATA, `--datadir` and the like name) is on an \
        emptyDir or on no volume at all loses everything with the pod: a warning. A cache (Redis, \
        NATS) that keeps nothing on disk is fine in a Deployment. One replica with `strategy: \
        Recreate` never runs the old and the new pod together: a warning that says so.",
    fix: "Run it as a StatefulSet with volumeClaimTemplates (one PVC per pod) and a headless \
        Service, and connect through the pods' stable names (postgres-0.postgres-headless).",
};

pub fn check(objects: &[Object], out: &mut Findings) {
    let kinds = ["Deployment", "ReplicaSet", "ReplicationController"];
    for w in workloads(objects).filter(|w| kinds.contains(&w.kind())) {
        for c in w.app_containers() {
            let Some(reference) = c.container.image.as_deref() else {
                continue;
            };
            let Some(database) = image::database(reference) else {
                continue;
            };
            let data_dirs = data_dirs(c.container);
            let at_data = |mount_path: &str| {
                database.holds_data(mount_path) || data_dirs.iter().any(|d| covers(mount_path, d))
            };
            let mounts = c.container.volume_mounts.as_deref().unwrap_or_default();
            // A persistent volume at the data directory first, then any persistent volume.
            let persistent = mounts
                .iter()
                .filter(|m| w.storage(&m.name).is_persistent())
                .max_by_key(|m| at_data(&m.mount_path));
            let image_path = c.path.key("image");
            let Some(mount) = persistent else {
                // emptyDir and no volume at all are the same: the data dies with the pod.
                if database.cache {
                    continue;
                }
                let place = mounts
                    .iter()
                    .find(|m| at_data(&m.mount_path))
                    .map_or("in the container's own filesystem".to_owned(), |m| {
                        format!("on an emptyDir at {}", m.mount_path)
                    });
                let message = format!(
                    "{} runs {reference} with its data {place}: every restart, rollout or \
                     reschedule starts an empty database",
                    w.kind()
                );
                out.add(&DATABASE_AS_DEPLOYMENT, w.object, &image_path, message)
                    .with_severity(Severity::Warning)
                    .with_fix(
                        "Run it as a StatefulSet with volumeClaimTemplates, so its data outlives \
                         the pod (or, for a throwaway cache, say so with a suppression and a reason).",
                    );
                continue;
            };
            let storage = w.storage(&mount.name).describe();
            let replicas = w.replicas.unwrap_or(1);
            if replicas == 1 && recreate(w.object) {
                let message = format!(
                    "Deployment runs {reference} with one replica, strategy Recreate and {storage} at \
                     {}: the old pod stops before the new one starts, so the data is never shared, \
                     but the pod has no stable name and scaling past 1 puts several database \
                     processes on one volume",
                    mount.mount_path
                );
                out.add(&DATABASE_AS_DEPLOYMENT, w.object, &image_path, message)
                    .with_severity(Severity::Warning);
                continue;
            }
            let shares = if replicas > 1 {
                format!("its {replicas} replicas share")
            } else if w.kind() == "Deployment" {
                "during a rollout the old and the new pod share".to_owned()
            } else {
                "a replacement pod may start while the old one still holds".to_owned()
            };
            let message = format!(
                "{} runs {reference} and mounts {storage} at {}: its pods get random names, and {shares} that data",
                w.kind(),
                mount.mount_path
            );
            out.add(&DATABASE_AS_DEPLOYMENT, w.object, &image_path, message);
        }
    }
}

/// A Deployment whose strategy is `Recreate`: the old pod is gone before the new one starts.
fn recreate(object: &Object) -> bool {
    matches!(&object.resource, Resource::Deployment(d) if d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate"))
}

/// Data directories a container names itself: `PGDATA`, `*_DATA_DIR`/`*_DATADIR` variables and
/// `--datadir`, `--dbpath`, `--data-dir`, `--dir` flags.
fn data_dirs(container: &Container) -> Vec<String> {
    let mut dirs = Vec::new();
    for env in container.env.iter().flatten() {
        let name = env.name.to_ascii_uppercase();
        let names_data =
            name == "PGDATA" || name.ends_with("DATA_DIR") || name.ends_with("DATADIR");
        if let Some(value) = env
            .value
            .as_deref()
            .filter(|v| names_data && v.starts_with('/'))
        {
            dirs.push(value.trim_end_matches('/').to_owned());
        }
    }
    let words: Vec<&str> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .flat_map(|a| a.split_whitespace())
        .collect();
    const FLAGS: &[&str] = &["--datadir", "--dbpath", "--data-dir", "--data_dir", "--dir"];
    for (i, word) in words.iter().enumerate() {
        let value = match word.split_once('=') {
            Some((flag, value)) if FLAGS.contains(&flag) => Some(value),
            None if FLAGS.contains(word) => words.get(i + 1).copied(),
            _ => None,
        };
        if let Some(value) = value.filter(|v| v.starts_with('/')) {
            dirs.push(value.trim_end_matches('/').to_owned());
        }
    }
    dirs
}

/// A mount at `mount` holds `dir` (or lies inside it).
fn covers(mount: &str, dir: &str) -> bool {
    let mount = mount.trim_end_matches('/');
    let within =
        |a: &str, b: &str| a == b || a.strip_prefix(b).is_some_and(|rest| rest.starts_with('/'));
    within(dir, mount) || within(mount, dir)
}
