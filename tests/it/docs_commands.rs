//! The docs and the program cannot drift apart: every `statelab …` command in a shell code
//! block of the README and docs/ is accepted by the binary as written (its subcommand, flags
//! and values), and the ones that finish on their own without a server or a cluster (`lint`)
//! are run to completion.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::process::binary;

/// Shell code blocks of one Markdown file, each line with its line number; continuation lines
/// (ending in `\`) joined.
fn shell_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = Vec::new();
    let mut in_shell = false;
    let mut in_block = false;
    let mut pending: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            in_block = !in_block;
            in_shell = in_block && matches!(info.trim(), "" | "sh" | "bash" | "shell" | "console");
            continue;
        }
        if !in_shell {
            continue;
        }
        let (number, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        joined.push_str(line.trim());
        match joined.strip_suffix('\\') {
            Some(rest) => pending = Some((number, format!("{} ", rest.trim_end()))),
            None => lines.push((number, joined)),
        }
    }
    lines
}

/// Shell words up to the first unquoted comment, pipe, redirection or command separator.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut started = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                started = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                started = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        _ => word.push(q),
                    }
                }
            }
            '\\' => {
                started = true;
                word.extend(chars.next());
            }
            '#' if !started => break,
            '|' | '&' | ';' | '>' | '<' => break,
            c if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// The arguments after the program when the line runs statelab, else `None`. A shell
/// variable (`$i` in a `for i in 0 1 2` loop) stands for `0`.
fn statelab_args(line: &str) -> Option<Vec<String>> {
    let line = line.strip_prefix("$ ").unwrap_or(line);
    let line = expand_variables(line);
    let mut words = words(&line).into_iter().peekable();
    // Leading VAR=value assignments.
    while words
        .peek()
        .is_some_and(|w| w.contains('=') && !w.starts_with('-'))
    {
        words.next();
    }
    let program = words.next()?;
    let runs_statelab = match program.as_str() {
        "statelab"
        | "./target/release/statelab"
        | "target/release/statelab"
        | "./target/debug/statelab"
        | "target/debug/statelab" => true,
        "cargo" => {
            let rest: Vec<String> = words.by_ref().take_while(|w| w != "--").collect();
            rest.first().is_some_and(|w| w == "run")
        }
        _ => false,
    };
    runs_statelab.then(|| words.collect())
}

fn expand_variables(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let starts_name = chars
            .peek()
            .is_some_and(|n| n.is_ascii_alphabetic() || *n == '_' || *n == '{');
        if c != '$' || !starts_name {
            out.push(c);
            continue;
        }
        let braced = chars.next_if_eq(&'{').is_some();
        while chars
            .next_if(|n| n.is_ascii_alphanumeric() || *n == '_')
            .is_some()
        {}
        if braced {
            chars.next_if_eq(&'}');
        }
        out.push('0');
    }
    out
}

fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_statelab_command_in_the_docs_is_accepted_as_written() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in documents() {
        for (number, line) in shell_lines(&file) {
            let Some(args) = statelab_args(&line) else {
                continue;
            };
            // Lines that are output, not commands, start with the program name too; a
            // command has a subcommand or a flag next.
            if args
                .first()
                .is_none_or(|a| a.chars().next().is_some_and(char::is_uppercase))
            {
                continue;
            }
            checked += 1;
            let runs_to_completion = args.first().is_some_and(|a| a == "lint");
            let mut command = Command::new(binary());
            command.current_dir(env!("CARGO_MANIFEST_DIR")).args(&args);
            if !runs_to_completion {
                // Parsed in order: a wrong subcommand, flag or value fails before --help.
                command.arg("--help");
            }
            let output = command.output().unwrap();
            // lint exits 1 for findings; 2 and up is a usage or input error.
            let accepted = match output.status.code() {
                Some(0) => true,
                Some(1) => runs_to_completion,
                _ => false,
            };
            if !accepted {
                failures.push(format!(
                    "{}:{number}: statelab {}\n{}",
                    file.display(),
                    args.join(" "),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
        }
    }
    assert!(
        checked >= 20,
        "only {checked} commands found: is the parser broken?"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shell_words_stop_at_comments_pipes_and_redirections() {
    assert_eq!(
        words(r#"statelab load 'a b' "c\"d" x # comment"#),
        ["statelab", "load", "a b", "c\"d", "x"]
    );
    assert_eq!(
        words("statelab lint --format sarif deploy/ > out"),
        ["statelab", "lint", "--format", "sarif", "deploy/"]
    );
    assert_eq!(
        statelab_args("POD_NAME=a cargo run --release -- guestbook --listen 127.0.0.1:8001"),
        Some(vec![
            "guestbook".into(),
            "--listen".into(),
            "127.0.0.1:8001".into()
        ])
    );
    assert_eq!(statelab_args("kubectl get pods"), None);
    assert_eq!(
        statelab_args("statelab guestbook --listen 127.0.0.1:800$i --x ${DIR}/a"),
        Some(vec![
            "guestbook".into(),
            "--listen".into(),
            "127.0.0.1:8000".into(),
            "--x".into(),
            "0/a".into()
        ])
    );
}
