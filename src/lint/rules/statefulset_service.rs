//! Seed 001, mistake 5: "Forgetting the Headless Service"; seed 002's `serviceName` naming a
//! Service that does not exist while the one that does is not headless.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Service;

use crate::lint::objects::{Object, Resource};
use crate::lint::report::{Rule, Severity};
use crate::lint::rules::Findings;
use crate::lint::selector::{SelectorIndex, describe, map_selects};
use crate::lint::source::Path;
use crate::lint::workload::{Workload, workloads};

pub const STATEFULSET_SERVICE: Rule = Rule {
    id: "statefulset-service",
    severity: Severity::Error,
    summary: "a StatefulSet's serviceName is missing, names no Service, or names one that is not \
        headless or does not select its pods",
    explanation: "A StatefulSet's pods get their stable DNS names (`<pod>.<service>`, such as \
        postgres-0.postgres-headless) from the headless Service its `serviceName` names: \
        \"StatefulSet requires a headless Service to create DNS records\" (seed 001, mistake 5). \
        Without that Service, or with one that has a cluster IP (not `clusterIP: None`), or one \
        whose selector does not match the pods' labels, the names never resolve: clients \
        configured with postgres-0.postgres-headless fail, and `nslookup` from the seeds' \
        walk-throughs finds nothing. When no Service of that name is among the files given at \
        all, the finding is a warning: it may live in a file that was not checked. When several \
        Services share the name (a whole repository linted at once), the one in the \
        StatefulSet's own file is used, then one in its folder.",
    fix: "Create a Service named like `serviceName`, with `clusterIP: None` and a selector \
        matching the pod template's labels, before the StatefulSet.",
};

pub fn check(objects: &[Object], out: &mut Findings) {
    // Services by name and by selector, built once, so that resolving N StatefulSets costs
    // O(N) lookups rather than N passes over every Service.
    let mut by_name: HashMap<&str, Vec<(&Object, &Service)>> = HashMap::new();
    let mut by_selector = SelectorIndex::new();
    for o in objects {
        if let Resource::Service(s) = &o.resource {
            by_name.entry(o.name.as_str()).or_default().push((o, s));
            by_selector.insert(s.spec.as_ref().and_then(|s| s.selector.as_ref()), (o, &**s));
        }
    }

    for w in workloads(objects).filter(|w| w.kind() == "StatefulSet") {
        let Resource::StatefulSet(sts) = &w.object.resource else {
            continue;
        };
        let spec_path = Path::root().key("spec");
        let name_path = spec_path.key("serviceName");
        let Some(name) = sts
            .spec
            .as_ref()
            .and_then(|s| s.service_name.as_deref())
            .filter(|n| !n.is_empty())
        else {
            // The key's own line when it is there but empty, else `spec:`.
            out.add(
                &STATEFULSET_SERVICE,
                w.object,
                &name_path,
                "no serviceName: the pods get no DNS names (<pod>.<service>)",
            );
            continue;
        };

        let same_name = by_name.get(name).map(Vec::as_slice).unwrap_or_default();
        // Linting a whole repository, several applications may each have a Service of this
        // name: the one in the StatefulSet's own file wins, then one in its folder.
        let nearest = same_name
            .iter()
            .filter(|(o, _)| o.same_namespace(w.object))
            .min_by_key(|(o, _)| closeness(w.object, o));
        match nearest {
            Some((_, service)) => check_service(out, &w, &name_path, name, service),
            None => missing_service(out, &w, &name_path, name, &by_selector, same_name),
        }
    }
}

/// 0: the same file, 1: the same folder, 2: elsewhere.
fn closeness(a: &Object, b: &Object) -> u8 {
    if a.source.name == b.source.name {
        0
    } else if std::path::Path::new(&a.source.name).parent()
        == std::path::Path::new(&b.source.name).parent()
    {
        1
    } else {
        2
    }
}

fn check_service(out: &mut Findings, w: &Workload, path: &Path, name: &str, service: &Service) {
    let spec = service.spec.as_ref();
    let cluster_ip = spec.and_then(|s| s.cluster_ip.as_deref());
    if cluster_ip != Some("None") {
        let has = match cluster_ip {
            Some(ip) => format!("clusterIP {ip}"),
            None => "a cluster IP".to_owned(),
        };
        out.add(
            &STATEFULSET_SERVICE,
            w.object,
            path,
            format!("serviceName {name} names a Service that is not headless (it has {has}): the pods get no DNS names of their own"),
        )
        .with_fix(format!("Set `clusterIP: None` on Service {name} (clusterIP cannot change in place: delete and recreate the Service)."));
    }
    let selector = spec.and_then(|s| s.selector.clone()).unwrap_or_default();
    if !map_selects(&selector, &w.pod_labels) {
        let selects = if selector.is_empty() {
            "has no selector".to_owned()
        } else {
            format!("selects {}", describe(&selector))
        };
        out.add(
            &STATEFULSET_SERVICE,
            w.object,
            path,
            format!(
                "Service {name} {selects}, but the pods are labelled {}: no DNS records for them",
                describe(&w.pod_labels)
            ),
        )
        .with_fix(format!(
            "Make Service {name}'s selector match the pod template's labels."
        ));
    }
}

fn missing_service(
    out: &mut Findings,
    w: &Workload,
    path: &Path,
    name: &str,
    by_selector: &SelectorIndex<(&Object, &Service)>,
    same_name: &[(&Object, &Service)],
) {
    if let Some((other, _)) = same_name.first() {
        let elsewhere = other.namespace.as_deref().unwrap_or("another namespace");
        out.add(
            &STATEFULSET_SERVICE,
            w.object,
            path,
            format!("serviceName {name} names a Service in namespace {elsewhere}, not in this StatefulSet's: the pods get no DNS names"),
        );
        return;
    }
    let selecting: Vec<&str> = by_selector
        .candidates(&w.pod_labels)
        .filter(|(o, s)| {
            o.same_namespace(w.object)
                && s.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .is_some_and(|sel| map_selects(sel, &w.pod_labels))
        })
        .map(|(o, _)| o.name.as_str())
        .collect();
    if selecting.is_empty() {
        out.add(
            &STATEFULSET_SERVICE,
            w.object,
            path,
            format!("serviceName {name}: no Service of that name is among the files given; without it the pods get no DNS names"),
        )
        .with_severity(Severity::Warning);
    } else {
        out.add(
            &STATEFULSET_SERVICE,
            w.object,
            path,
            format!(
                "serviceName {name} names no Service among the files given; the Service selecting these pods is {}: the pods get no DNS names",
                selecting.join(", ")
            ),
        )
        .with_fix(format!(
            "Point serviceName at a headless Service selecting these pods, or create Service {name} with `clusterIP: None`."
        ));
    }
}
