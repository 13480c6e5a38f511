//! hostPath volumes: the node's own disk. Seed 000's guestbook uses one on purpose ("The
//! hostPath PV is for demo purposes"), so there the finding is only informational.

use crate::lint::objects::{Object, Resource};
use crate::lint::report::{Rule, Severity};
use crate::lint::rules::Findings;
use crate::lint::source::Path;
use crate::lint::workload::workloads;

pub const HOSTPATH_VOLUME: Rule = Rule {
    id: "hostpath-volume",
    severity: Severity::Warning,
    summary: "a pod volume or PersistentVolume on a hostPath (info in the guestbook lab)",
    explanation: "A hostPath is a directory on whichever node the pod lands on: a pod \
        rescheduled to another node finds another, empty directory (the data seems lost, and \
        comes back when it returns), replicas on different nodes see different data, and the \
        pod can read or change the node's own files. Seed 000's guestbook uses a hostPath \
        PersistentVolume on purpose, as a single-node demo (\"You may need to create the \
        /mnt/data directory on your K8s node\"): in the guestbook lab (a folder named \
        guestbook, or a namespace whose name contains guestbook) the finding is info.",
    fix: "Use a PVC backed by a StorageClass (dynamic provisioning); for a demo on one node, say \
        so, and suppress with a reason.",
};

pub fn check(objects: &[Object], out: &mut Findings) {
    for w in workloads(objects) {
        for (i, volume) in w.pod.volumes.iter().flatten().enumerate() {
            if let Some(host) = &volume.host_path {
                let message = format!(
                    "volume {} is the node's directory {}: data stays on one node, and the pod can reach the node's files",
                    volume.name, host.path
                );
                let path = w.pod_path.key("volumes").index(i).key("hostPath");
                report(out, w.object, &path, message);
            }
        }
    }
    for object in objects {
        let Resource::PersistentVolume(pv) = &object.resource else {
            continue;
        };
        if let Some(host) = pv.spec.as_ref().and_then(|s| s.host_path.as_ref()) {
            let message = format!(
                "PersistentVolume on the node's directory {}: its data lives on one node only",
                host.path
            );
            report(
                out,
                object,
                &Path::root().key("spec").key("hostPath"),
                message,
            );
        }
    }
}

fn report(out: &mut Findings, object: &Object, path: &Path, message: String) {
    let finding = out.add(&HOSTPATH_VOLUME, object, path, message);
    if object.in_guestbook_lab() {
        finding.with_severity(Severity::Info);
        finding
            .message
            .push_str(" (the guestbook lab uses it on purpose)");
    }
}
