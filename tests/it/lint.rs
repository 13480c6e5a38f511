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
        assert_marked(&report, std::slice::from_ref(&found), |r| r == rule);

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

/// Patterns from real-world manifests (each written for this test): every finding of a rule
/// that is not about posture must be marked, with its severity where marked. Files are linted
/// one by one; a folder is linted as a whole.
#[test]
fn real_world_patterns_give_the_marked_findings_and_no_others() {
    let dir = fixtures().join("precision");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert!(entries.len() >= 15, "{entries:?}");
    for path in &entries {
        let files = if path.is_dir() {
            walk_yaml(path)
        } else {
            vec![path.clone()]
        };
        let (report, _) = lint_json(&[path]);
        assert_marked(&report, &files, |r| !POSTURE.contains(&r));
        assert!(report["unreadable"].as_array().unwrap().is_empty());
    }

    // The PodDisruptionBudget written as policy/v1beta1 still counts.
    let (report, _) = lint_json(&[&dir.join("removed-api-versions.yaml")]);
    assert!(
        findings(&report)
            .iter()
            .all(|f| f["rule"] != "missing-disruption-budget"),
        "{report:#}"
    );
    // Required fields are reported as the API server words them.
    let (report, _) = lint_json(&[&dir.join("missing-required-fields.yaml")]);
    let schema: Vec<&str> = findings(&report)
        .iter()
        .filter(|f| f["rule"] == "schema-error")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert!(
        schema
            .iter()
            .any(|m| m.contains("spec.selector: Required value"))
            && schema
                .iter()
                .any(|m| m.contains("spec.template.spec.containers[0].name: Required value")),
        "{schema:#?}"
    );
    // "database is locked" only where there is a database.
    let (report, _) = lint_json(&[&dir.join("shared-files.yaml")]);
    assert!(
        findings(&report).iter().all(|f| !f["message"]
            .as_str()
            .unwrap()
            .contains("database is locked")),
        "{report:#}"
    );
    // Recreate with one replica: no claim that old and new pod share the data.
    let (report, _) = lint_json(&[&dir.join("single-instance-recreate.yaml")]);
    let recreate = findings(&report)
        .iter()
        .find(|f| f["rule"] == "database-as-deployment" && f["severity"] == "warning")
        .expect("a warning for the Recreate Deployment");
    let message = recreate["message"].as_str().unwrap();
    assert!(
        message.contains("Recreate") && !message.contains("old and the new pod share"),
        "{message}"
    );
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

#[test]
fn the_seeds_manifests_give_the_findings_an_instructor_expects() {
    let seeds = fixtures().join("seeds");
    let not_posture = |rule: &str| !POSTURE.contains(&rule);
    // Seed 001's mistakes, one file each (each is its own lesson).
    let mut mistakes: Vec<PathBuf> = std::fs::read_dir(seeds.join("001-mistakes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    mistakes.sort();
    assert_eq!(mistakes.len(), 7);
    for file in &mistakes {
        let (report, _) = lint_json(&[file]);
        assert_marked(&report, std::slice::from_ref(file), not_posture);
    }
    // Seeds 002 and 003, and the cache exercise's solution, each linted as a whole.
    for path in [
        "002-helm-statefulset.yaml",
        "003-task-05",
        "003-task-05-fixed",
        "001-cache",
    ] {
        let path = seeds.join(path);
        let files: Vec<PathBuf> = if path.is_dir() {
            walk_yaml(&path)
                .into_iter()
                .filter(|f| !f.components().any(|c| c.as_os_str() == "exercise"))
                .collect()
        } else {
            vec![path.clone()]
        };
        let (report, status) = lint_json(&[&path]);
        assert_marked(&report, &files, not_posture);
        let errors = report["summary"]["errors"].as_u64().unwrap();
        assert_eq!(status, if errors > 0 { 1 } else { 0 }, "{}", path.display());
    }
}

fn walk_yaml(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(walk_yaml(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            all.push(path);
        }
    }
    all
}

#[test]
fn exercise_folders_are_checked_only_when_named_and_their_todos_are_found() {
    let cache = fixtures().join("seeds/001-cache");
    let (report, status) = lint_json(&[&cache]);
    assert_eq!(status, 0, "the solution has no errors: {report:#}");
    assert!(
        findings(&report)
            .iter()
            .all(|f| !f["file"].as_str().unwrap().contains("exercise")),
        "exercise files are skipped inside a folder"
    );
    let skipped = report["skipped"].as_array().unwrap();
    assert!(
        skipped
            .iter()
            .any(|n| n["file"].as_str().unwrap().ends_with("exercise")
                && n["message"].as_str().unwrap().contains("name it directly")),
        "{skipped:#?}"
    );

    let exercise = cache.join("exercise");
    let (report, status) = lint_json(&[&exercise]);
    assert_eq!(status, 1);
    let found = found_set(&report);
    let mut todos = 0;
    for file in walk_yaml(&exercise) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let is_field_todo = line.contains("# TODO") && !line.trim_start().starts_with('#');
            if !is_field_todo {
                continue;
            }
            todos += 1;
            let line_no = i as u64 + 1;
            assert!(
                found.iter().any(|(f, l, r, s)| *f == name
                    && *l == line_no
                    && r == "unfinished-todo"
                    && s == "error"),
                "{name}:{line_no}: the TODO has no finding"
            );
        }
    }
    assert!(todos >= 15, "only {todos} TODOs in the exercise");
    // The placeholder image the seed tells students to replace.
    assert!(
        found
            .iter()
            .any(|(f, _, r, _)| f == "cache-api-deployment.yaml"
                && r == "unfinished-todo"
                && findings(&report).iter().any(|x| x["message"]
                    .as_str()
                    .unwrap()
                    .contains("<your-dockerhub-username>")))
    );
    // Asked for explicitly, exercise folders inside a folder are checked too.
    let output = lint(&[
        "--format",
        "json",
        "--include-exercises",
        &cache.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn the_guestbook_lab_gets_hostpath_as_info_and_others_as_a_warning() {
    let (report, status) = lint_json(&[&fixtures().join("guestbook")]);
    assert_eq!(status, 0);
    assert_marked(
        &report,
        &[fixtures().join("guestbook/guestbook.yaml")],
        |r| !POSTURE.contains(&r),
    );
    let (report, _) = lint_json(&[&fixtures().join("rules/hostpath-volume/found.yaml")]);
    let severities: BTreeSet<&str> = findings(&report)
        .iter()
        .filter(|f| f["rule"] == "hostpath-volume")
        .map(|f| f["severity"].as_str().unwrap())
        .collect();
    assert_eq!(severities, BTreeSet::from(["info", "warning"]));
}

#[test]
fn clean_manifests_pass_with_nothing_to_report() {
    let output = lint(&["tests/fixtures/lint/clean"]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert_eq!(text, "0 errors, 0 warnings, 0 infos in 1 file, 8 objects\n");
}

#[test]
fn exit_status_follows_fail_on() {
    let rules = fixtures().join("rules");
    let errors = rules
        .join("hardcoded-pod-ip/found.yaml")
        .display()
        .to_string();
    let warnings = rules.join("missing-probe/found.yaml").display().to_string();
    assert_eq!(lint(&[&errors]).status.code(), Some(1));
    assert_eq!(
        lint(&[&warnings]).status.code(),
        Some(0),
        "warnings alone pass"
    );
    assert_eq!(
        lint(&["--fail-on", "warning", &warnings]).status.code(),
        Some(1)
    );

    // The clean lab without its retention policy: one info, nothing else.
    let clean = std::fs::read_to_string(fixtures().join("clean/users.yaml")).unwrap();
    let info_only = clean.replace(
        "  persistentVolumeClaimRetentionPolicy:\n    whenDeleted: Retain\n    whenScaled: Retain\n",
        "",
    );
    assert_ne!(info_only, clean);
    let output = lint_stdin(&["--format", "json", "-"], &info_only);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let rules: Vec<&str> = findings(&report)
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["pvc-retention-unaware"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        lint_stdin(&["--fail-on", "warning", "-"], &info_only)
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        lint_stdin(&["--fail-on", "info", "-"], &info_only)
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn unreadable_inputs_exit_2_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("binary.yaml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let missing = dir.path().join("missing.yaml");

    let (report, status) = lint_json(&[&binary, &fixtures().join("clean")]);
    assert_eq!(status, 2);
    let unreadable = report["unreadable"].as_array().unwrap();
    assert_eq!(unreadable.len(), 1);
    assert!(unreadable[0]["message"].as_str().unwrap().contains("UTF-8"));
    assert_eq!(
        report["summary"]["objects"], 8,
        "the readable inputs are still checked"
    );

    let output = lint(&[&missing.display().to_string()]);
    assert_eq!(output.status.code(), Some(2));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("missing.yaml: unreadable: cannot read"),
        "{text}"
    );
}

#[test]
fn what_is_not_a_kubernetes_object_is_skipped_with_a_note() {
    let inputs = fixtures().join("inputs");
    let (report, status) = lint_json(&[&inputs]);
    let skipped: Vec<String> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            format!(
                "{} {}",
                n["file"].as_str().unwrap(),
                n["message"].as_str().unwrap()
            )
        })
        .collect();
    for (file, reason) in [
        ("kustomization.yaml", "kustomization"),
        ("inputs/values.yaml", "not a Kubernetes object"),
        ("chart/templates", "helm template"),
        ("loose-template.yaml", "helm template"),
    ] {
        assert!(
            skipped
                .iter()
                .any(|s| s.contains(file) && s.contains(reason)),
            "{file}: {skipped:#?}"
        );
    }
    // The two ConfigMaps of the List are checked, findings at their own lines.
    assert_eq!(report["summary"]["objects"], 2);
    let found = found_set(&report);
    assert!(
        found.contains(&(
            "list.yaml".into(),
            10,
            "hardcoded-pod-ip".into(),
            "error".into()
        )),
        "{found:?}"
    );
    assert!(
        found.contains(&(
            "list.yaml".into(),
            15,
            "unknown-field".into(),
            "warning".into()
        )),
        "{found:?}"
    );
    assert_eq!(status, 1);
}

#[test]
fn standard_input_takes_helm_template_output() {
    let file = fixtures().join("seeds/002-helm-statefulset.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let output = lint_stdin(&["--format", "json", "-"], &text);
    assert_eq!(output.status.code(), Some(1));
    let from_stdin: Value = serde_json::from_slice(&output.stdout).unwrap();
    let (from_file, _) = lint_json(&[&file]);
    let strip = |report: &Value| -> Vec<(u64, String, String)> {
        findings(report)
            .iter()
            .map(|f| {
                (
                    f["line"].as_u64().unwrap(),
                    f["rule"].as_str().unwrap().to_owned(),
                    f["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(strip(&from_stdin), strip(&from_file));
    assert!(findings(&from_stdin).iter().all(|f| f["file"] == "<stdin>"));
}

#[test]
fn json_output_has_the_documented_shape() {
    let (report, _) = lint_json(&[&fixtures().join("seeds/003-task-05")]);
    let keys: BTreeSet<&str> = report
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["findings", "summary", "skipped", "unreadable"])
    );
    let list = findings(&report);
    assert!(!list.is_empty());
    for f in list {
        let keys: BTreeSet<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "rule", "severity", "file", "line", "object", "message", "fix"
            ])
        );
        assert!(["error", "warning", "info"].contains(&f["severity"].as_str().unwrap()));
        assert!(f["line"].as_u64().unwrap() >= 1);
        assert!(
            !f["message"].as_str().unwrap().is_empty() && !f["fix"].as_str().unwrap().is_empty()
        );
    }
    let init = list
        .iter()
        .find(|f| f["rule"] == "init-owner-mismatch")
        .expect("seed 003's 500 error");
    assert_eq!(init["object"], "StatefulSet/task-05/counter-app");
    let summary = &report["summary"];
    let count = |severity: &str| list.iter().filter(|f| f["severity"] == severity).count() as u64;
    assert_eq!(summary["errors"].as_u64(), Some(count("error")));
    assert_eq!(summary["warnings"].as_u64(), Some(count("warning")));
    assert_eq!(summary["infos"].as_u64(), Some(count("info")));
    assert_eq!(summary["files"], 3);
    assert_eq!(summary["objects"], 3);
    assert_eq!(summary["suppressed"], 0);
}

#[test]
fn sarif_output_has_what_sarif_2_1_0_requires() {
    let path = fixtures().join("seeds/003-task-05").display().to_string();
    let inputs = fixtures().join("inputs").display().to_string();
    let output = lint(&["--format", "sarif", &path, &inputs]);
    assert_eq!(output.status.code(), Some(1));
    let log: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(log["version"], "2.1.0");
    assert!(log["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let runs = log["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let driver = &runs[0]["tool"]["driver"];
    assert!(driver["name"].is_string());
    let rules = driver["rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), rule_ids().len());
    for rule in rules {
        assert!(rule["shortDescription"]["text"].is_string());
        assert!(
            ["error", "warning", "note"]
                .contains(&rule["defaultConfiguration"]["level"].as_str().unwrap())
        );
    }
    let results = runs[0]["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for result in results {
        let id = result["ruleId"].as_str().unwrap();
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(ids[index], id, "ruleIndex points at the rule");
        assert!(["error", "warning", "note"].contains(&result["level"].as_str().unwrap()));
        assert!(!result["message"]["text"].as_str().unwrap().is_empty());
        let location = &result["locations"][0]["physicalLocation"];
        let uri = location["artifactLocation"]["uri"].as_str().unwrap();
        assert!(!uri.is_empty() && !uri.contains(' '), "{uri}");
        assert!(location["region"]["startLine"].as_u64().unwrap() >= 1);
    }
    let invocation = &runs[0]["invocations"][0];
    assert_eq!(invocation["executionSuccessful"], true);
    let notes = invocation["toolExecutionNotifications"].as_array().unwrap();
    assert!(notes.iter().any(|n| {
        n["message"]["text"]
            .as_str()
            .unwrap()
            .contains("kustomization")
    }));
}

#[test]
fn suppressions_need_a_reason_and_are_counted() {
    let file = fixtures().join("rules/invalid-suppression/ok.yaml");
    let (report, _) = lint_json(&[&file]);
    assert_eq!(report["summary"]["suppressed"], 3, "{report:#}");
    for rule in [
        "hostpath-volume",
        "rwx-database-volume",
        "missing-network-policy",
    ] {
        assert!(
            findings(&report).iter().all(|f| f["rule"] != rule),
            "`{rule}` is suppressed"
        );
    }
    // Without a reason the suppression is not applied: the finding stays.
    let (report, _) = lint_json(&[&fixtures().join("rules/invalid-suppression/found.yaml")]);
    assert_eq!(report["summary"]["suppressed"], 0);
    let hostpath = findings(&report)
        .iter()
        .filter(|f| f["rule"] == "hostpath-volume")
        .count();
    assert_eq!(hostpath, 2);
    let output = lint(&[&fixtures()
        .join("rules/invalid-suppression/ok.yaml")
        .display()
        .to_string()]);
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .contains("(3 suppressed)")
    );
}

#[test]
fn human_output_names_file_line_rule_object_and_fix() {
    let output =
        lint(&["tests/fixtures/lint/seeds/001-mistakes/mistake-3-hardcoding-ip-addresses.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("[hardcoded-pod-ip]"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.starts_with(
            "tests/fixtures/lint/seeds/001-mistakes/mistake-3-hardcoding-ip-addresses.yaml:21: error[hardcoded-pod-ip] Deployment/user-api: DB_HOST"
        ),
        "{line}"
    );
    let fix = text.lines().skip_while(|l| *l != line).nth(1).unwrap();
    assert!(fix.starts_with("    fix: Use a DNS name"), "{fix}");
    assert!(
        text.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("1 error, "),
        "{text}"
    );
}

/// The project's own manifests: CI runs `statelab lint deploy/`, and it must find no error.
#[test]
fn every_manifest_under_deploy_passes() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    assert!(deploy.is_dir(), "deploy/ is missing");
    let output = lint(&["--format", "json", "deploy/"]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let errors: Vec<&Value> = findings(&report)
        .iter()
        .filter(|f| f["severity"] == "error")
        .collect();
    assert!(errors.is_empty(), "errors under deploy/: {errors:#?}");
    assert!(
        report["unreadable"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn other_code_can_lint_through_the_library() {
    use statelab::lint::{Options, Severity, lint_paths, lint_text};

    let report = lint_paths(&[fixtures().join("seeds/003-task-05")], &Options::default());
    assert_eq!(report.files, 3);
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.rule == "init-owner-mismatch" && f.severity == Severity::Error)
    );
    assert_eq!(report.exit_status(Severity::Error), 1);

    let report = lint_text(
        "inline.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  host: \"10.0.0.9\"\n",
    );
    let finding = &report.findings[0];
    assert_eq!(
        (finding.rule, finding.line, finding.object.as_str()),
        ("hardcoded-pod-ip", 6, "ConfigMap/c")
    );
}
