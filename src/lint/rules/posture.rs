//! Container posture: probes, resources, the user, the root filesystem, capabilities, seccomp,
//! image tags, privileged mode and the node's namespaces and ports. Each is one small check
//! over every container of every workload.

use crate::lint::image;
use crate::lint::objects::Object;
use crate::lint::report::{Rule, Severity};
use crate::lint::rules::Findings;
use crate::lint::workload::{ContainerRef, Workload, workloads};

pub const MISSING_PROBE: Rule = Rule {
    id: "missing-probe",
    severity: Severity::Warning,
    summary: "a long-running container without a readiness or a liveness probe",
    explanation: "Without a readiness probe a pod receives traffic as soon as its process \
        starts, before the database connection is up, and keeps receiving it while its backend \
        is down; without a liveness probe a hung process is never restarted. For stateful apps \
        this matters more: \"they prevent routing traffic to a pod until it's ready\" and \"help \
        restart failed pods without data loss\" (seed 004). Checked on Deployments, \
        StatefulSets, DaemonSets, ReplicaSets and restartable Pods, not on Jobs.",
    fix: "Add a readinessProbe (is the backend reachable?) and a livenessProbe (is the process \
        alive? touching no backend), e.g. httpGet on /readyz and /healthz.",
};

pub const MISSING_RESOURCES: Rule = Rule {
    id: "missing-resources",
    severity: Severity::Warning,
    summary: "a container without CPU and memory requests, or without a memory limit",
    explanation: "Without requests the scheduler packs pods onto nodes that cannot run them, and \
        the pod is the first evicted under pressure (BestEffort); without a memory limit one \
        leaking container takes the node's memory from its neighbours, a database among them. \
        A CPU limit is not required (it throttles even on an idle node).",
    fix: "Set resources.requests.cpu, resources.requests.memory and resources.limits.memory.",
};

pub const RUNS_AS_ROOT: Rule = Rule {
    id: "runs-as-root",
    severity: Severity::Warning,
    summary: "a container not held to a non-root numeric user (runAsNonRoot and runAsUser)",
    explanation: "A process running as root inside a container is one kernel bug or one \
        writable host mount away from root on the node. `runAsNonRoot: true` makes the kubelet \
        refuse to start a container as root, and it can only check a numeric user: with an \
        image whose USER is a name (appuser), it refuses to start the container at all unless \
        `runAsUser` gives the number. Setting both also documents which UID owns the files on \
        the volumes (see init-owner-mismatch).",
    fix: "Set securityContext.runAsNonRoot: true and a numeric runAsUser (and runAsGroup) on the \
        pod or the container.",
};

pub const WRITABLE_ROOT_FILESYSTEM: Rule = Rule {
    id: "writable-root-filesystem",
    severity: Severity::Warning,
    summary: "a container whose root filesystem is writable",
    explanation: "A writable root filesystem lets a compromised process change the container's \
        own binaries, and lets the application write state where nobody expects it: into the \
        container layer, which is lost at every restart (the state looks persistent until the \
        pod moves). With `readOnlyRootFilesystem: true`, every write must go to a declared \
        volume, which is exactly where stateful data belongs.",
    fix: "Set securityContext.readOnlyRootFilesystem: true and mount an emptyDir (e.g. /tmp) or \
        a PVC where the application writes.",
};

pub const CAPABILITIES_NOT_DROPPED: Rule = Rule {
    id: "capabilities-not-dropped",
    severity: Severity::Warning,
    summary: "a container that keeps the runtime's default Linux capabilities",
    explanation: "Container runtimes grant a default set of capabilities (CHOWN, SETUID, \
        NET_RAW, ...) that application servers do not need and that widen what a compromised \
        process can do. Dropping ALL and adding back only what is needed is the restricted Pod \
        Security Standard.",
    fix: "Set securityContext.capabilities.drop: [\"ALL\"] (and allowPrivilegeEscalation: false).",
};

pub const MISSING_SECCOMP_PROFILE: Rule = Rule {
    id: "missing-seccomp-profile",
    severity: Severity::Warning,
    summary: "a container without the RuntimeDefault (or a Localhost) seccomp profile",
    explanation: "Without a seccomp profile a container may make every system call the kernel \
        offers; RuntimeDefault blocks the ones containers have no business making, at no cost \
        to ordinary applications. It is required by the restricted Pod Security Standard.",
    fix: "Set securityContext.seccompProfile.type: RuntimeDefault on the pod.",
};

pub const UNPINNED_IMAGE: Rule = Rule {
    id: "unpinned-image",
    severity: Severity::Warning,
    summary: "an image without a tag, or tagged `latest`",
    explanation: "`latest` (or no tag, which means latest) is whatever was pushed last: two \
        replicas of one StatefulSet can run different versions after a reschedule, a database \
        image can jump a major version on a pod restart and refuse to open its own data \
        directory, and a rollback has nothing to roll back to. With a `latest` tag the kubelet \
        also pulls on every start (imagePullPolicy defaults to Always), so a registry outage \
        stops pods from starting.",
    fix: "Pin the image to a version tag (postgres:16.4-alpine) or a digest (@sha256:...).",
};

pub const PRIVILEGED_CONTAINER: Rule = Rule {
    id: "privileged-container",
    severity: Severity::Warning,
    summary: "a privileged container",
    explanation: "`privileged: true` gives a container every capability and every device of \
        the node, and lifts the seccomp and AppArmor confinement: root in it is root on the \
        node. An application or database never needs it; a CNI or storage driver that does \
        should say so with a suppression. The baseline Pod Security Standard forbids it.",
    fix: "Remove `privileged: true`; add back the one capability really needed, if any.",
};

pub const HOST_NETWORK: Rule = Rule {
    id: "host-network",
    severity: Severity::Warning,
    summary: "a pod in the node's network (or PID or IPC) namespace",
    explanation: "With `hostNetwork: true` the pod uses the node's network stack: it can reach \
        every port listening on the node's loopback, is not selected by NetworkPolicies the \
        way other pods are, and two replicas on one node collide on their port. `hostPID` and \
        `hostIPC` likewise share the node's processes and shared memory. The baseline Pod \
        Security Standard forbids all three.",
    fix: "Remove hostNetwork (and hostPID, hostIPC); expose the pod through a Service.",
};

pub const HOST_PORT: Rule = Rule {
    id: "host-port",
    severity: Severity::Warning,
    summary: "a container port bound to a port of the node (hostPort)",
    explanation: "A `hostPort` opens the port on the node's own address, past any Service and \
        NetworkPolicy, and allows only one such pod per node: a second replica, or the new pod \
        of a rolling update on the same node, stays Pending. The baseline Pod Security \
        Standard restricts it.",
    fix: "Remove hostPort and reach the pod through a Service (NodePort or LoadBalancer when it \
        must be reachable from outside).",
};

pub fn check(objects: &[Object], out: &mut Findings) {
    for w in workloads(objects) {
        host_namespaces(&w, out);
        for c in w.containers() {
            privileged(&w, &c, out);
            host_ports(&w, &c, out);
            probes(&w, &c, out);
            resources(&w, &c, out);
            user(&w, &c, out);
            security_context(&w, &c, out);
            image_tag(&w, &c, out);
        }
    }
}

fn host_namespaces(w: &Workload, out: &mut Findings) {
    for (field, set) in [
        ("hostNetwork", w.pod.host_network),
        ("hostPID", w.pod.host_pid),
        ("hostIPC", w.pod.host_ipc),
    ] {
        if set == Some(true) {
            let message = format!("the pod sets {field}: true and shares the node's namespace");
            out.add(&HOST_NETWORK, w.object, &w.pod_path.key(field), message);
        }
    }
}

fn privileged(w: &Workload, c: &ContainerRef, out: &mut Findings) {
    let sc = c.container.security_context.as_ref();
    if sc.and_then(|s| s.privileged) == Some(true) {
        let message = format!(
            "container {} is privileged: root in it is root on the node",
            c.container.name
        );
        let path = c.path.key("securityContext").key("privileged");
        out.add(&PRIVILEGED_CONTAINER, w.object, &path, message);
    }
}

fn host_ports(w: &Workload, c: &ContainerRef, out: &mut Findings) {
    for (i, port) in c.container.ports.iter().flatten().enumerate() {
        if let Some(host_port) = port.host_port.filter(|p| *p > 0) {
            let message = format!(
                "container {} binds port {} of the node (hostPort): one such pod per node, past any NetworkPolicy",
                c.container.name, host_port
            );
            let path = c.path.key("ports").index(i).key("hostPort");
            out.add(&HOST_PORT, w.object, &path, message);
        }
    }
}

fn probes(w: &Workload, c: &ContainerRef, out: &mut Findings) {
    if c.init || !w.long_running {
        return;
    }
    let mut missing = Vec::new();
    if c.container.readiness_probe.is_none() {
        missing.push("readiness");
    }
    if c.container.liveness_probe.is_none() {
        missing.push("liveness");
    }
    if !missing.is_empty() {
        let message = format!(
            "container {} has no {} probe",
            c.container.name,
            missing.join(" or ")
        );
        out.add(&MISSING_PROBE, w.object, &c.path.key("name"), message);
    }
}

fn resources(w: &Workload, c: &ContainerRef, out: &mut Findings) {
    let resources = c.container.resources.as_ref();
    let has = |section: Option<&std::collections::BTreeMap<String, _>>, key: &str| {
        section.is_some_and(|s| s.contains_key(key))
    };
    let requests = resources.and_then(|r| r.requests.as_ref());
    let limits = resources.and_then(|r| r.limits.as_ref());
    let missing: Vec<&str> = [
        (!has(requests, "cpu")).then_some("requests.cpu"),
        (!has(requests, "memory")).then_some("requests.memory"),
        (!has(limits, "memory")).then_some("limits.memory"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        let message = format!(
            "container {} has no {}",
            c.container.name,
            missing.join(", ")
        );
        out.add(&MISSING_RESOURCES, w.object, &c.path.key("name"), message);
    }
}

fn user(w: &Workload, c: &ContainerRef, out: &mut Findings) {
    let uid = w.run_as_user(c.container);
    let non_root = w.run_as_non_root(c.container) == Some(true);
    let problem = match uid {
        Some(0) => Some("runs as UID 0 (root)".to_owned()),
        None if non_root => Some("sets runAsNonRoot but no numeric runAsUser".to_owned()),
        None => Some(
            "sets neither runAsNonRoot nor runAsUser: it runs as the image's user, often root"
                .to_owned(),
        ),
        Some(_) if !non_root => Some("sets runAsUser but not runAsNonRoot: true".to_owned()),
        Some(_) => None,
    };
    if let Some(problem) = problem {
        let message = format!("container {} {problem}", c.container.name);
        out.add(&RUNS_AS_ROOT, w.object, &c.path.key("name"), message);
    }
}

fn security_context(w: &Workload, c: &ContainerRef, out: &mut Findings) {
    let sc = c.container.security_context.as_ref();
    let name = &c.container.name;
    if sc.and_then(|s| s.read_only_root_filesystem) != Some(true) {
        let message = format!("container {name} can write to its root filesystem");
        out.add(
            &WRITABLE_ROOT_FILESYSTEM,
            w.object,
            &c.path.key("name"),
            message,
        );
    }
    let drops_all = sc
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|caps| caps.drop.as_ref())
        .is_some_and(|drop| drop.iter().any(|cap| cap == "ALL"));
    if !drops_all {
        let message = format!("container {name} does not drop ALL capabilities");
        out.add(
            &CAPABILITIES_NOT_DROPPED,
            w.object,
            &c.path.key("name"),
            message,
        );
    }
    match w.seccomp(c.container) {
        Some("RuntimeDefault" | "Localhost") => {}
        Some(other) => {
            let message = format!("container {name} runs with seccomp profile {other}");
            out.add(
                &MISSING_SECCOMP_PROFILE,
                w.object,
                &c.path.key("name"),
                message,
            );
        }
        None => {
            let message = format!("container {name} has no seccomp profile");
            out.add(
                &MISSING_SECCOMP_PROFILE,
                w.object,
                &c.path.key("name"),
                message,
            );
        }
    }
}

fn image_tag(w: &Workload, c: &ContainerRef, out: &mut Findings) {
    let Some(reference) = c.container.image.as_deref() else {
        return;
    };
    let parsed = image::parse(reference);
    if parsed.digest.is_some() {
        return;
    }
    let problem = match parsed.tag {
        None => "has no tag (which means latest)",
        Some("latest") => "is tagged latest",
        Some(_) => return,
    };
    let message = format!(
        "image {reference} of container {} {problem}",
        c.container.name
    );
    out.add(&UNPINNED_IMAGE, w.object, &c.path.key("image"), message);
}
