//! Label selectors, evaluated as Kubernetes evaluates them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

pub type Labels = BTreeMap<String, String>;

/// A Service-style selector (a plain map): every pair must be among the labels. An empty
/// selector selects nothing here (a Service without a selector has no automatic endpoints).
pub fn map_selects(selector: &Labels, labels: &Labels) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// A `LabelSelector` (NetworkPolicy, PodDisruptionBudget): `{}` selects every pod.
pub fn selects(selector: &LabelSelector, labels: &Labels) -> bool {
    let pairs = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    pairs && expressions
}

/// `app=redis, tier=cache` for messages.
pub fn describe(labels: &Labels) -> String {
    if labels.is_empty() {
        return "no labels".to_owned();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Items with selectors, filed under one label pair each, so that finding the ones that may
/// select a pod costs a lookup per pod label instead of a pass over every item. Items whose
/// selector has no pair (`{}`, or expressions only) are candidates for every pod.
pub struct SelectorIndex<'a, T> {
    by_pair: std::collections::HashMap<(&'a str, &'a str), Vec<T>>,
    everywhere: Vec<T>,
}

impl<'a, T: Copy> SelectorIndex<'a, T> {
    pub fn new() -> Self {
        SelectorIndex {
            by_pair: std::collections::HashMap::new(),
            everywhere: Vec::new(),
        }
    }

    /// Files `item` under one pair its selector requires (any one: a pod it selects has them all).
    pub fn insert(&mut self, pairs: Option<&'a Labels>, item: T) {
        match pairs.and_then(|p| p.iter().next()) {
            Some((k, v)) => self
                .by_pair
                .entry((k.as_str(), v.as_str()))
                .or_default()
                .push(item),
            None => self.everywhere.push(item),
        }
    }

    /// The items that may select a pod with `labels`; the caller still checks each.
    pub fn candidates<'s>(&'s self, labels: &'s Labels) -> impl Iterator<Item = T> + 's {
        let filed = labels
            .iter()
            .filter_map(|(k, v)| self.by_pair.get(&(k.as_str(), v.as_str())))
            .flatten();
        self.everywhere.iter().chain(filed).copied()
    }
}
