//! Seed 001, mistake 4: "Inline Application Code in YAML".

use crate::lint::objects::Object;
use crate::lint::report::{Rule, Severity};
use crate::lint::rules::Findings;
use crate::lint::shell::{
    argv, heredoc, inline_program, inline_program_in_script, program, shell_script, words,
};
use crate::lint::workload::workloads;

pub const INLINE_CODE: Rule = Rule {
    id: "inline-code",
    severity: Severity::Warning,
    summary: "a container's command line carries a program (python -c, node -e, a heredoc, a long sh -c script)",
    explanation: "`command: [\"/bin/sh\", \"-c\"]` with `pip install fastapi && cat > \
        /app/main.py <<'EOF'` and a hundred lines of Python is \"hard to maintain and version \
        control\", has \"no proper testing\", and \"doesn't match industry practices\" (seed 001, \
        mistake 4). It also installs packages at every start (slow, and the container breaks \
        when the package index is unreachable), runs code no image scan has seen, and usually \
        needs a writable root filesystem. Found: an interpreter given code on its command line \
        (python -c, node -e, perl -e, ruby -e, php -r), a shell script writing a file from a \
        here-document or feeding one to an interpreter, a package installation, or a shell script longer than ten lines.",
    fix: "Put the code in the application's source, build it into an image, and run that image; \
        keep the container's command to the program and its flags.",
};

/// Scripts longer than this are programs, not glue.
const MAX_SCRIPT_LINES: usize = 10;

const INSTALLERS: &[&str] = &[
    "pip", "pip3", "npm", "yarn", "apk", "apt-get", "apt", "yum", "dnf", "gem",
];

/// Programs a here-document can carry code to.
const INTERPRETERS: &[&str] = &[
    "python", "python3", "node", "perl", "ruby", "php", "sh", "bash",
];

/// A here-document that carries a program: one written into a file (`cat > main.py <<EOF`) or
/// fed to an interpreter (`python3 - <<EOF`). A short one feeding a server its settings on
/// standard input (`redis-server - <<EOF`) is not a program.
fn heredoc_program(script: &str) -> Option<(String, &str)> {
    let doc = heredoc(script)?;
    let line = script.lines().find(|l| l.contains(doc))?;
    let command = &line[..line.find(doc)?];
    let program = words(command).next().map(program).unwrap_or("");
    if command.contains('>') || words(command).any(|w| w == "tee") {
        Some(("writes a file from a here-document".to_owned(), doc))
    } else if INTERPRETERS.contains(&program) {
        Some((
            format!("feeds {program} a program from a here-document"),
            doc,
        ))
    } else {
        None
    }
}

pub fn check(objects: &[Object], out: &mut Findings) {
    for w in workloads(objects) {
        for c in w.containers() {
            let argv = argv(&c);
            let name = &c.container.name;
            if let Some((interpreter, code)) = inline_program(&argv) {
                let message =
                    format!("container {name} runs a program given inline ({interpreter})");
                out.add(&INLINE_CODE, w.object, &code.path, message);
                continue;
            }
            let Some(script) = shell_script(&argv) else {
                continue;
            };
            let lines = script.text.lines().filter(|l| !l.trim().is_empty()).count();
            let installs = words(script.text)
                .collect::<Vec<_>>()
                .windows(2)
                .find(|pair| INSTALLERS.contains(&pair[0]) && matches!(pair[1], "install" | "add"))
                .map(|pair| format!("{} {}", pair[0], pair[1]));
            let (reason, needle) = if let Some((reason, doc)) = heredoc_program(script.text) {
                (reason, doc.to_owned())
            } else if let Some(program) = inline_program_in_script(script.text) {
                (format!("runs a program given inline ({program})"), program)
            } else if let Some(install) = installs {
                (format!("installs packages at start ({install})"), install)
            } else if lines > MAX_SCRIPT_LINES {
                (format!("runs a {lines}-line shell script"), String::new())
            } else {
                continue;
            };
            let message =
                format!("container {name} {reason}: application code is kept in the manifest");
            if needle.is_empty() {
                out.add(&INLINE_CODE, w.object, &script.path, message);
            } else {
                let needle = needle
                    .split_whitespace()
                    .next()
                    .unwrap_or(&needle)
                    .to_owned();
                out.add_at_text(&INLINE_CODE, w.object, &script.path, &needle, message);
            }
        }
    }
}
