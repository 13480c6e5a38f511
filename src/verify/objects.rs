//! The Kubernetes objects as the checks read them: only the fields they look at, named as the
//! API names them (and as k8s-openapi does, `type` as `type_`). Everything else in an answer is
//! skipped. Kept small on purpose: decoding the full types again here (lint has them) would
//! add their whole decoder to the binary a second time.

use std::collections::BTreeMap;

use serde::Deserialize;

/// An object kind: where its collection lives under the API server.
pub trait Kind: serde::de::DeserializeOwned {
    /// `api/v1` or `apis/GROUP/VERSION`.
    const API: &'static str;
    /// The collection's name in paths: `pods`, `statefulsets`.
    const PLURAL: &'static str;
    /// Cluster-wide kinds (Namespace) have no namespace in their paths.
    const NAMESPACED: bool = true;
    fn metadata(&self) -> &ObjectMeta;
}

macro_rules! kind {
    ($type:ident, $api:literal, $plural:literal $(, namespaced = $namespaced:literal)?) => {
        impl Kind for $type {
            const API: &'static str = $api;
            const PLURAL: &'static str = $plural;
            $(const NAMESPACED: bool = $namespaced;)?
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
        }
    };
}

kind!(Pod, "api/v1", "pods");
kind!(Service, "api/v1", "services");
kind!(PersistentVolumeClaim, "api/v1", "persistentvolumeclaims");
kind!(Secret, "api/v1", "secrets");
kind!(Namespace, "api/v1", "namespaces", namespaced = false);
kind!(Deployment, "apis/apps/v1", "deployments");
kind!(StatefulSet, "apis/apps/v1", "statefulsets");

/// `metadata` of any object, for the names, UIDs and labels the checks compare.
pub trait Meta {
    fn name(&self) -> String;
    fn uid(&self) -> Option<String>;
    fn labels(&self) -> BTreeMap<String, String>;
}

impl<K: Kind> Meta for K {
    fn name(&self) -> String {
        self.metadata().name.clone().unwrap_or_default()
    }
    fn uid(&self) -> Option<String> {
        self.metadata().uid.clone()
    }
    fn labels(&self) -> BTreeMap<String, String> {
        self.metadata().labels.clone().unwrap_or_default()
    }
}

/// An RFC 3339 instant, as the API writes `creationTimestamp` and the like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub struct Time(#[serde(with = "time::serde::rfc3339")] pub time::OffsetDateTime);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: Option<String>,
    pub uid: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub generation: Option<i64>,
    pub creation_timestamp: Option<Time>,
    pub deletion_timestamp: Option<Time>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Pod {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: Option<PodSpec>,
    pub status: Option<PodStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodSpec {
    pub volumes: Option<Vec<Volume>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub persistent_volume_claim: Option<ClaimSource>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimSource {
    pub claim_name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    pub phase: Option<String>,
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    pub conditions: Option<Vec<Condition>>,
    pub container_statuses: Option<Vec<ContainerStatus>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub last_transition_time: Option<Time>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    #[serde(default)]
    pub restart_count: i32,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Service {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: Option<ServiceSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ServiceSpec {
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PersistentVolumeClaim {
    #[serde(default)]
    pub metadata: ObjectMeta,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Namespace {
    #[serde(default)]
    pub metadata: ObjectMeta,
}

/// A Secret's `data`: each value base64, as the API sends it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Secret {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub data: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Deployment {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: Option<DeploymentSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeploymentSpec {
    pub replicas: Option<i32>,
    #[serde(default)]
    pub selector: LabelSelector,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    pub match_labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StatefulSet {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: Option<StatefulSetSpec>,
    pub status: Option<StatefulSetStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetSpec {
    pub replicas: Option<i32>,
    #[serde(default)]
    pub selector: LabelSelector,
    pub pod_management_policy: Option<String>,
    pub update_strategy: Option<UpdateStrategy>,
    pub volume_claim_templates: Option<Vec<ClaimTemplate>>,
    pub persistent_volume_claim_retention_policy: Option<RetentionPolicy>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub rolling_update: Option<RollingUpdate>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RollingUpdate {
    pub partition: Option<i32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClaimTemplate {
    #[serde(default)]
    pub metadata: ObjectMeta,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicy {
    pub when_scaled: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetStatus {
    pub ready_replicas: Option<i32>,
    pub observed_generation: Option<i64>,
    pub update_revision: Option<String>,
    pub current_revision: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_as_the_api_sends_it_decodes_to_the_fields_the_checks_read() {
        let pod: Pod = serde_json::from_str(
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"postgres-0","uid":"u-1",
            "labels":{"app":"postgres"},"creationTimestamp":"2026-12-02T10:00:00Z",
            "managedFields":[{"manager":"kubelet"}]},
            "spec":{"containers":[{"name":"db","image":"postgres:17.6"}],
                    "volumes":[{"name":"data","persistentVolumeClaim":{"claimName":"data-postgres-0"}}]},
            "status":{"phase":"Running","podIP":"10.244.0.7",
              "conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-12-02T10:00:05Z"}],
              "containerStatuses":[{"name":"db","restartCount":2,"ready":true}]}}"#,
        )
        .unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("postgres-0"));
        let status = pod.status.unwrap();
        assert_eq!(status.pod_ip.as_deref(), Some("10.244.0.7"));
        assert_eq!(status.container_statuses.unwrap()[0].restart_count, 2);
        let ready = &status.conditions.unwrap()[0];
        let created = pod.metadata.creation_timestamp.unwrap();
        assert_eq!(
            (ready.last_transition_time.unwrap().0 - created.0).as_seconds_f64(),
            5.0
        );
        let volume = &pod.spec.unwrap().volumes.unwrap()[0];
        assert_eq!(
            volume.persistent_volume_claim.as_ref().unwrap().claim_name,
            "data-postgres-0"
        );
    }
}
