//! Container command lines: the program run, the script handed to a shell, the code handed to
//! an interpreter, and whether a script writes files.

use super::source::Path;
use super::workload::ContainerRef;

/// One word of a container's command line (`command` then `args`), with its path.
pub struct Arg<'a> {
    pub text: &'a str,
    pub path: Path,
}

pub fn argv<'a>(c: &ContainerRef<'a>) -> Vec<Arg<'a>> {
    let mut all = Vec::new();
    for key in ["command", "args"] {
        let list = if key == "command" {
            &c.container.command
        } else {
            &c.container.args
        };
        for (i, text) in list.iter().flatten().enumerate() {
            all.push(Arg {
                text,
                path: c.path.key(key).index(i),
            });
        }
    }
    all
}

/// `/usr/bin/python3` → `python3`
pub fn program(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

const SHELLS: &[&str] = &["sh", "bash", "ash", "dash", "zsh", "ksh"];

/// The script of `sh -c SCRIPT` (also `bash -ec`, `busybox sh -c`).
pub fn shell_script<'x, 'a>(argv: &'x [Arg<'a>]) -> Option<&'x Arg<'a>> {
    let skip = usize::from(argv.first().is_some_and(|a| program(a.text) == "busybox"));
    let first = argv.get(skip)?;
    if !SHELLS.contains(&program(first.text)) {
        return None;
    }
    let flag = argv[skip + 1..].iter().position(|a| {
        a.text.starts_with('-') && !a.text.starts_with("--") && a.text.contains('c')
    })?;
    argv.get(skip + 1 + flag + 1)
}

/// Interpreters that run code given on the command line, and the flags that give it.
const INTERPRETERS: &[(&str, &[&str])] = &[
    ("python", &["-c"]),
    ("node", &["-e", "--eval", "-p", "--print"]),
    ("nodejs", &["-e", "--eval"]),
    ("deno", &["eval"]),
    ("perl", &["-e", "-E"]),
    ("ruby", &["-e"]),
    ("php", &["-r"]),
];

fn interpreter(word: &str) -> Option<&'static (&'static str, &'static [&'static str])> {
    let name = program(word);
    INTERPRETERS.iter().find(|(interpreter, _)| {
        name == *interpreter
            || name
                .strip_prefix(interpreter)
                .is_some_and(|version| version.chars().all(|c| c.is_ascii_digit() || c == '.'))
    })
}

/// `python3 -c CODE` → (`python3 -c`, CODE).
pub fn inline_program<'x, 'a>(argv: &'x [Arg<'a>]) -> Option<(String, &'x Arg<'a>)> {
    let first = argv.first()?;
    let (_, flags) = interpreter(first.text)?;
    let at = argv.iter().position(|a| flags.contains(&a.text))?;
    let code = argv.get(at + 1)?;
    Some((format!("{} {}", program(first.text), argv[at].text), code))
}

/// `python -c` (or `node -e`, ...) inside a shell script: the words as written.
pub fn inline_program_in_script(script: &str) -> Option<String> {
    let words: Vec<&str> = words(script).collect();
    words.windows(2).find_map(|pair| {
        let (_, flags) = interpreter(pair[0])?;
        flags
            .contains(&pair[1])
            .then(|| format!("{} {}", program(pair[0]), pair[1]))
    })
}

/// The words of a script, split at blanks and shell punctuation.
pub fn words(script: &str) -> impl Iterator<Item = &str> {
    script
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')' | '`'))
        .filter(|w| !w.is_empty())
}

/// The delimiter word of the first here-document (`<<EOF`, `<<-'EOF'`), not a here-string.
pub fn heredoc(script: &str) -> Option<&str> {
    let mut rest = script;
    while let Some(at) = rest.find("<<") {
        let after = &rest[at + 2..];
        if after.starts_with('<') {
            rest = after.trim_start_matches('<');
            continue;
        }
        let word = after
            .trim_start_matches('-')
            .trim_start()
            .trim_start_matches(['\'', '"']);
        let end = word
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(word.len());
        if end > 0 {
            return Some(&rest[at..at + 2 + (after.len() - word.len()) + end]);
        }
        rest = after;
    }
    None
}

/// Commands that write into the filesystem.
const WRITERS: &[&str] = &[
    "touch", "cp", "mv", "mkdir", "tee", "tar", "unzip", "gunzip", "rsync", "install", "dd", "ln",
    "git", "wget", "curl", "chmod", "chown", "initdb", "truncate",
];

/// Whether a script (or a plain command line) writes files: a redirection into a file that
/// is not under /dev, or a command that writes.
pub fn writes_files(script: &str) -> bool {
    let redirects = script.match_indices('>').any(|(at, _)| {
        let target = script[at + 1..].trim_start_matches('>');
        !target.starts_with('&') && {
            let target = target.trim_start();
            !target.is_empty() && !target.starts_with("/dev/")
        }
    });
    redirects || words(script).any(|w| WRITERS.contains(&program(w)))
}

/// The numeric user a script's `chown` gives files to: `Some(Some(1000))` for
/// `chown 1000:1000 f`, `Some(None)` for a chown to a user name, `None` without chown.
pub fn chown_target(script: &str) -> Option<Option<i64>> {
    let words: Vec<&str> = words(script).collect();
    let at = words.iter().position(|w| program(w) == "chown")?;
    let owner = words[at + 1..].iter().find(|w| !w.starts_with('-'))?;
    let user = owner.split([':', '.']).next().unwrap_or(owner);
    Some(user.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_heredocs() {
        assert_eq!(
            heredoc("cat > /app/main.py <<'EOF'\nx\nEOF"),
            Some("<<'EOF")
        );
        assert_eq!(heredoc("cat <<-END\n"), Some("<<-END"));
        assert_eq!(heredoc("grep x <<< \"$v\""), None);
        assert_eq!(
            heredoc("cat <<\"END\"\nx\nEND\necho 'done'"),
            Some("<<\"END")
        );
    }

    #[test]
    fn sees_writes() {
        assert!(writes_files("echo 0 > /data/counter.txt"));
        assert!(writes_files("mkdir -p /data/x"));
        assert!(!writes_files(
            "until nslookup db 2>&1 >/dev/null; do sleep 2; done"
        ));
    }

    #[test]
    fn reads_chown() {
        assert_eq!(chown_target("chown -R 1000:1000 /data"), Some(Some(1000)));
        assert_eq!(chown_target("chown app /data"), Some(None));
        assert_eq!(chown_target("echo"), None);
    }

    #[test]
    fn sees_inline_programs() {
        assert_eq!(
            inline_program_in_script("pip install x && python3 -c 'print(1)'"),
            Some("python3 -c".to_owned())
        );
        assert_eq!(inline_program_in_script("python app.py"), None);
    }
}
