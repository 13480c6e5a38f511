//! The cluster as the experiments see it: one namespace of the current kubeconfig's cluster,
//! reached only through the Kubernetes API (the API server's proxy for HTTP, the exec
//! subresource for commands in pods), so no kubectl and no network route to pods is needed.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use super::kube::{Api, Client};
use super::objects::{
    Deployment, Meta, Namespace, PersistentVolumeClaim, Pod, Secret, Service, StatefulSet,
};
use crate::demo::poll;

/// How long a pod may take to be scheduled, started and ready again (a PostgreSQL restart
/// on a slow node included).
pub const POD_READY_WITHIN: Duration = Duration::from_secs(180);

#[derive(Clone)]
pub struct Cluster {
    client: Client,
    pub namespace: String,
}

/// An HTTP answer read through the API server's proxy.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    /// The status and the start of the body, for a check's detail.
    pub fn brief(&self) -> String {
        let body: String = self.body.chars().take(200).collect();
        format!("{} {}", self.status, body.trim())
    }
}

/// What a command run in a pod printed, and whether it exited 0.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub success: bool,
}

/// A pod as the experiments compare it before and after: which incarnation, its restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    pub name: String,
    pub uid: String,
    pub restarts: i32,
    pub ready: bool,
}

impl Cluster {
    pub async fn connect(namespace: Option<String>) -> Result<Self> {
        let client = Client::from_environment().context(
            "no cluster to talk to: set KUBECONFIG (or ~/.kube/config) to one, \
             e.g. eval \"$(scripts/cluster.sh env)\"",
        )?;
        let namespace = namespace.unwrap_or_else(|| client.default_namespace.clone());
        Ok(Self { client, namespace })
    }

    /// The same cluster, another namespace.
    pub fn in_namespace(&self, namespace: &str) -> Self {
        Self {
            client: self.client.clone(),
            namespace: namespace.to_string(),
        }
    }

    pub fn pods(&self) -> Api<Pod> {
        self.client.api(&self.namespace)
    }
    pub fn statefulsets(&self) -> Api<StatefulSet> {
        self.client.api(&self.namespace)
    }
    pub fn deployments(&self) -> Api<Deployment> {
        self.client.api(&self.namespace)
    }
    pub fn services(&self) -> Api<Service> {
        self.client.api(&self.namespace)
    }
    pub fn claims(&self) -> Api<PersistentVolumeClaim> {
        self.client.api(&self.namespace)
    }
    pub fn secrets(&self) -> Api<Secret> {
        self.client.api(&self.namespace)
    }

    /// Checks the API answers, so that a wrong kubeconfig is one clear error rather than a
    /// failed check per lab.
    pub async fn check_api(&self) -> Result<()> {
        let version = tokio::time::timeout(Duration::from_secs(15), self.client.version());
        match version.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(anyhow!(e)).context("the cluster's API does not answer"),
            Err(_) => bail!("the cluster's API does not answer within 15 s"),
        }
    }

    pub async fn check_namespace(&self) -> Result<()> {
        let namespaces: Api<Namespace> = self.client.api("");
        match namespaces.get_opt(&self.namespace).await? {
            Some(_) => Ok(()),
            None => bail!("namespace {:?} does not exist", self.namespace),
        }
    }

    /// An HTTP request to a Service (`service` is `name:port`) through the API server's proxy,
    /// which sends each request to one of the Service's ready pods.
    pub async fn service_http(
        &self,
        service: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let uri = format!(
            "/api/v1/namespaces/{}/services/{service}/proxy{path}",
            self.namespace
        );
        self.proxy(method, &uri, body).await
    }

    /// An HTTP request to one pod (`pod` is `name:port`) through the API server's proxy.
    pub async fn pod_http(
        &self,
        pod: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let uri = format!(
            "/api/v1/namespaces/{}/pods/{pod}/proxy{path}",
            self.namespace
        );
        self.proxy(method, &uri, body).await
    }

    async fn proxy(&self, method: &str, uri: &str, body: Option<&Value>) -> Result<Answer> {
        let answer = async {
            let response = self.client.send(method, uri, body).await?;
            let status = response.status().as_u16();
            Ok::<_, anyhow::Error>((status, response.bytes().await?))
        };
        let (status, body) = tokio::time::timeout(Duration::from_secs(30), answer)
            .await
            .with_context(|| format!("{method} {uri}: no answer within 30 s"))?
            .with_context(|| format!("{method} {uri}"))?;
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// Runs a command in a pod's container (the first one when `container` is None), as
    /// `kubectl exec` does.
    pub async fn exec(
        &self,
        pod: &str,
        container: Option<&str>,
        command: &[&str],
    ) -> Result<Output> {
        let run = async {
            let (out, err, success) = self
                .client
                .exec(&self.namespace, pod, container, command)
                .await
                .with_context(|| format!("exec in pod {pod}"))?;
            Ok::<_, anyhow::Error>(Output {
                stdout: String::from_utf8_lossy(&out).into_owned(),
                stderr: String::from_utf8_lossy(&err).into_owned(),
                success,
            })
        };
        tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .with_context(|| format!("exec in pod {pod}: not finished within 60 s"))?
    }

    /// `kubectl run NAME --image=IMAGE --restart=Never --rm -i -- COMMAND...`: a one-off pod,
    /// its output once it has ended, then the pod deleted.
    pub async fn run_pod(&self, name: &str, image: &str, command: &[&str]) -> Result<Output> {
        let pods = self.pods();
        let _ = pods.delete(name).await;
        poll::until(Duration::from_secs(60), || async {
            matches!(pods.get_opt(name).await, Ok(None)).then_some(())
        })
        .await
        .with_context(|| format!("an earlier pod {name} is still there"))?;
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "statelab-verify"}},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "containers": [{"name": name, "image": image, "args": command,
                                "imagePullPolicy": "IfNotPresent"}],
            }
        });
        pods.create(&pod)
            .await
            .with_context(|| format!("creating pod {name}"))?;
        let phase = poll::until(POD_READY_WITHIN, || async {
            let pod = pods.get_opt(name).await.ok().flatten()?;
            let phase = pod.status?.phase?;
            matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
        })
        .await;
        let logs = pods.logs(name).await.unwrap_or_default();
        let _ = pods.delete(name).await;
        let phase = phase
            .with_context(|| format!("pod {name} did not finish within {POD_READY_WITHIN:?}"))?;
        Ok(Output {
            stdout: logs,
            stderr: String::new(),
            success: phase == "Succeeded",
        })
    }

    pub async fn pod_state(&self, name: &str) -> Result<Option<PodState>> {
        Ok(self.pods().get_opt(name).await?.map(|pod| state_of(&pod)))
    }

    /// The pods matching a label selector, by name.
    pub async fn pods_matching(&self, selector: &str) -> Result<BTreeMap<String, Pod>> {
        let list = self.pods().list(selector).await?;
        Ok(list
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| (p.name(), p))
            .collect())
    }

    /// Deletes a pod and waits for its controller's replacement (a new UID) to be ready.
    pub async fn delete_pod_and_wait(&self, name: &str) -> Result<PodState> {
        let before = self
            .pod_state(name)
            .await?
            .with_context(|| format!("pod {name} does not exist"))?;
        self.pods()
            .delete(name)
            .await
            .with_context(|| format!("deleting pod {name}"))?;
        self.wait_pod_ready(name, Some(&before.uid)).await
    }

    /// Waits until the pod exists (with another UID than `not_uid`) and is ready.
    pub async fn wait_pod_ready(&self, name: &str, not_uid: Option<&str>) -> Result<PodState> {
        poll::until(POD_READY_WITHIN, || async {
            let state = self.pod_state(name).await.ok().flatten()?;
            (state.ready && Some(state.uid.as_str()) != not_uid).then_some(state)
        })
        .await
        .with_context(|| format!("pod {name} not ready again within {POD_READY_WITHIN:?}"))
    }

    pub async fn scale_deployment(&self, name: &str, replicas: i32) -> Result<()> {
        self.deployments()
            .scale(name, replicas)
            .await
            .with_context(|| format!("scaling deployment {name} to {replicas}"))?;
        self.wait_deployment(name, replicas).await
    }

    /// Waits until exactly `replicas` pods of the Deployment exist and all are ready (old pods
    /// gone: a Recreate rollout or a scale-down has finished).
    pub async fn wait_deployment(&self, name: &str, replicas: i32) -> Result<()> {
        let selector = self.deployment_selector(name).await?;
        poll::until(POD_READY_WITHIN, || async {
            let all = self.pods().list(&selector).await.ok()?;
            let ready = all.iter().filter(|p| state_of(p).ready).count() as i32;
            (all.len() as i32 == replicas && ready == replicas).then_some(())
        })
        .await
        .with_context(|| {
            format!("deployment {name} not at {replicas} ready pods within {POD_READY_WITHIN:?}")
        })
    }

    pub async fn deployment_selector(&self, name: &str) -> Result<String> {
        let deployment = self
            .deployments()
            .get(name)
            .await
            .with_context(|| format!("deployment {name}"))?;
        selector_string(deployment.spec.and_then(|s| s.selector.match_labels))
    }

    pub async fn statefulset_selector(&self, name: &str) -> Result<String> {
        let set = self
            .statefulsets()
            .get(name)
            .await
            .with_context(|| format!("statefulset {name}"))?;
        selector_string(set.spec.and_then(|s| s.selector.match_labels))
    }

    /// The PVC a pod mounts under the given volume name.
    pub async fn claim_of(&self, pod: &str, volume: &str) -> Result<(String, String)> {
        let pod = self.pods().get(pod).await?;
        let claim = pod
            .spec
            .and_then(|s| s.volumes)
            .unwrap_or_default()
            .into_iter()
            .find(|v| v.name == volume)
            .and_then(|v| v.persistent_volume_claim)
            .map(|c| c.claim_name)
            .with_context(|| {
                format!(
                    "pod {} mounts no PVC as volume {volume}",
                    pod.metadata.name.unwrap_or_default()
                )
            })?;
        let uid = self.claims().get(&claim).await?.uid().unwrap_or_default();
        Ok((claim, uid))
    }
}

pub fn state_of(pod: &Pod) -> PodState {
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        && pod.metadata.deletion_timestamp.is_none();
    let restarts = status
        .and_then(|s| s.container_statuses.as_ref())
        .map(|c| c.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0);
    PodState {
        name: pod.name(),
        uid: pod.uid().unwrap_or_default(),
        restarts,
        ready,
    }
}

fn selector_string(labels: Option<BTreeMap<String, String>>) -> Result<String> {
    let labels = labels.context("the workload has no matchLabels selector")?;
    Ok(labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(","))
}
