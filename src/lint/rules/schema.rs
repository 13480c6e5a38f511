//! Objects that do not read as Kubernetes would read them. Found while decoding (see
//! `objects.rs`); described here.

use crate::lint::report::{Rule, Severity};

pub const UNKNOWN_FIELD: Rule = Rule {
    id: "unknown-field",
    severity: Severity::Warning,
    summary: "a field the object's kind does not have (a typo such as `replica:`)",
    explanation: "Kubernetes clients decode manifests into their typed structures and drop \
        every field they do not know, without a word: `replica: 3` under a StatefulSet's spec \
        applies cleanly and leaves one replica, `readinessprobe:` leaves the container without a \
        probe, and a field indented one level too deep lands in a structure that does not have \
        it. The manifest reads as if the setting were there, and the cluster never sees it. \
        Checked against the Kubernetes 1.33 API.",
    fix: "Check the spelling and the indentation against `kubectl explain`.",
};

pub const SCHEMA_ERROR: Rule = Rule {
    id: "schema-error",
    severity: Severity::Error,
    summary: "a value of the wrong type, or an apiVersion Kubernetes 1.33 does not serve",
    explanation: "The API server rejects the whole object when one value has the wrong type \
        (a string where a number belongs, a list where a map belongs) or when the apiVersion is \
        not served (for instance `apps/v1beta1`, removed long ago), so `kubectl apply` fails \
        and nothing in the object is created.",
    fix: "Give the field a value of the type `kubectl explain` shows, and use the apiVersion \
        the message names.",
};

pub const INVALID_YAML: Rule = Rule {
    id: "invalid-yaml",
    severity: Severity::Error,
    summary: "a document that is not valid YAML (bad indentation, a duplicate key)",
    explanation: "kubectl cannot read the file, or, worse, reads something else than what is \
        written: with a duplicate key, Kubernetes' own YAML reader keeps the last value, so two \
        objects written one after the other without `---` between them become one object that \
        mixes both, and the first silently disappears.",
    fix: "Fix the YAML at the line shown; separate objects with a line holding only `---`.",
};
