//! Suppressions: the annotation `statelab.dev/ignore: "RULE: reason"` on an object silences
//! RULE on that object. The reason is required: a deliberate anti-pattern (the guestbook's
//! shared SQLite file) says why it is there, in the manifest, for the next reader.
//!
//! Several rules may share a reason (`rule-a, rule-b: reason`); several entries go on separate
//! lines of the annotation's value.

use std::collections::{HashMap, HashSet};

use crate::lint::objects::{IGNORE_ANNOTATION, Object};
use crate::lint::report::{Rule, Severity};
use crate::lint::rules::{Findings, find};
use crate::lint::source::Path;

pub const INVALID_SUPPRESSION: Rule = Rule {
    id: "invalid-suppression",
    severity: Severity::Warning,
    summary: "a statelab.dev/ignore annotation without a reason, or naming no rule",
    explanation: "A suppression records a decision: that this object breaks a rule on purpose, \
        and why. Without the why, the next reader cannot tell a deliberate lesson from a \
        forgotten mistake, so a suppression without a reason is not applied. A suppression \
        naming a rule that does not exist (a typo) silences nothing.",
    fix: "Write the annotation as `statelab.dev/ignore: \"RULE: reason\"`, with a rule id from \
        `statelab lint --list-rules`.",
};

pub const UNUSED_SUPPRESSION: Rule = Rule {
    id: "unused-suppression",
    severity: Severity::Info,
    summary: "a suppression that silences nothing",
    explanation: "The object no longer breaks the rule its annotation suppresses (it was fixed, \
        or the rule no longer applies): the annotation now only misleads the reader into \
        thinking the object is a deliberate exception.",
    fix: "Remove the entry from the statelab.dev/ignore annotation.",
};

/// Drops the findings suppressed by annotations and adds findings about the annotations
/// themselves. Returns how many findings were suppressed.
pub fn apply(objects: &[Object], findings: &mut Findings) -> usize {
    // Findings counted per object and rule once, and dropped in one pass at the end: linear
    // however many objects carry suppressions.
    let mut counts: HashMap<(usize, &str), usize> = HashMap::new();
    for f in &findings.items {
        if let Some(index) = f.object_index {
            *counts.entry((index, f.rule)).or_default() += 1;
        }
    }
    let mut silence: HashSet<(usize, &str)> = HashSet::new();
    let mut notes = Findings::default();
    let mut suppressed = 0;
    for object in objects {
        let Some(annotation) = object.ignore.as_deref() else {
            continue;
        };
        let path = Path::root()
            .key("metadata")
            .key("annotations")
            .key(IGNORE_ANNOTATION);
        for entry in annotation.lines().map(str::trim).filter(|e| !e.is_empty()) {
            let (ids, reason) = entry.split_once(':').unwrap_or((entry, ""));
            if reason.trim().is_empty() {
                let message = format!(
                    "suppression `{entry}` gives no reason (\"RULE: reason\"), so it is not applied"
                );
                notes.add(&INVALID_SUPPRESSION, object, &path, message);
                continue;
            }
            for id in ids.split(',').map(str::trim) {
                let Some(rule) = find(id) else {
                    let message = format!("suppression names `{id}`, which is not a rule");
                    notes.add(&INVALID_SUPPRESSION, object, &path, message);
                    continue;
                };
                let key = (object.index, rule.id);
                let silenced = if silence.insert(key) {
                    counts.get(&key).copied().unwrap_or(0)
                } else {
                    0
                };
                suppressed += silenced;
                if silenced == 0 {
                    let message = format!(
                        "suppression of `{id}` silences nothing: {} has no such finding",
                        object.id()
                    );
                    notes.add(&UNUSED_SUPPRESSION, object, &path, message);
                }
            }
        }
    }
    findings.items.retain(|f| {
        !f.object_index
            .is_some_and(|i| silence.contains(&(i, f.rule)))
    });
    findings.items.append(&mut notes.items);
    suppressed
}
