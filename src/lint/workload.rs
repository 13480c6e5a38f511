//! One view over every object that runs pods (Deployment, StatefulSet, DaemonSet, ReplicaSet,
//! ReplicationController, Job, CronJob, Pod), so rules need not know where each kind keeps its pod spec.

use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim, PodSpec, PodTemplateSpec};

use super::objects::{Object, Resource};
use super::selector::Labels;
use super::source::Path;

pub struct Workload<'a> {
    pub object: &'a Object,
    pub pod: &'a PodSpec,
    /// Where the pod spec sits in the object.
    pub pod_path: Path,
    pub pod_labels: Labels,
    /// Desired replicas for Deployment, ReplicaSet and StatefulSet (default 1); `None` for
    /// kinds that do not scale that way.
    pub replicas: Option<i32>,
    /// A StatefulSet's `volumeClaimTemplates`.
    pub claim_templates: &'a [PersistentVolumeClaim],
    /// A server that should keep running (not a Job, CronJob or run-once Pod).
    pub long_running: bool,
}

/// A container of a workload, with its path in the object.
pub struct ContainerRef<'a> {
    pub container: &'a Container,
    pub path: Path,
    pub init: bool,
}

/// What backs a volume a container mounts.
#[derive(Debug)]
pub enum Storage<'a> {
    /// A StatefulSet claim template (`volumeClaimTemplates[index]`): one PVC per pod.
    ClaimTemplate {
        index: usize,
        claim: &'a PersistentVolumeClaim,
    },
    /// A named PVC, shared by every pod that mounts it.
    Claim {
        claim_name: &'a str,
        read_only: bool,
    },
    HostPath(&'a str),
    /// A network filesystem every pod sees the same (nfs, cephfs, ...).
    NetworkFilesystem {
        kind: &'static str,
        read_only: bool,
    },
    /// A disk attached directly in the pod spec (gcePersistentDisk, awsElasticBlockStore,
    /// cinder, an inline CSI volume, ...): it outlives the pod like a PVC does.
    Disk(&'static str),
    /// emptyDir, configMap, secret, projected, downwardAPI, ephemeral, ...: gone with the pod.
    Other,
    /// No volume of that name.
    Missing,
}

impl Storage<'_> {
    /// Whether the data outlives the pod and is file-backed.
    pub fn is_persistent(&self) -> bool {
        !matches!(self, Storage::Other | Storage::Missing)
    }

    /// Whether the volume comes from a PVC (a claim template or a named claim).
    pub fn is_claim(&self) -> bool {
        matches!(self, Storage::ClaimTemplate { .. } | Storage::Claim { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            Storage::ClaimTemplate { claim, .. } => format!(
                "claim template {}",
                claim.metadata.name.as_deref().unwrap_or("(unnamed)")
            ),
            Storage::Claim { claim_name, .. } => format!("PVC {claim_name}"),
            Storage::HostPath(path) => format!("hostPath {path}"),
            Storage::NetworkFilesystem { kind, .. } => format!("a {kind} volume"),
            Storage::Disk(kind) => format!("a {kind} disk"),
            Storage::Other | Storage::Missing => "a volume".to_owned(),
        }
    }
}

pub fn workloads(objects: &[Object]) -> impl Iterator<Item = Workload<'_>> {
    objects.iter().filter_map(workload)
}

fn from_template<'a>(
    object: &'a Object,
    template: &'a PodTemplateSpec,
    template_path: Path,
    replicas: Option<i32>,
    long_running: bool,
) -> Option<Workload<'a>> {
    Some(Workload {
        object,
        pod: template.spec.as_ref()?,
        pod_path: template_path.key("spec"),
        pod_labels: template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default(),
        replicas,
        claim_templates: &[],
        long_running,
    })
}

fn workload(object: &Object) -> Option<Workload<'_>> {
    let spec = Path::root().key("spec");
    match &object.resource {
        Resource::Deployment(d) => {
            let s = d.spec.as_ref()?;
            from_template(
                object,
                &s.template,
                spec.key("template"),
                Some(s.replicas.unwrap_or(1)),
                true,
            )
        }
        Resource::ReplicaSet(r) => {
            let s = r.spec.as_ref()?;
            let template = s.template.as_ref()?;
            from_template(
                object,
                template,
                spec.key("template"),
                Some(s.replicas.unwrap_or(1)),
                true,
            )
        }
        Resource::ReplicationController(rc) => {
            let s = rc.spec.as_ref()?;
            from_template(
                object,
                s.template.as_ref()?,
                spec.key("template"),
                Some(s.replicas.unwrap_or(1)),
                true,
            )
        }
        Resource::StatefulSet(sts) => {
            let s = sts.spec.as_ref()?;
            let mut w = from_template(
                object,
                &s.template,
                spec.key("template"),
                Some(s.replicas.unwrap_or(1)),
                true,
            )?;
            w.claim_templates = s.volume_claim_templates.as_deref().unwrap_or_default();
            Some(w)
        }
        Resource::DaemonSet(ds) => from_template(
            object,
            &ds.spec.as_ref()?.template,
            spec.key("template"),
            None,
            true,
        ),
        Resource::Job(job) => from_template(
            object,
            &job.spec.as_ref()?.template,
            spec.key("template"),
            None,
            false,
        ),
        Resource::CronJob(cron) => {
            let job = cron.spec.as_ref()?.job_template.spec.as_ref()?;
            let path = spec.key("jobTemplate").key("spec").key("template");
            from_template(object, &job.template, path, None, false)
        }
        Resource::Pod(pod) => {
            let pod_spec = pod.spec.as_ref()?;
            let restart = pod_spec.restart_policy.as_deref().unwrap_or("Always");
            Some(Workload {
                object,
                pod: pod_spec,
                pod_path: spec,
                pod_labels: pod.metadata.labels.clone().unwrap_or_default(),
                replicas: None,
                claim_templates: &[],
                long_running: restart == "Always",
            })
        }
        _ => None,
    }
}

fn network(kind: &'static str, read_only: Option<bool>) -> Storage<'static> {
    Storage::NetworkFilesystem {
        kind,
        read_only: read_only == Some(true),
    }
}

/// Block and driver volumes written into the pod spec itself, which keep their data after the
/// pod is gone. Inline CSI volumes count too, except the Secrets Store driver's, which only
/// projects secrets.
fn disk_kind(volume: &k8s_openapi::api::core::v1::Volume) -> Option<&'static str> {
    let kinds = [
        (volume.gce_persistent_disk.is_some(), "gcePersistentDisk"),
        (
            volume.aws_elastic_block_store.is_some(),
            "awsElasticBlockStore",
        ),
        (volume.cinder.is_some(), "cinder"),
        (volume.azure_disk.is_some(), "azureDisk"),
        (volume.rbd.is_some(), "rbd"),
        (volume.iscsi.is_some(), "iscsi"),
        (volume.fc.is_some(), "fc"),
        (volume.vsphere_volume.is_some(), "vsphereVolume"),
        (volume.portworx_volume.is_some(), "portworxVolume"),
        (
            volume.photon_persistent_disk.is_some(),
            "photonPersistentDisk",
        ),
        (volume.scale_io.is_some(), "scaleIO"),
        (volume.storageos.is_some(), "storageos"),
        (volume.flocker.is_some(), "flocker"),
        (volume.flex_volume.is_some(), "flexVolume"),
        (
            volume
                .csi
                .as_ref()
                .is_some_and(|csi| !csi.driver.contains("secrets-store")),
            "csi",
        ),
    ];
    kinds
        .into_iter()
        .find_map(|(set, kind)| set.then_some(kind))
}

impl<'a> Workload<'a> {
    pub fn kind(&self) -> &str {
        &self.object.kind
    }

    /// Init containers first, then the app containers, as the kubelet starts them.
    pub fn containers(&self) -> Vec<ContainerRef<'a>> {
        let init = self.pod.init_containers.as_deref().unwrap_or_default();
        let init = init.iter().enumerate().map(|(i, container)| ContainerRef {
            container,
            path: self.pod_path.key("initContainers").index(i),
            init: true,
        });
        let app = self
            .pod
            .containers
            .iter()
            .enumerate()
            .map(|(i, container)| ContainerRef {
                container,
                path: self.pod_path.key("containers").index(i),
                init: false,
            });
        init.chain(app).collect()
    }

    pub fn app_containers(&self) -> Vec<ContainerRef<'a>> {
        self.containers().into_iter().filter(|c| !c.init).collect()
    }

    pub fn init_containers(&self) -> Vec<ContainerRef<'a>> {
        self.containers().into_iter().filter(|c| c.init).collect()
    }

    /// What backs the volume called `name`. Claim templates win over pod volumes of the same
    /// name, as in the StatefulSet controller.
    pub fn storage(&self, name: &str) -> Storage<'a> {
        if let Some(index) = self
            .claim_templates
            .iter()
            .position(|t| t.metadata.name.as_deref() == Some(name))
        {
            let claim = &self.claim_templates[index];
            return Storage::ClaimTemplate { index, claim };
        }
        let Some(volume) = self.pod.volumes.iter().flatten().find(|v| v.name == name) else {
            return Storage::Missing;
        };
        if let Some(claim) = &volume.persistent_volume_claim {
            Storage::Claim {
                claim_name: &claim.claim_name,
                read_only: claim.read_only == Some(true),
            }
        } else if let Some(host) = &volume.host_path {
            Storage::HostPath(&host.path)
        } else if let Some(nfs) = &volume.nfs {
            network("nfs", nfs.read_only)
        } else if let Some(ceph) = &volume.cephfs {
            network("cephfs", ceph.read_only)
        } else if let Some(gluster) = &volume.glusterfs {
            network("glusterfs", gluster.read_only)
        } else if let Some(azure) = &volume.azure_file {
            network("azureFile", azure.read_only)
        } else if let Some(quobyte) = &volume.quobyte {
            network("quobyte", quobyte.read_only)
        } else if let Some(kind) = disk_kind(volume) {
            Storage::Disk(kind)
        } else {
            Storage::Other
        }
    }

    /// The path of the pod volume called `name`, for pointing at it.
    pub fn volume_path(&self, name: &str) -> Option<Path> {
        let index = self
            .pod
            .volumes
            .iter()
            .flatten()
            .position(|v| v.name == name)?;
        Some(self.pod_path.key("volumes").index(index))
    }

    /// The user a container runs as: its own `runAsUser`, else the pod's. `None` means the
    /// image's own user.
    pub fn run_as_user(&self, container: &Container) -> Option<i64> {
        container
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_user)
            .or_else(|| {
                self.pod
                    .security_context
                    .as_ref()
                    .and_then(|s| s.run_as_user)
            })
    }

    pub fn run_as_non_root(&self, container: &Container) -> Option<bool> {
        container
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_non_root)
            .or_else(|| {
                self.pod
                    .security_context
                    .as_ref()
                    .and_then(|s| s.run_as_non_root)
            })
    }

    pub fn fs_group(&self) -> Option<i64> {
        self.pod.security_context.as_ref().and_then(|s| s.fs_group)
    }

    /// The seccomp profile type in effect for a container.
    pub fn seccomp(&self, container: &'a Container) -> Option<&'a str> {
        let profile = |sc: Option<&'a k8s_openapi::api::core::v1::SeccompProfile>| {
            sc.map(|p| p.type_.as_str())
        };
        profile(
            container
                .security_context
                .as_ref()
                .and_then(|s| s.seccomp_profile.as_ref()),
        )
        .or_else(|| {
            profile(
                self.pod
                    .security_context
                    .as_ref()
                    .and_then(|s| s.seccomp_profile.as_ref()),
            )
        })
    }
}
