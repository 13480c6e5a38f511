//! The `statelab lint` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use super::report::Severity;
use super::rules::{RULES, find};
use super::{Options, lint_paths, output};

/// Check Kubernetes manifests for the mistakes stateful workloads suffer from.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status: 0 when nothing at or above --fail-on was found, 1 when \
something was, 2 when an input could not be read (or --explain names no rule).\n\
Suppress a rule on one object with the annotation statelab.dev/ignore: \"RULE: reason\"."
)]
pub struct LintArgs {
    /// Files and folders to check (folders: every *.yaml and *.yml below, except folders named
    /// `exercise`, hidden folders and Helm chart templates); `-` reads standard input, such as
    /// the output of `helm template`
    #[arg(value_name = "PATH", required_unless_present_any = ["explain", "list_rules"])]
    pub paths: Vec<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Exit with status 1 when a finding is at least this severe
    #[arg(long, value_enum, default_value_t = Severity::Error, value_name = "SEVERITY")]
    pub fail_on: Severity,

    /// Also check `exercise` folders found inside the folders given
    #[arg(long)]
    pub include_exercises: bool,

    /// Explain a rule: what goes wrong in a cluster, and why
    #[arg(long, value_name = "RULE", conflicts_with = "list_rules")]
    pub explain: Option<String>,

    /// List every rule with its severity and summary
    #[arg(long)]
    pub list_rules: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per finding, with its fix
    Human,
    /// {"findings": [...], "summary": {...}, "skipped": [...], "unreadable": [...]}
    Json,
    /// SARIF 2.1.0, for code-scanning tools
    Sarif,
}

pub fn run(args: LintArgs) -> ExitCode {
    if args.list_rules {
        for rule in RULES {
            println!(
                "{:<27} {:<8} {}",
                rule.id,
                rule.severity.as_str(),
                rule.summary
            );
        }
        return ExitCode::SUCCESS;
    }
    if let Some(id) = &args.explain {
        let Some(rule) = find(id) else {
            eprintln!("statelab lint: no rule `{id}`; `statelab lint --list-rules` lists them");
            return ExitCode::from(2);
        };
        println!(
            "{} ({})\n\n{}\n\n{}\n\n{}",
            rule.id,
            rule.severity.as_str(),
            rule.summary,
            wrap(rule.explanation),
            wrap(&format!("Fix: {}", rule.fix))
        );
        return ExitCode::SUCCESS;
    }

    let options = Options {
        include_exercises: args.include_exercises,
    };
    let report = lint_paths(&args.paths, &options);
    match args.format {
        Format::Human => print!("{}", output::human(&report)),
        Format::Json => println!("{}", output::json(&report)),
        Format::Sarif => println!("{}", output::sarif(&report)),
    }
    if args.format != Format::Human {
        for note in &report.unreadable {
            eprintln!("statelab lint: {}: {}", note.file, note.message);
        }
    }
    ExitCode::from(report.exit_status(args.fail_on))
}

/// Wraps a paragraph at 100 columns for the terminal.
fn wrap(text: &str) -> String {
    let mut out = String::new();
    let mut width = 0;
    for word in text.split_whitespace() {
        if width > 0 && width + 1 + word.len() > 100 {
            out.push('\n');
            width = 0;
        } else if width > 0 {
            out.push(' ');
            width += 1;
        }
        out.push_str(word);
        width += word.len();
    }
    out
}
