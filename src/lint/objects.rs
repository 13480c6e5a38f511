//! Kubernetes objects read from YAML documents, typed by k8s-openapi (Kubernetes 1.33).
//!
//! Each document is parsed by serde_norway, then decoded into its k8s-openapi type by
//! `decode::typed`, which reports the fields the type does not have (Kubernetes clients drop
//! them silently) and where a value of the wrong type sits.

use std::sync::Arc;

use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::autoscaling::v2 as autoscaling;
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1 as networking;
use k8s_openapi::api::policy::v1 as policy;
use k8s_openapi::api::rbac::v1 as rbac;
use k8s_openapi::api::scheduling::v1 as scheduling;
use k8s_openapi::api::storage::v1 as storage;
use serde_norway::Value;

use super::Run;
use super::decode::typed;
use super::rules::schema::{INVALID_YAML, SCHEMA_ERROR, UNKNOWN_FIELD};
use super::source::{Locator, Path, Segment, Source, Span, indent_of, split_documents, strip_key};

/// The annotation that silences a rule on one object: `"RULE: reason"`.
pub const IGNORE_ANNOTATION: &str = "statelab.dev/ignore";

/// One Kubernetes object from the inputs.
#[derive(Debug)]
pub struct Object {
    /// Position among the run's objects.
    pub index: usize,
    pub kind: String,
    pub api_version: String,
    pub name: String,
    pub namespace: Option<String>,
    pub resource: Resource,
    /// The raw `statelab.dev/ignore` annotation, if any.
    pub ignore: Option<String>,
    pub source: Arc<Source>,
    pub span: Span,
    /// Where the object sits in its document (`items[N]` inside a `List`).
    pub root: Path,
}

impl Object {
    /// `Kind/namespace/name`, or `Kind/name` when the manifest names no namespace.
    pub fn id(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("{}/{}/{}", self.kind, namespace, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }

    /// The 1-based line of the field at `path` (relative to the object).
    pub fn line_of(&self, path: &Path) -> usize {
        let locator = Locator::new(&self.source, self.span);
        if path.segments().is_empty() && self.root.segments().is_empty() {
            return locator.start_line() + 1;
        }
        locator.line_of(&self.root.join(path)) + 1
    }

    /// The 1-based line, within the field at `path`, that contains `needle`.
    pub fn line_of_text(&self, path: &Path, needle: &str) -> usize {
        Locator::new(&self.source, self.span).line_of_text(&self.root.join(path), needle) + 1
    }

    /// Whether two objects end up in the same namespace. A manifest without a namespace goes
    /// wherever it is applied, so it is taken to share the namespace of the other.
    pub fn same_namespace(&self, other: &Object) -> bool {
        match (&self.namespace, &other.namespace) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }

    /// The guestbook lab (seed 000) keeps its anti-patterns on purpose: a file under a folder
    /// named `guestbook`, or a namespace whose name contains `guestbook`.
    pub fn in_guestbook_lab(&self) -> bool {
        self.namespace
            .as_deref()
            .is_some_and(|ns| ns.contains("guestbook"))
            || std::path::Path::new(&self.source.name)
                .parent()
                .is_some_and(|dir| dir.components().any(|c| c.as_os_str() == "guestbook"))
    }
}

macro_rules! resources {
    ($($variant:ident($type:ty)),* $(,)?) => {
        /// The built-in kinds `statelab lint` reads, typed.
        #[derive(Debug, PartialEq)]
        pub enum Resource {
            $($variant(Box<$type>),)*
            /// A built-in kind whose fields did not decode (reported as `schema-error`).
            Invalid,
        }

        impl Resource {
            fn decode(
                api_version: &str,
                kind: &str,
                value: Value,
                unknown: &mut Vec<Path>,
            ) -> Option<Result<Resource, (Path, String)>> {
                $(
                    if api_version == <$type as k8s_openapi::Resource>::API_VERSION
                        && kind == <$type as k8s_openapi::Resource>::KIND
                    {
                        return Some(typed::<$type>(&value, unknown).map(|v| Resource::$variant(Box::new(v))));
                    }
                )*
                None
            }

            /// The apiVersion Kubernetes 1.33 serves `kind` as, for the kinds read here.
            fn served_api_version(kind: &str) -> Option<&'static str> {
                $(
                    if kind == <$type as k8s_openapi::Resource>::KIND {
                        return Some(<$type as k8s_openapi::Resource>::API_VERSION);
                    }
                )*
                None
            }
        }
    };
}

resources! {
    Namespace(core::Namespace),
    Pod(core::Pod),
    Service(core::Service),
    ConfigMap(core::ConfigMap),
    Secret(core::Secret),
    ServiceAccount(core::ServiceAccount),
    PersistentVolumeClaim(core::PersistentVolumeClaim),
    PersistentVolume(core::PersistentVolume),
    Endpoints(core::Endpoints),
    LimitRange(core::LimitRange),
    Quota(core::ResourceQuota),
    ReplicationController(core::ReplicationController),
    Deployment(apps::Deployment),
    StatefulSet(apps::StatefulSet),
    DaemonSet(apps::DaemonSet),
    ReplicaSet(apps::ReplicaSet),
    Job(batch::Job),
    CronJob(batch::CronJob),
    NetworkPolicy(networking::NetworkPolicy),
    Ingress(networking::Ingress),
    IngressClass(networking::IngressClass),
    PodDisruptionBudget(policy::PodDisruptionBudget),
    HorizontalPodAutoscaler(autoscaling::HorizontalPodAutoscaler),
    Role(rbac::Role),
    RoleBinding(rbac::RoleBinding),
    ClusterRole(rbac::ClusterRole),
    ClusterRoleBinding(rbac::ClusterRoleBinding),
    StorageClass(storage::StorageClass),
    PriorityClass(scheduling::PriorityClass),
}

/// Reads every document of a source into the run: objects, or notes saying why not.
pub fn read_source(source: Arc<Source>, run: &mut Run) {
    for (span, text) in split_documents(&source) {
        let mut value: Value = match serde_norway::from_str(&text) {
            Ok(value) => value,
            Err(error) => {
                not_yaml(&source, span, &text, &error, run);
                continue;
            }
        };
        if let Err(error) = value.apply_merge() {
            let message = format!("this document's merge keys (`<<`) do not resolve: {error}");
            let line = span.start + 1;
            run.findings
                .add_raw(&INVALID_YAML, &source.name, line, message);
            continue;
        }
        if !value.is_null() {
            read_value(&source, span, Path::root(), value, run);
        }
    }
}

/// A document serde_norway cannot read: a template (skipped), or invalid YAML (a finding).
fn not_yaml(source: &Source, span: Span, text: &str, error: &serde_norway::Error, run: &mut Run) {
    // The error's own position counts from the document's first line: drop it from the text.
    let full = error.to_string();
    let message = full
        .rfind(" at line ")
        .map_or(full.as_str(), |at| &full[..at]);
    let line = duplicate_key_line(source, span, message)
        .or_else(|| error.location().map(|l| span.start + l.line()))
        .unwrap_or(span.start + 1);
    if text.contains("{{") {
        let note = "a template, not YAML (`{{ }}`): lint the output of `helm template` instead";
        run.skip(&source.name, Some(line), note);
    } else {
        let message = format!("this document is not valid YAML: {message}");
        run.findings
            .add_raw(&INVALID_YAML, &source.name, line, message);
    }
}

/// serde_norway reports a duplicate key without a position: the line of the key's second
/// occurrence at the indentation of its first.
fn duplicate_key_line(source: &Source, span: Span, message: &str) -> Option<usize> {
    let key = message
        .split("duplicate entry with key \"")
        .nth(1)?
        .split('"')
        .next()?;
    let mut first_indent = None;
    for i in span.start..span.end {
        let line = &source.lines[i];
        let Some(indent) = indent_of(line) else {
            continue;
        };
        let text = line[indent..].trim_start_matches("- ");
        if strip_key(text, key).is_some() {
            match first_indent {
                None => first_indent = Some(indent),
                Some(first) if first == indent => return Some(i + 1),
                Some(_) => {}
            }
        }
    }
    None
}

fn read_value(source: &Arc<Source>, span: Span, root: Path, mut value: Value, run: &mut Run) {
    let locator = Locator::new(source, span);
    let line = locator.line_of(&root) + 1;
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let (Some(api_version), Some(kind)) = (text("apiVersion"), text("kind")) else {
        run.skip(
            &source.name,
            Some(line),
            "not a Kubernetes object (no apiVersion and kind)",
        );
        return;
    };
    if api_version == "v1" && kind.ends_with("List") {
        if let Some(Value::Sequence(items)) = value.get_mut("items").map(std::mem::take) {
            for (i, item) in items.into_iter().enumerate() {
                read_value(source, span, root.key("items").index(i), item, run);
            }
        }
        return;
    }
    if api_version.starts_with("kustomize.config.k8s.io/") {
        run.skip(
            &source.name,
            Some(line),
            "a kustomization, not a Kubernetes object: lint the output of `kubectl kustomize` instead",
        );
        return;
    }

    let metadata = value.get("metadata");
    let meta = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let name = meta("name")
        .or_else(|| meta("generateName").map(|prefix| format!("{prefix}*")))
        .unwrap_or_else(|| "(unnamed)".to_owned());
    let namespace = meta("namespace");
    let ignore = metadata
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(IGNORE_ANNOTATION))
        .and_then(Value::as_str)
        .map(str::to_owned);

    normalize(&mut value);
    let mut unknown = Vec::new();
    let served = Resource::served_api_version(&kind);
    let (resource, errors) = match served {
        Some(served) if served == api_version => {
            decode(&api_version, &kind, value, &mut unknown).expect("a served kind decodes")
        }
        _ => match served {
            Some(served) if is_builtin_group(&api_version) => {
                let message = format!(
                    "Kubernetes 1.33 serves {kind} as apiVersion {served}, not {api_version}: \
                     the API server rejects this object"
                );
                let mut errors = vec![(Path::root().key("apiVersion"), message)];
                // Still read as the served type, so the stateful rules see what the object
                // would be once converted: a removed apiVersion must not hide its findings.
                // Differences between the versions are not reported field by field.
                legacy_defaults(&mut value);
                if let Value::Mapping(mapping) = &mut value {
                    mapping.insert(
                        Value::String("apiVersion".to_owned()),
                        Value::String(served.to_owned()),
                    );
                }
                let (resource, more) =
                    decode(served, &kind, value, &mut Vec::new()).expect("a served kind decodes");
                errors.extend(more);
                (resource, errors)
            }
            _ => {
                run.skip(
                    &source.name,
                    Some(line),
                    &format!("{kind} ({api_version}) is not a kind statelab lint checks"),
                );
                return;
            }
        },
    };

    let object = Object {
        index: run.objects.len(),
        kind,
        api_version,
        name,
        namespace,
        resource,
        ignore,
        source: source.clone(),
        span,
        root,
    };
    for path in unknown {
        run.findings
            .add(&UNKNOWN_FIELD, &object, &path, format!("unknown field `{path}`: Kubernetes clients drop it without a word, so it has no effect"))
            .with_fix(format!(
                "Check the spelling and the indentation against `kubectl explain {}`.",
                explain_path(&object.kind, &path)
            ));
    }
    for (path, message) in errors {
        let message = if path.segments().is_empty() || message.starts_with(&path.to_string()) {
            message
        } else {
            format!("`{path}`: {message}")
        };
        run.findings.add(&SCHEMA_ERROR, &object, &path, message);
    }
    run.objects.push(object);
}

/// Decodes `value` as `kind` of `api_version`, with the schema errors found: a value of the
/// wrong type, or a required field left out (k8s-openapi fills those in with empty values,
/// the API server refuses them). `None` when `api_version`/`kind` is not a type read here.
fn decode(
    api_version: &str,
    kind: &str,
    value: Value,
    unknown: &mut Vec<Path>,
) -> Option<(Resource, Vec<(Path, String)>)> {
    Some(match Resource::decode(api_version, kind, value, unknown)? {
        Ok(resource) => {
            let errors = required_fields(&resource);
            (resource, errors)
        }
        Err(error) => (Resource::Invalid, vec![error]),
    })
}

/// The required fields manifests most often leave out, worded as the API server words them:
/// a workload's `spec.selector`, and every container's `name`.
fn required_fields(resource: &Resource) -> Vec<(Path, String)> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    let spec = Path::root().key("spec");
    let empty = |s: &LabelSelector| {
        s.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    };
    let (selector, pod) = match resource {
        Resource::Deployment(d) => (
            d.spec.as_ref().map(|s| empty(&s.selector)),
            d.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
        ),
        Resource::StatefulSet(d) => (
            d.spec.as_ref().map(|s| empty(&s.selector)),
            d.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
        ),
        Resource::DaemonSet(d) => (
            d.spec.as_ref().map(|s| empty(&s.selector)),
            d.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
        ),
        Resource::ReplicaSet(d) => (
            d.spec.as_ref().map(|s| empty(&s.selector)),
            d.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref()),
        ),
        Resource::ReplicationController(d) => (
            None,
            d.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref()),
        ),
        Resource::Job(j) => (None, j.spec.as_ref().and_then(|s| s.template.spec.as_ref())),
        Resource::CronJob(c) => (
            None,
            c.spec
                .as_ref()
                .and_then(|s| s.job_template.spec.as_ref())
                .and_then(|s| s.template.spec.as_ref()),
        ),
        Resource::Pod(p) => (None, p.spec.as_ref()),
        _ => (None, None),
    };
    let mut errors = Vec::new();
    if selector == Some(true) {
        let path = spec.key("selector");
        errors.push((
            path.clone(),
            format!("{path}: Required value: the API server rejects this object"),
        ));
    }
    let pod_path = match resource {
        Resource::Pod(_) => spec,
        Resource::CronJob(_) => spec
            .key("jobTemplate")
            .key("spec")
            .key("template")
            .key("spec"),
        _ => spec.key("template").key("spec"),
    };
    for (list, containers) in pod.iter().flat_map(|p| {
        [
            (
                "initContainers",
                p.init_containers.as_deref().unwrap_or_default(),
            ),
            ("containers", p.containers.as_slice()),
        ]
    }) {
        for (i, c) in containers.iter().enumerate() {
            if c.name.is_empty() {
                let path = pod_path.key(list).index(i).key("name");
                errors.push((
                    path.clone(),
                    format!("{path}: Required value: the API server rejects this object"),
                ));
            }
        }
    }
    errors
}

/// What removed apiVersions defaulted that their successors require: `apps/v1beta1` and
/// `extensions/v1beta1` workloads took their selector from the pod template's labels.
fn legacy_defaults(value: &mut Value) {
    let Some(Value::Mapping(spec)) = value.get_mut("spec") else {
        return;
    };
    if spec.contains_key("selector") {
        return;
    }
    let labels = spec
        .get("template")
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .cloned();
    if let Some(labels @ Value::Mapping(_)) = labels {
        let mut selector = serde_norway::Mapping::new();
        selector.insert(Value::String("matchLabels".to_owned()), labels);
        spec.insert(
            Value::String("selector".to_owned()),
            Value::Mapping(selector),
        );
    }
}

/// `statefulset.spec.template` for `kubectl explain`: the parent of the unknown field, without
/// sequence indexes.
fn explain_path(kind: &str, path: &Path) -> String {
    let mut text = kind.to_lowercase();
    let segments = path.segments();
    for segment in &segments[..segments.len().saturating_sub(1)] {
        if let Segment::Key(key) = segment {
            text.push('.');
            text.push_str(key);
        }
    }
    text
}

/// Core (`v1`), and groups without a dot or ending in `.k8s.io`, are Kubernetes' own.
fn is_builtin_group(api_version: &str) -> bool {
    match api_version.split_once('/') {
        None => true,
        Some((group, _)) => !group.contains('.') || group.ends_with(".k8s.io"),
    }
}

/// Makes the value read as the API server reads it: an explicit `null` is the same as leaving
/// the field out, and a quantity may be written as a plain number (`cpu: 0.5`).
fn normalize(value: &mut Value) {
    match value {
        Value::Mapping(mapping) => {
            mapping.retain(|_, v| !v.is_null());
            for (key, v) in mapping.iter_mut() {
                let quantities = matches!(
                    key.as_str(),
                    Some("requests" | "limits" | "capacity" | "hard" | "overhead" | "allocatable")
                );
                if quantities {
                    if let Value::Mapping(inner) = v {
                        for q in inner.values_mut() {
                            if let Value::Number(n) = q {
                                *q = Value::String(n.to_string());
                            }
                        }
                    }
                } else if key.as_str() == Some("sizeLimit")
                    && let Value::Number(n) = v
                {
                    *v = Value::String(n.to_string());
                }
                normalize(v);
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(normalize),
        Value::Tagged(tagged) => normalize(&mut tagged.value),
        _ => {}
    }
}
