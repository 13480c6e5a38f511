//! Seed 002: a claim template named `config-volume` mounted with `subPath: config.json` onto
//! `/config.json`.

use std::collections::HashSet;

use crate::lint::image;
use crate::lint::objects::Object;
use crate::lint::report::{Rule, Severity};
use crate::lint::rules::Findings;
use crate::lint::workload::workloads;

pub const CONFIG_ON_PVC: Rule = Rule {
    id: "config-on-pvc",
    severity: Severity::Warning,
    summary: "a volume from a PVC mounted at a configuration path, or onto a single config file",
    explanation: "A PVC starts empty, belongs to one pod (or is shared by all of them), and \
        outlives every edit of the manifest. Configuration on it is therefore missing on first \
        start, differs from pod to pod, and never changes when the chart's values do: seed \
        002's StatefulSet mounts a claim template onto /config.json with `subPath: \
        config.json`, so each pod gets an empty, writable, per-pod directory where the \
        ConfigMap's file was meant to be. A `subPath` mount onto a single file also never sees \
        updates. Found: a PVC or claim template mounted under /etc or at a path with a \
        `config`/`conf` component, or onto a file with a configuration extension, once per \
        volume and object. Images that keep their own state under /config (the linuxserver.io \
        and hotio families, Home Assistant, Jellyfin, Plex) are not flagged there.",
    fix: "Put configuration in a ConfigMap (or a Secret) and mount that; keep PVCs for the data \
        the application writes.",
};

const CONFIG_EXTENSIONS: &[&str] = &[
    "json",
    "yaml",
    "yml",
    "toml",
    "ini",
    "conf",
    "cfg",
    "properties",
    "env",
    "xml",
];

/// `/etc/app`, `/app/config`, `/config.json`: paths where configuration lives.
fn is_config_path(path: &str) -> bool {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let config_dir = components
        .iter()
        .any(|c| matches!(*c, "etc" | "config" | "conf" | "configs" | "settings"));
    config_dir || components.last().is_some_and(|last| is_config_file(last))
}

fn is_config_file(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(stem, ext)| !stem.is_empty() && CONFIG_EXTENSIONS.contains(&ext))
}

pub fn check(objects: &[Object], out: &mut Findings) {
    for w in workloads(objects) {
        // One finding per volume and object: sidecars mounting the same claim add nothing.
        let mut reported = HashSet::new();
        for c in w.containers() {
            let keeps_state = c
                .container
                .image
                .as_deref()
                .is_some_and(image::keeps_state_in_config);
            for (k, mount) in c.container.volume_mounts.iter().flatten().enumerate() {
                let storage = w.storage(&mount.name);
                if !storage.is_claim() || reported.contains(mount.name.as_str()) {
                    continue;
                }
                let sub_path = mount.sub_path.as_deref().unwrap_or("");
                let onto_file = !sub_path.is_empty()
                    && is_config_file(sub_path.rsplit('/').next().unwrap_or(sub_path));
                if !onto_file && !is_config_path(&mount.mount_path) {
                    continue;
                }
                // `/config` is where these images keep their database and the settings they
                // write themselves: state, which belongs on a PVC.
                if keeps_state && !onto_file && is_under(&mount.mount_path, "/config") {
                    continue;
                }
                reported.insert(mount.name.as_str());
                let what = if onto_file {
                    format!("{} (subPath {sub_path})", mount.mount_path)
                } else {
                    mount.mount_path.clone()
                };
                let message = format!(
                    "container {} mounts {} at {what}: configuration on a PVC starts empty, is per-pod, and ignores later edits",
                    c.container.name,
                    storage.describe()
                );
                out.add(
                    &CONFIG_ON_PVC,
                    w.object,
                    &c.path.key("volumeMounts").index(k).key("mountPath"),
                    message,
                );
            }
        }
    }
}

fn is_under(path: &str, dir: &str) -> bool {
    let path = path.trim_end_matches('/');
    path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}
