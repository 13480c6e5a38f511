//! Objects that should exist next to a workload: a NetworkPolicy selecting its pods, and a
//! PodDisruptionBudget for a replicated StatefulSet.

use crate::lint::objects::{Object, Resource};
use crate::lint::report::{Rule, Severity};
use crate::lint::rules::Findings;
use crate::lint::selector::{SelectorIndex, describe, selects};
use crate::lint::source::Path;
use crate::lint::workload::workloads;

pub const MISSING_NETWORK_POLICY: Rule = Rule {
    id: "missing-network-policy",
    severity: Severity::Warning,
    summary: "no NetworkPolicy among the inputs selects the workload's pods",
    explanation: "Pods accept connections from every pod in the cluster unless a NetworkPolicy \
        selects them: any compromised or misconfigured pod in any namespace can reach the \
        database directly, bypassing the API in front of it. A default-deny policy (empty \
        podSelector) per namespace plus explicit allows (and DNS egress) makes the intended \
        paths the only ones. Only the files given are searched.",
    fix: "Add a default-deny NetworkPolicy (podSelector: {}) to the namespace and policies that \
        allow the connections this workload needs, including DNS egress.",
};

pub const MISSING_DISRUPTION_BUDGET: Rule = Rule {
    id: "missing-disruption-budget",
    severity: Severity::Warning,
    summary: "a StatefulSet with more than one replica and no PodDisruptionBudget selecting it",
    explanation: "A node drain (an upgrade, an autoscaler scale-down) evicts every pod on the \
        node at once. For a replicated database or queue that can mean losing quorum, or every \
        replica restarting together and replaying its data; a PodDisruptionBudget makes \
        voluntary evictions wait until enough replicas are ready again. Only the files given \
        are searched.",
    fix: "Add a PodDisruptionBudget selecting the StatefulSet's pods with maxUnavailable: 1.",
};

pub fn check(objects: &[Object], out: &mut Findings) {
    // Policies and budgets filed by label, once: each workload then looks at the few that may
    // select it, which keeps the rule linear in the number of objects.
    let mut policies = SelectorIndex::new();
    let mut budgets = SelectorIndex::new();
    for o in objects {
        match &o.resource {
            Resource::NetworkPolicy(np) => {
                if let Some(spec) = &np.spec {
                    let selector = spec.pod_selector.as_ref();
                    policies.insert(
                        selector.and_then(|s| s.match_labels.as_ref()),
                        (o, selector),
                    );
                }
            }
            Resource::PodDisruptionBudget(pdb) => {
                if let Some(selector) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) {
                    budgets.insert(selector.match_labels.as_ref(), (o, selector));
                }
            }
            _ => {}
        }
    }
    for w in workloads(objects) {
        let policy = policies.candidates(&w.pod_labels).any(|(o, selector)| {
            o.same_namespace(w.object) && selector.is_none_or(|sel| selects(sel, &w.pod_labels))
        });
        if !policy {
            let message = format!(
                "no NetworkPolicy among the files given selects these pods ({}): every pod in the cluster can connect to them",
                describe(&w.pod_labels)
            );
            out.add(
                &MISSING_NETWORK_POLICY,
                w.object,
                &Path::root().key("metadata").key("name"),
                message,
            );
        }

        let replicas = w.replicas.unwrap_or(1);
        if w.kind() != "StatefulSet" || replicas < 2 {
            continue;
        }
        let budget = budgets
            .candidates(&w.pod_labels)
            .any(|(o, selector)| o.same_namespace(w.object) && selects(selector, &w.pod_labels));
        if !budget {
            let message = format!(
                "{replicas} replicas and no PodDisruptionBudget among the files given: a node drain may evict them all at once"
            );
            out.add(
                &MISSING_DISRUPTION_BUDGET,
                w.object,
                &Path::root().key("spec").key("replicas"),
                message,
            );
        }
    }
}
