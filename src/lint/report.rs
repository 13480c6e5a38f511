//! What a lint run produces: findings, the inputs it skipped or could not read, and counts.

use serde::Serialize;

/// How bad a finding is. Ordered: `Info < Warning < Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// A rule's fixed description. Its `id` is part of the command's interface (suppressions,
/// `--explain`, JSON and SARIF output name it).
#[derive(Debug)]
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    /// One line: what the rule finds.
    pub summary: &'static str,
    /// A paragraph for `--explain`: what goes wrong in a cluster, and why.
    pub explanation: &'static str,
    /// What to do about it, when a finding has nothing more specific to say.
    pub fix: &'static str,
}

/// One problem in one object.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// `Kind/namespace/name` (`Kind/name` when the manifest names no namespace).
    pub object: String,
    pub message: String,
    pub fix: String,
    /// The object the finding belongs to (index into the run's objects), for suppressions.
    #[serde(skip)]
    pub(crate) object_index: Option<usize>,
}

impl Finding {
    pub fn with_fix(&mut self, fix: impl Into<String>) -> &mut Finding {
        self.fix = fix.into();
        self
    }

    pub fn with_severity(&mut self, severity: Severity) -> &mut Finding {
        self.severity = severity;
        self
    }
}

/// An input, or part of one, that was not checked, or could not be read.
#[derive(Clone, Debug, Serialize)]
pub struct Note {
    pub file: String,
    /// 1-based; absent when the note is about the whole input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub message: String,
}

/// Everything one run found.
#[derive(Debug, Default)]
pub struct Report {
    /// Sorted by file, line, then rule.
    pub findings: Vec<Finding>,
    /// Findings silenced by a `statelab.dev/ignore` annotation with a reason.
    pub suppressed: usize,
    /// Documents and folders deliberately not checked (a kustomization, a values file, chart
    /// templates, exercise folders), each with the reason.
    pub skipped: Vec<Note>,
    /// Inputs that could not be read at all (missing, unreadable, not UTF-8).
    pub unreadable: Vec<Note>,
    /// Files (or standard input) read.
    pub files: usize,
    /// Kubernetes objects checked.
    pub objects: usize,
}

impl Report {
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// The process exit status: 2 when an input could not be read, 1 when a finding is at
    /// least as severe as `fail_on`, else 0.
    pub fn exit_status(&self, fail_on: Severity) -> u8 {
        if !self.unreadable.is_empty() {
            2
        } else if self.findings.iter().any(|f| f.severity >= fail_on) {
            1
        } else {
            0
        }
    }
}
