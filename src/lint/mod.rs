//! `statelab lint`: checks Kubernetes manifests for the mistakes stateful workloads suffer from
//! (seed 001's "Common mistakes", and what seeds 000, 002 and 003 show in their own files),
//! before anything is applied.
//!
//! A run reads the inputs (`input.rs`), splits them into YAML documents and decodes each into
//! its typed Kubernetes object (`source.rs`, `objects.rs`), runs every rule over all objects
//! together (`rules/`, one file per rule family), drops what `statelab.dev/ignore` annotations
//! suppress, and prints the findings (`output.rs`).
//!
//! Other code calls [`lint_paths`] (or [`lint_text`]) and reads the [`Report`].

mod cli;
mod decode;
mod image;
mod input;
mod objects;
mod output;
mod report;
pub mod rules;
mod selector;
mod shell;
mod source;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;

pub use cli::{Format, LintArgs, run};
pub use objects::IGNORE_ANNOTATION;
pub use output::{human, json, sarif};
pub use report::{Finding, Note, Report, Rule, Severity};

/// What a run checks beyond the paths themselves.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Also check folders named `exercise` found inside the folders given (they are skipped
    /// otherwise; a folder named directly is always checked).
    pub include_exercises: bool,
}

/// Lints files, folders (searched for `*.yaml`/`*.yml`) and `-` (standard input) together:
/// rules that relate objects (a StatefulSet and its Service) see every object of every path.
pub fn lint_paths(paths: &[PathBuf], options: &Options) -> Report {
    let mut run = Run::default();
    let sources = input::read_all(paths, options, &mut run);
    run.lint(sources)
}

/// Lints one YAML stream held in memory; `name` is the file name findings show.
pub fn lint_text(name: &str, text: &str) -> Report {
    Run::default().lint(vec![source::Source::new(name, text)])
}

/// The state of one run while it reads its inputs.
#[derive(Debug, Default)]
pub(crate) struct Run {
    objects: Vec<objects::Object>,
    findings: rules::Findings,
    skipped: Vec<Note>,
    unreadable: Vec<Note>,
}

impl Run {
    fn skip(&mut self, file: &str, line: Option<usize>, message: &str) {
        self.skipped.push(Note {
            file: file.to_owned(),
            line,
            message: message.to_owned(),
        });
    }

    fn unreadable(&mut self, file: &str, message: &str) {
        self.unreadable.push(Note {
            file: file.to_owned(),
            line: None,
            message: message.to_owned(),
        });
    }

    fn lint(mut self, sources: Vec<source::Source>) -> Report {
        let files = sources.len();
        for source in sources {
            objects::read_source(Arc::new(source), &mut self);
        }
        rules::check_all(&self.objects, &mut self.findings);
        let suppressed = rules::suppression::apply(&self.objects, &mut self.findings);
        let mut findings = self.findings.items;
        findings.sort_by(|a, b| (&a.file, a.line, a.rule).cmp(&(&b.file, b.line, b.rule)));
        Report {
            findings,
            suppressed,
            skipped: self.skipped,
            unreadable: self.unreadable,
            files,
            objects: self.objects.len(),
        }
    }
}
