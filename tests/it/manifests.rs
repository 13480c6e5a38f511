//! Cross-checks of deploy/k8s/ against each other and against the binary, for what schema
//! validation cannot see: selectors that select, headless Services behind StatefulSets, ports
//! that line up, probe paths the binary really serves, commands that really exist, manifests
//! that go into whatever namespace they are applied to, and NetworkPolicies that select the
//! lab's own pods only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_norway::Value;

use crate::support::{self, ServiceBuilder};

struct Object {
    file: PathBuf,
    value: Value,
}

impl Object {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }
    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }
    fn namespace(&self) -> &str {
        self.value["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
    }
    /// The lab folder right under deploy/k8s/ (`queue` for `queue/redis-backend/...`). Labs
    /// share names (`postgres`, `redis-headless`, ...): they run one at a time in a namespace,
    /// so objects refer to objects of their own lab only.
    fn lab(&self) -> String {
        let relative = self.file.strip_prefix(k8s_root()).unwrap();
        let first = relative.components().next().unwrap();
        first.as_os_str().to_string_lossy().into_owned()
    }
    fn id(&self) -> String {
        format!("{}/{} in {}", self.kind(), self.name(), self.file.display())
    }
    fn pod_template(&self) -> Option<&Value> {
        match self.kind() {
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
                Some(&self.value["spec"]["template"])
            }
            _ => None,
        }
    }
}

fn k8s_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s")
}

fn yaml_files(dir: &Path, exercises: bool, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if exercises || path.file_name().unwrap() != "exercise" {
                yaml_files(&path, exercises, out);
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

fn load_objects() -> Vec<Object> {
    load(false)
}

/// Every object under deploy/k8s/, the exercise folders (unfinished on purpose) included or not.
fn load(exercises: bool) -> Vec<Object> {
    let root = k8s_root();
    let mut files = Vec::new();
    yaml_files(&root, exercises, &mut files);
    files.sort();
    let mut objects = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for document in serde_norway::Deserializer::from_str(&text) {
            let value = Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
            if value.is_mapping() {
                objects.push(Object {
                    file: file.clone(),
                    value,
                });
            }
        }
    }
    assert!(
        !objects.is_empty(),
        "no manifests found under {}",
        root.display()
    );
    objects
}

fn labels(value: &Value) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap_or("").to_owned(),
                        v.as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn selects(selector: &BTreeMap<String, String>, pod_labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
}

fn containers(template: &Value) -> Vec<&Value> {
    let spec = &template["spec"];
    let mut out: Vec<&Value> = Vec::new();
    for key in ["initContainers", "containers"] {
        if let Some(list) = spec[key].as_sequence() {
            out.extend(list.iter());
        }
    }
    out
}

/// Named and numeric container ports of a pod template.
fn container_ports(template: &Value) -> Vec<(Option<String>, u64)> {
    containers(template)
        .iter()
        .flat_map(|c| c["ports"].as_sequence().cloned().unwrap_or_default())
        .map(|p| {
            (
                p["name"].as_str().map(str::to_owned),
                p["containerPort"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn port_exists(port: &Value, ports: &[(Option<String>, u64)]) -> bool {
    match port {
        Value::Number(n) => ports.iter().any(|(_, p)| Some(*p) == n.as_u64()),
        Value::String(name) => ports.iter().any(|(n, _)| n.as_deref() == Some(name)),
        _ => false,
    }
}

#[test]
fn every_service_selects_pods_and_its_ports_exist() {
    let objects = load_objects();
    for service in objects.iter().filter(|o| o.kind() == "Service") {
        let selector = labels(&service.value["spec"]["selector"]);
        let pods: Vec<&Object> = objects
            .iter()
            .filter(|o| o.namespace() == service.namespace() && o.lab() == service.lab())
            .filter(|o| {
                o.pod_template()
                    .is_some_and(|t| selects(&selector, &labels(&t["metadata"]["labels"])))
            })
            .collect();
        assert!(!pods.is_empty(), "{} selects no pods", service.id());
        for port in service.value["spec"]["ports"].as_sequence().unwrap() {
            let target = if port["targetPort"].is_null() {
                &port["port"]
            } else {
                &port["targetPort"]
            };
            for pod in &pods {
                let ports = container_ports(pod.pod_template().unwrap());
                assert!(
                    port_exists(target, &ports),
                    "{} targets port {target:?}, which {} does not expose",
                    service.id(),
                    pod.id()
                );
            }
        }
    }
}

#[test]
fn every_statefulset_names_a_headless_service_of_its_lab_that_selects_it() {
    let objects = load_objects();
    for set in objects.iter().filter(|o| o.kind() == "StatefulSet") {
        let service_name = set.value["spec"]["serviceName"]
            .as_str()
            .unwrap_or_else(|| panic!("{} has no serviceName", set.id()));
        let service = objects
            .iter()
            .find(|o| {
                o.kind() == "Service"
                    && o.name() == service_name
                    && o.namespace() == set.namespace()
                    && o.lab() == set.lab()
            })
            .unwrap_or_else(|| panic!("{}: no Service {service_name} in its lab", set.id()));
        assert_eq!(
            service.value["spec"]["clusterIP"].as_str(),
            Some("None"),
            "{} must be headless",
            service.id()
        );
        let pod_labels = labels(&set.value["spec"]["template"]["metadata"]["labels"]);
        assert!(
            selects(&labels(&service.value["spec"]["selector"]), &pod_labels),
            "{} does not select the pods of {}",
            service.id(),
            set.id()
        );
        let selector = labels(&set.value["spec"]["selector"]["matchLabels"]);
        assert!(
            selects(&selector, &pod_labels),
            "{} selector vs template labels",
            set.id()
        );
    }
}

/// Literal environment of a container: `env` values and ConfigMaps it loads with `envFrom`.
fn literal_env(container: &Value, owner: &Object, objects: &[Object]) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for source in container["envFrom"]
        .as_sequence()
        .cloned()
        .unwrap_or_default()
    {
        let Some(name) = source["configMapRef"]["name"].as_str() else {
            continue;
        };
        if let Some(map) = objects.iter().find(|o| {
            o.kind() == "ConfigMap"
                && o.name() == name
                && o.namespace() == owner.namespace()
                && o.lab() == owner.lab()
        }) {
            env.extend(labels(&map.value["data"]));
        }
    }
    for var in container["env"].as_sequence().cloned().unwrap_or_default() {
        if let (Some(name), Some(value)) = (var["name"].as_str(), var["value"].as_str()) {
            env.push((name.to_owned(), value.to_owned()));
        }
    }
    env
}

struct StatelabContainer {
    id: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    probe_paths: Vec<String>,
}

fn statelab_containers(objects: &[Object]) -> Vec<StatelabContainer> {
    let mut out = Vec::new();
    for object in objects {
        let Some(template) = object.pod_template() else {
            continue;
        };
        let ports = container_ports(template);
        for container in containers(template) {
            let image = container["image"].as_str().unwrap_or("");
            if !image.starts_with("statelab:") {
                continue;
            }
            let mut args: Vec<String> = Vec::new();
            for key in ["command", "args"] {
                for a in container[key].as_sequence().cloned().unwrap_or_default() {
                    args.push(a.as_str().unwrap_or("").to_owned());
                }
            }
            if args.first().map(String::as_str) == Some("statelab") {
                args.remove(0);
            }
            let mut paths = Vec::new();
            for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                let get = &container[probe]["httpGet"];
                if get.is_null() {
                    continue;
                }
                assert!(
                    port_exists(&get["port"], &ports),
                    "{}: {probe} port {:?} is not a container port",
                    object.id(),
                    get["port"]
                );
                paths.push(get["path"].as_str().unwrap_or("/").to_owned());
            }
            out.push(StatelabContainer {
                id: object.id(),
                args,
                env: literal_env(container, object, objects),
                probe_paths: paths,
            });
        }
    }
    out
}

#[test]
fn every_container_command_is_a_real_statelab_subcommand() {
    let objects = load_objects();
    for StatelabContainer { id, args, .. } in statelab_containers(&objects) {
        assert!(
            !args.is_empty(),
            "{id}: the statelab image needs a subcommand"
        );
        let output = Command::new(support::process::binary())
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{id}: `statelab {}` is not a valid command: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn every_probe_path_is_served_by_the_binary() {
    let objects = load_objects();
    let client = support::http();
    for container in statelab_containers(&objects) {
        let StatelabContainer {
            id,
            args,
            env,
            probe_paths: paths,
        } = container;
        if paths.is_empty() {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        // Drop any --listen/--port from the manifest: the test picks a free loopback port.
        let mut command: Vec<&str> = Vec::new();
        let mut skip = false;
        for a in &args {
            if skip {
                skip = false;
                continue;
            }
            if a == "--listen" || a == "--port" {
                skip = true;
                continue;
            }
            if a.starts_with("--listen=") || a.starts_with("--port=") {
                continue;
            }
            command.push(a);
        }
        let mut builder = ServiceBuilder::new(&command);
        for (key, value) in &env {
            builder = builder.env(key, value);
        }
        let service = builder
            .env("DATA_DIR", dir.path())
            .current_dir(dir.path())
            .start();
        for path in paths {
            let status = client
                .get(service.url(&path))
                .send()
                .await
                .unwrap()
                .status();
            assert_ne!(
                status.as_u16(),
                404,
                "{id}: probe path {path} is not served"
            );
        }
    }
}

/// `kubectl apply -f deploy/k8s/<lab>/` installs into the current namespace (or the one `-n`
/// names), so the seeds' commands and `default` DNS names work as written. Seed 003 names its
/// namespace, `task-05`: the counter lab keeps it.
#[test]
fn no_lab_names_a_namespace_but_seed_003s_task_05() {
    for object in load(true) {
        let named = &object.value["metadata"]["namespace"];
        if object.lab() == "counter" {
            if object.kind() == "Namespace" {
                assert_eq!(object.name(), "task-05", "{}", object.id());
            } else {
                assert_eq!(named.as_str(), Some("task-05"), "{}", object.id());
            }
        } else {
            assert_ne!(object.kind(), "Namespace", "{}", object.id());
            assert!(named.is_null(), "{} names a namespace", object.id());
        }
    }
}

/// A PersistentVolume is cluster-wide; a claimRef would pin it to one namespace's claim.
#[test]
fn persistent_volumes_bind_claims_from_any_namespace() {
    let objects = load_objects();
    for volume in objects.iter().filter(|o| o.kind() == "PersistentVolume") {
        assert!(
            volume.value["spec"]["claimRef"].is_null(),
            "{} has a claimRef, which names a namespace",
            volume.id()
        );
    }
    for claim in objects
        .iter()
        .filter(|o| o.kind() == "PersistentVolumeClaim")
    {
        if let Some(name) = claim.value["spec"]["volumeName"].as_str() {
            assert!(
                objects.iter().any(|o| o.kind() == "PersistentVolume"
                    && o.name() == name
                    && o.lab() == claim.lab()),
                "{}: no PersistentVolume {name} in its lab",
                claim.id()
            );
        }
    }
}

/// Whether a label selector (`matchLabels` and `matchExpressions`) selects these labels. An
/// empty selector selects everything.
fn label_selector_selects(selector: &Value, pod_labels: &BTreeMap<String, String>) -> bool {
    let by_label = labels(&selector["matchLabels"])
        .iter()
        .all(|(k, v)| pod_labels.get(k) == Some(v));
    let by_expression = selector["matchExpressions"]
        .as_sequence()
        .cloned()
        .unwrap_or_default()
        .iter()
        .all(|e| {
            let value = pod_labels.get(e["key"].as_str().unwrap_or(""));
            let values: Vec<&str> = e["values"]
                .as_sequence()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e["operator"].as_str().unwrap_or("") {
                "In" => value.is_some_and(|v| values.contains(&v.as_str())),
                "NotIn" => value.is_none_or(|v| !values.contains(&v.as_str())),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => panic!("unknown selector operator {other}"),
            }
        });
    by_label && by_expression
}

fn is_empty_selector(selector: &Value) -> bool {
    let empty = |v: &Value| {
        v.is_null()
            || v.as_mapping().is_some_and(|m| m.is_empty())
            || v.as_sequence().is_some_and(|s| s.is_empty())
    };
    empty(&selector["matchLabels"]) && empty(&selector["matchExpressions"])
}

/// Labs share a namespace with whatever else runs there (`default`, say): every NetworkPolicy
/// selects pods of its own lab by their labels, never every pod of the namespace, and every pod
/// of the lab is covered by a default deny (Ingress and Egress) and may still resolve names.
#[test]
fn network_policies_select_the_labs_own_pods_only() {
    let objects = load_objects();
    let policies: Vec<&Object> = objects
        .iter()
        .filter(|o| o.kind() == "NetworkPolicy")
        .collect();
    assert!(!policies.is_empty());
    let pods_of = |lab: String| -> Vec<(String, BTreeMap<String, String>)> {
        objects
            .iter()
            .filter(|o| o.lab() == lab)
            .filter_map(|o| {
                o.pod_template()
                    .map(|t| (o.id(), labels(&t["metadata"]["labels"])))
            })
            .collect()
    };
    for policy in &policies {
        let selector = &policy.value["spec"]["podSelector"];
        assert!(
            !is_empty_selector(selector),
            "{} selects every pod of the namespace",
            policy.id()
        );
        assert!(
            pods_of(policy.lab())
                .iter()
                .any(|(_, l)| label_selector_selects(selector, l)),
            "{} selects no pod of its lab",
            policy.id()
        );
    }
    let labs: std::collections::BTreeSet<String> = policies.iter().map(|p| p.lab()).collect();
    for lab in labs {
        for (id, pod_labels) in pods_of(lab.clone()) {
            let selecting: Vec<&&Object> = policies
                .iter()
                .filter(|p| p.lab() == lab)
                .filter(|p| label_selector_selects(&p.value["spec"]["podSelector"], &pod_labels))
                .collect();
            for direction in ["Ingress", "Egress"] {
                assert!(
                    selecting.iter().any(|p| {
                        p.value["spec"]["policyTypes"]
                            .as_sequence()
                            .is_some_and(|t| t.iter().any(|t| t.as_str() == Some(direction)))
                    }),
                    "no NetworkPolicy of {lab} limits {direction} of {id}"
                );
            }
            let dns = selecting.iter().any(|p| {
                p.value["spec"]["egress"]
                    .as_sequence()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .any(|rule| {
                        rule["ports"].as_sequence().is_some_and(|ports| {
                            ports.iter().any(|p| p["port"].as_u64() == Some(53))
                        })
                    })
            });
            assert!(dns, "the pods of {id} may not resolve names");
        }
    }
}
