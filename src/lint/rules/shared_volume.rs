//! Seed 001, mistake 6: "Wrong Access Mode for PVCs"; seed 000: the guestbook's SQLite file on
//! one volume shared by every replica ("database is locked").

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim};

use crate::lint::image;
use crate::lint::objects::{Object, Resource};
use crate::lint::report::{Rule, Severity};
use crate::lint::rules::Findings;
use crate::lint::source::Path;
use crate::lint::workload::{Storage, Workload, workloads};

pub const RWX_DATABASE_VOLUME: Rule = Rule {
    id: "rwx-database-volume",
    severity: Severity::Error,
    summary: "a database on a ReadWriteMany volume, or a file-backed volume shared read-write by \
        several replicas of a Deployment whose application is not built to share it",
    explanation: "\"Most databases can't handle multiple pods writing to the same volume \
        simultaneously\" (seed 001, mistake 6): ReadWriteMany lets a second database process \
        open the same data directory (a second replica, or the new pod of a rollout while the \
        old one still runs), and both corrupt it, or the file locks that should prevent it do \
        not work over network filesystems. The same goes for any file an application writes, \
        when a Deployment's replicas share one read-write volume: the guestbook's SQLite file \
        on one PVC works with one replica and fails with \"database is locked\" as soon as it is \
        scaled (seed 000). Found: a database image mounting a ReadWriteMany claim (template) or \
        a network filesystem, and a Deployment, ReplicaSet or ReplicationController with more \
        than one replica mounting a PVC, hostPath or network filesystem read-write. Web servers \
        reading shared content (nginx, httpd, caddy) and CMSes whose uploads are meant for \
        ReadWriteMany (WordPress, Drupal, Nextcloud) are not flagged.",
    fix: "Give each database pod its own ReadWriteOnce volume (a StatefulSet's \
        volumeClaimTemplates); move shared application state into a database server instead of \
        a file on a shared volume.",
};

pub fn check(objects: &[Object], out: &mut Findings) {
    // ReadWriteMany claims by name, built once: looking each mount up stays linear.
    let mut rwx_claims: HashMap<&str, Vec<&Object>> = HashMap::new();
    for o in objects {
        if let Resource::PersistentVolumeClaim(pvc) = &o.resource
            && is_rwx(pvc)
        {
            rwx_claims.entry(o.name.as_str()).or_default().push(o);
        }
    }
    for w in workloads(objects) {
        let mut reported = HashSet::new();
        database_on_shared_volume(&rwx_claims, &w, out, &mut reported);
        replicas_sharing_files(&w, out, &reported);
    }
}

fn is_rwx(claim: &PersistentVolumeClaim) -> bool {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_ref())
        .is_some_and(|modes| modes.iter().any(|m| m == "ReadWriteMany"))
}

/// A database container whose data volume other pods can open too.
fn database_on_shared_volume(
    rwx_claims: &HashMap<&str, Vec<&Object>>,
    w: &Workload,
    out: &mut Findings,
    reported: &mut HashSet<String>,
) {
    for c in w.app_containers() {
        let Some(reference) = c.container.image.as_deref() else {
            continue;
        };
        if image::database(reference).is_none() {
            continue;
        }
        for (k, mount) in c.container.volume_mounts.iter().flatten().enumerate() {
            let mount_path = c.path.key("volumeMounts").index(k);
            let (shared, path) = match w.storage(&mount.name) {
                Storage::ClaimTemplate { index, claim } if is_rwx(claim) => {
                    let modes = Path::root()
                        .key("spec")
                        .key("volumeClaimTemplates")
                        .index(index)
                        .key("spec")
                        .key("accessModes");
                    (
                        format!("claim template {} is ReadWriteMany", mount.name),
                        modes,
                    )
                }
                Storage::Claim { claim_name, .. } if is_rwx_claim(rwx_claims, w, claim_name) => {
                    (format!("PVC {claim_name} is ReadWriteMany"), mount_path)
                }
                Storage::NetworkFilesystem { kind, .. } => (
                    format!("volume {} is {kind}, shared by every pod", mount.name),
                    mount_path,
                ),
                _ => continue,
            };
            reported.insert(mount.name.clone());
            let message = format!(
                "{reference} keeps its data at {} and {shared}: a second database process can open the same files",
                mount.mount_path
            );
            out.add(&RWX_DATABASE_VOLUME, w.object, &path, message);
        }
    }
}

/// Whether the PVC named `claim_name`, among the inputs, is ReadWriteMany.
fn is_rwx_claim(rwx_claims: &HashMap<&str, Vec<&Object>>, w: &Workload, claim_name: &str) -> bool {
    rwx_claims
        .get(claim_name)
        .is_some_and(|claims| claims.iter().any(|o| o.same_namespace(w.object)))
}

/// Several replicas of a Deployment writing one file-backed volume (seed 000). Applications
/// built to share files (web servers, CMS uploads) are left alone: that is what ReadWriteMany
/// is for.
fn replicas_sharing_files(w: &Workload, out: &mut Findings, reported: &HashSet<String>) {
    let replicas = w.replicas.unwrap_or(1);
    let kinds = ["Deployment", "ReplicaSet", "ReplicationController"];
    if !kinds.contains(&w.kind()) || replicas < 2 {
        return;
    }
    let mut seen = HashSet::new();
    for c in w.app_containers() {
        let reference = c.container.image.as_deref().unwrap_or("");
        if image::shares_files_safely(reference) {
            continue;
        }
        for mount in c.container.volume_mounts.iter().flatten() {
            let storage = w.storage(&mount.name);
            let read_only = mount.read_only == Some(true)
                || matches!(
                    storage,
                    Storage::Claim {
                        read_only: true,
                        ..
                    } | Storage::NetworkFilesystem {
                        read_only: true,
                        ..
                    }
                );
            if read_only
                || !storage.is_persistent()
                || reported.contains(&mount.name)
                || !seen.insert(mount.name.clone())
            {
                continue;
            }
            let path = w.volume_path(&mount.name).unwrap_or_else(|| c.path.clone());
            let consequence = if image::database(reference).is_some() {
                "two database processes on one data directory corrupt it"
            } else if uses_sqlite(c.container) {
                "SQLite's file locks fail across pods (the guestbook's \"database is locked\")"
            } else {
                "unless the application coordinates its writes, the pods overwrite each other's \
                 files or fail on each other's locks"
            };
            let message = format!(
                "{replicas} replicas of {reference} mount {} read-write at {}: several pods write \
                 the same files, and {consequence}",
                storage.describe(),
                mount.mount_path
            );
            out.add(&RWX_DATABASE_VOLUME, w.object, &path, message);
        }
    }
}

/// A container pointed at an SQLite file (`*.db`, `*.sqlite`, `sqlite:` URLs) in its
/// environment or command line.
fn uses_sqlite(container: &Container) -> bool {
    let env = container
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value.as_deref());
    let argv = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .map(String::as_str);
    env.chain(argv).any(|text| {
        let text = text.to_ascii_lowercase();
        text.contains("sqlite")
            || [".db", ".sqlite3", ".db3"]
                .iter()
                .any(|ext| text.split_whitespace().any(|w| w.ends_with(ext)))
    })
}
