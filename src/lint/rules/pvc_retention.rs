//! Seed 001, mistake 2: "Expecting PVCs to Auto-Delete".

use crate::lint::objects::{Object, Resource};
use crate::lint::report::{Rule, Severity};
use crate::lint::rules::Findings;
use crate::lint::source::Path;

pub const PVC_RETENTION_UNAWARE: Rule = Rule {
    id: "pvc-retention-unaware",
    severity: Severity::Info,
    summary: "a StatefulSet with volumeClaimTemplates does not state what happens to its PVCs",
    explanation: "A StatefulSet's PVCs outlive it: `kubectl delete statefulset postgres` \
        \"assumes PVCs are also deleted\", but \"PVCs persist to prevent accidental data loss\" \
        (seed 001, mistake 2). Scaling down from 3 to 2 leaves the PVC of pod 2 behind too, and \
        scaling back up reattaches the old data to the new pod 2, which may surprise a database \
        that has moved on. Both are the default (Retain); \
        `persistentVolumeClaimRetentionPolicy` states the choice in the manifest, where the next \
        reader sees it.",
    fix: "Set spec.persistentVolumeClaimRetentionPolicy (whenDeleted and whenScaled: Retain or \
        Delete). With Retain, delete the PVCs yourself when the data is no longer wanted: \
        kubectl delete pvc <template>-<statefulset>-<ordinal>.",
};

pub fn check(objects: &[Object], out: &mut Findings) {
    for object in objects {
        let Resource::StatefulSet(sts) = &object.resource else {
            continue;
        };
        let Some(spec) = &sts.spec else { continue };
        let templates: Vec<&str> = spec
            .volume_claim_templates
            .iter()
            .flatten()
            .filter_map(|t| t.metadata.name.as_deref())
            .collect();
        if templates.is_empty() || spec.persistent_volume_claim_retention_policy.is_some() {
            continue;
        }
        let claims = templates
            .iter()
            .map(|t| format!("{t}-{}-N", object.name))
            .collect::<Vec<_>>()
            .join(", ");
        out.add(
            &PVC_RETENTION_UNAWARE,
            object,
            &Path::root().key("spec").key("volumeClaimTemplates"),
            format!(
                "no persistentVolumeClaimRetentionPolicy: deleting the StatefulSet or scaling it \
                 down leaves the PVCs {claims} (and their data) behind"
            ),
        );
    }
}
