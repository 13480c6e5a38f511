//! Scores and their three forms: a table for people, JSON (a stable interface, docs/verify.md)
//! and JUnit XML for CI systems and instructors' own graders.

use std::fmt::Write;

use serde::Serialize;

/// One scored experiment.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub points: u32,
    pub max: u32,
    pub passed: bool,
    pub detail: String,
}

impl Check {
    pub fn new(name: &str, max: u32, outcome: Result<String, String>) -> Self {
        let (passed, detail) = match outcome {
            Ok(detail) => (true, detail),
            Err(detail) => (false, detail),
        };
        Self {
            name: name.to_string(),
            points: if passed { max } else { 0 },
            max,
            passed,
            detail,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LabReport {
    pub lab: String,
    pub namespace: String,
    pub score: u32,
    pub max: u32,
    pub seconds: f64,
    pub checks: Vec<Check>,
}

impl LabReport {
    pub fn new(lab: &str, namespace: &str, checks: Vec<Check>, seconds: f64) -> Self {
        Self {
            lab: lab.to_string(),
            namespace: namespace.to_string(),
            score: checks.iter().map(|c| c.points).sum(),
            max: checks.iter().map(|c| c.max).sum(),
            seconds: (seconds * 10.0).round() / 10.0,
            checks,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub score: u32,
    pub max: u32,
    pub labs: Vec<LabReport>,
}

impl Report {
    pub fn new(labs: Vec<LabReport>) -> Self {
        Self {
            score: labs.iter().map(|l| l.score).sum(),
            max: labs.iter().map(|l| l.max).sum(),
            labs,
        }
    }

    pub fn full_marks(&self) -> bool {
        self.score == self.max
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes") + "\n"
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        for lab in &self.labs {
            let _ = writeln!(
                out,
                "{} (namespace {}): {}/{} in {:.0} s",
                lab.lab, lab.namespace, lab.score, lab.max, lab.seconds
            );
            for check in &lab.checks {
                let mark = if check.passed { "PASS" } else { "FAIL" };
                let _ = writeln!(
                    out,
                    "  {mark} {:>3}/{:<3} {}",
                    check.points, check.max, check.name
                );
                if !check.detail.is_empty() {
                    let _ = writeln!(out, "             {}", check.detail);
                }
            }
        }
        let _ = writeln!(out, "score: {}/{}", self.score, self.max);
        out
    }

    /// One testsuite per lab, one testcase per check; a check that lost its points is a
    /// failure carrying the detail.
    pub fn junit(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let failures = self
            .labs
            .iter()
            .flat_map(|l| &l.checks)
            .filter(|c| !c.passed)
            .count();
        let tests = self.labs.iter().map(|l| l.checks.len()).sum::<usize>();
        let _ = writeln!(
            out,
            "<testsuites name=\"statelab verify\" tests=\"{tests}\" failures=\"{failures}\">"
        );
        for lab in &self.labs {
            let failed = lab.checks.iter().filter(|c| !c.passed).count();
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" time=\"{:.1}\">",
                xml(&format!("{} ({})", lab.lab, lab.namespace)),
                lab.checks.len(),
                lab.seconds
            );
            let _ = writeln!(
                out,
                "    <properties><property name=\"score\" value=\"{}\"/><property name=\"max\" value=\"{}\"/></properties>",
                lab.score, lab.max
            );
            for check in &lab.checks {
                let _ = write!(
                    out,
                    "    <testcase classname=\"{}\" name=\"{} [{}/{}]\"",
                    xml(&lab.lab),
                    xml(&check.name),
                    check.points,
                    check.max
                );
                if check.passed {
                    let _ = writeln!(
                        out,
                        "><system-out>{}</system-out></testcase>",
                        xml(&check.detail)
                    );
                } else {
                    let _ = writeln!(
                        out,
                        "><failure message=\"{}\">{}</failure></testcase>",
                        xml(&check.detail),
                        xml(&check.detail)
                    );
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}

/// Text as XML character data or an attribute value (control characters XML 1.0 cannot
/// carry are dropped).
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report::new(vec![LabReport::new(
            "counter",
            "task-05",
            vec![
                Check::new("StatefulSet exists", 15, Ok("counter-app".into())),
                Check::new("2 replicas", 10, Err("spec.replicas is 3 <&>".into())),
            ],
            1.26,
        )])
    }

    #[test]
    fn scores_add_up_and_only_full_marks_pass() {
        let report = report();
        assert_eq!((report.score, report.max), (15, 25));
        assert!(!report.full_marks());
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(json["labs"][0]["checks"][1]["points"], 0);
        assert_eq!(json["labs"][0]["checks"][1]["passed"], false);
        assert_eq!(json["labs"][0]["namespace"], "task-05");
        assert_eq!(json["labs"][0]["seconds"], 1.3);
    }

    #[test]
    fn junit_marks_lost_points_as_failures_and_escapes_details() {
        let xml = report().junit();
        assert!(xml.contains("tests=\"2\" failures=\"1\""));
        assert!(xml.contains("<failure message=\"spec.replicas is 3 &lt;&amp;&gt;\">"));
        assert!(xml.contains("name=\"2 replicas [0/10]\""));
    }
}
