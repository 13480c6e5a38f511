//! `statelab lint`, through the real binary: every rule against a manifest that must be found
//! and a close one that must not, the seeds' own manifests, the output formats, exit statuses,
//! suppressions, and the project's own deploy/ folder.
//!
//! Fixtures mark the lines findings must point at with `# expect: RULE` (or
//! `# expect: RULE(severity)`, several separated by commas).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::process::binary;

/// Rules about container posture: on the seeds' manifests they fire on nearly every container,
/// so those tests require them only where a line is marked.
const POSTURE: &[&str] = &[
    "missing-probe",
    "missing-resources",
    "runs-as-root",
    "writable-root-filesystem",
    "capabilities-not-dropped",
    "missing-seccomp-profile",
    "unpinned-image",
    "missing-network-policy",
    "missing-disruption-budget",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lint")
}

fn lint(args: &[&str]) -> Output {
    Command::new(binary())
        .arg("lint")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("statelab runs")
}

fn lint_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(binary())
        .arg("lint")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("statelab runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs `statelab lint --format json PATHS` and returns the JSON report and the exit status.
fn lint_json(paths: &[&Path]) -> (Value, i32) {
    let mut args = vec!["--format".to_owned(), "json".to_owned()];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = lint(&args);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (report, output.status.code().expect("exited"))
}

fn findings(report: &Value) -> &Vec<Value> {
    report["findings"].as_array().expect("findings array")
}

/// (file name, line, rule, severity) of every finding.
fn found_set(report: &Value) -> BTreeSet<(String, u64, String, String)> {
    findings(report)
        .iter()
        .map(|f| {
            let file = Path::new(f["file"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (
                file,
                f["line"].as_u64().unwrap(),
                f["rule"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The `# expect:` markers of a file: (file name, line, rule, severity if given).
fn expectations(path: &Path) -> Vec<(String, u64, String, Option<String>)> {
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).unwrap();
    let mut all = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some((_, marks)) = line.split_once("expect: ") else {
            continue;
        };
        for mark in marks.split(',').map(str::trim) {
            let (rule, severity) = match mark.split_once('(') {
                Some((rule, severity)) => (rule, Some(severity.trim_end_matches(')').to_owned())),
                None => (mark, None),
            };
            all.push((file.clone(), i as u64 + 1, rule.to_owned(), severity));
        }
    }
    all
}

fn rule_ids() -> Vec<String> {
    let output = lint(&["--list-rules"]);
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

/// Checks that every marked finding is there (with its severity, when marked), and that the
/// findings of `strict` rules are exactly the marked ones.
fn assert_marked(report: &Value, files: &[PathBuf], strict: impl Fn(&str) -> bool) {
    let found = found_set(report);
    let mut expected = BTreeSet::new();
    for file in files {
        for (name, line, rule, severity) in expectations(file) {
            let hit = found
                .iter()
                .find(|(f, l, r, _)| *f == name && *l == line && *r == rule);
            let Some((_, _, _, actual)) = hit else {
                panic!(
                    "{name}:{line}: expected a `{rule}` finding; found:\n{}",
                    serde_json::to_string_pretty(findings(report)).unwrap()
                );
            };
            if let Some(severity) = severity {
                assert_eq!(actual, &severity, "{name}:{line}: severity of `{rule}`");
            }
            expected.insert((name, line, rule));
        }
    }
    for (file, line, rule, _) in &found {
        if strict(rule) {
            assert!(
                expected.contains(&(file.clone(), *line, rule.clone())),
                "{file}:{line}: unexpected `{rule}` finding: {}",
                serde_json::to_string_pretty(findings(report)).unwrap()
            );
        }
    }
}

#[test]
fn every_rule_finds_its_case_and_spares_the_close_one() {
    let rules = rule_ids();
    assert!(rules.len() >= 20, "rules: {rules:?}");
    for rule in &rules {
        let dir = fixtures().join("rules").join(rule);
        let found = dir.join("found.yaml");
        let ok = dir.join("ok.yaml");
        assert!(
            found.is_file() && ok.is_file(),
            "rule `{rule}` has no fixtures in {}",
            dir.display()
        );
        assert!(
            expectations(&found).iter().any(|(_, _, r, _)| r == rule),
            "{} marks no `{rule}` line",
            found.display()
        );

        let (report, _) = lint_json(&[&found]);
        assert_marked(&report, &[found.clone()], |r| r == rule);

        let (report, status) = lint_json(&[&ok]);
        let wrong: Vec<&Value> = findings(&report)
            .iter()
            .filter(|f| f["rule"] == rule.as_str())
            .collect();
        assert!(
            wrong.is_empty(),
            "{}: must not find `{rule}`: {wrong:#?}",
            ok.display()
        );
        assert!(report["unreadable"].as_array().unwrap().is_empty());
        assert!(
            status == 0 || status == 1,
            "{}: exit {status}",
            ok.display()
        );
    }
}

#[test]
fn every_rule_is_explained() {
    for rule in rule_ids() {
        let output = lint(&["--explain", &rule]);
        assert!(output.status.success(), "--explain {rule}");
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(text.starts_with(&rule), "{text}");
        assert!(text.contains("Fix: "), "{text}");
        assert!(text.len() > 300, "`{rule}` explanation is too thin: {text}");
    }
    let output = lint(&["--explain", "no-such-rule"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--list-rules"));
}
