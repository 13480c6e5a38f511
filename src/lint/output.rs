//! The three output formats: lines for people, JSON for scripts, SARIF 2.1.0 for code-scanning
//! tools.

use std::fmt::Write;

use serde_json::{Value, json};

use serde::Serialize;

use super::report::{Finding, Note, Report, Severity};
use super::rules::RULES;

/// `file:line: severity[rule] object: message`, the fix below it, then skipped inputs and a
/// summary line.
pub fn human(report: &Report) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let object = if f.object.is_empty() {
            String::new()
        } else {
            format!(" {}:", f.object)
        };
        let _ = writeln!(
            out,
            "{}:{}: {}[{}]{object} {}",
            f.file,
            f.line,
            f.severity.as_str(),
            f.rule,
            f.message
        );
        let _ = writeln!(out, "    fix: {}", f.fix);
    }
    for note in &report.skipped {
        let at = note.line.map(|l| format!(":{l}")).unwrap_or_default();
        let _ = writeln!(out, "{}{at}: skipped: {}", note.file, note.message);
    }
    for note in &report.unreadable {
        let _ = writeln!(out, "{}: unreadable: {}", note.file, note.message);
    }
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let _ = write!(
        out,
        "{}, {}, {} in {}, {}",
        plural(report.count(Severity::Error), "error"),
        plural(report.count(Severity::Warning), "warning"),
        plural(report.count(Severity::Info), "info"),
        plural(report.files, "file"),
        plural(report.objects, "object"),
    );
    if report.suppressed > 0 {
        let _ = write!(out, " ({} suppressed)", report.suppressed);
    }
    out.push('\n');
    out
}

/// `{"findings": [{rule, severity, file, line, object, message, fix}], "summary": {...},
/// "skipped": [...], "unreadable": [...]}`, keys in that order.
pub fn json(report: &Report) -> String {
    #[derive(Serialize)]
    struct Summary {
        errors: usize,
        warnings: usize,
        infos: usize,
        suppressed: usize,
        files: usize,
        objects: usize,
    }
    #[derive(Serialize)]
    struct Json<'a> {
        findings: &'a [Finding],
        summary: Summary,
        skipped: &'a [Note],
        unreadable: &'a [Note],
    }
    let json = Json {
        findings: &report.findings,
        summary: Summary {
            errors: report.count(Severity::Error),
            warnings: report.count(Severity::Warning),
            infos: report.count(Severity::Info),
            suppressed: report.suppressed,
            files: report.files,
            objects: report.objects,
        },
        skipped: &report.skipped,
        unreadable: &report.unreadable,
    };
    serde_json::to_string_pretty(&json).expect("a report serializes")
}

fn sarif_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// A relative path as a relative URI reference (SARIF's `artifactLocation.uri`).
fn uri(file: &str) -> String {
    if file == "<stdin>" {
        return "stdin".to_owned();
    }
    let mut out = String::new();
    if file.starts_with('/') {
        out.push_str("file://");
    }
    for byte in file.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A SARIF 2.1.0 log with one run: every rule in the driver, one result per finding, and the
/// skipped and unreadable inputs as tool execution notifications.
pub fn sarif(report: &Report) -> String {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id,
                "name": rule.id,
                "shortDescription": {"text": rule.summary},
                "fullDescription": {"text": rule.explanation},
                "help": {"text": rule.fix},
                "defaultConfiguration": {"level": sarif_level(rule.severity)},
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let index = RULES.iter().position(|r| r.id == f.rule).unwrap_or(0);
            let mut message = f.message.clone();
            if !f.object.is_empty() {
                message = format!("{}: {message}", f.object);
            }
            json!({
                "ruleId": f.rule,
                "ruleIndex": index,
                "level": sarif_level(f.severity),
                "message": {"text": format!("{message}. Fix: {}", f.fix)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri(&f.file)},
                        "region": {"startLine": f.line.max(1)},
                    },
                    "logicalLocations": if f.object.is_empty() { json!([]) } else { json!([{"fullyQualifiedName": f.object}]) },
                }],
            })
        })
        .collect();
    let notifications: Vec<Value> = report
        .skipped
        .iter()
        .map(|n| (n, "note"))
        .chain(report.unreadable.iter().map(|n| (n, "error")))
        .map(|(note, level)| {
            let mut location =
                json!({"physicalLocation": {"artifactLocation": {"uri": uri(&note.file)}}});
            if let Some(line) = note.line {
                location["physicalLocation"]["region"] = json!({"startLine": line});
            }
            json!({"level": level, "message": {"text": note.message}, "locations": [location]})
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "statelab lint",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "invocations": [{
                "executionSuccessful": report.unreadable.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&log).expect("a SARIF log serializes")
}
