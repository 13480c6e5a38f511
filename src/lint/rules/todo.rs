//! Seed 001, section 2: manifests with TODOs to fill in. A field left empty under a TODO, or
//! still holding a placeholder such as `<your-dockerhub-username>`, is unfinished.

use std::collections::HashSet;

use crate::lint::objects::Object;
use crate::lint::report::{Rule, Severity};
use crate::lint::rules::Findings;
use crate::lint::source::indent_of;

pub const UNFINISHED_TODO: Rule = Rule {
    id: "unfinished-todo",
    severity: Severity::Error,
    summary: "a field left empty under a TODO, or still holding a placeholder",
    explanation: "An empty YAML value is null, and Kubernetes treats null as \"not set\": \
        `clusterIP:` left empty under its TODO gives the Service a cluster IP (not headless), \
        `serviceName:` left empty leaves the StatefulSet without DNS names, `replicas:` falls \
        back to 1. kubectl applies all of it without complaint, so an unfinished exercise looks \
        deployed and fails later in ways that do not point back at the TODO. A placeholder such \
        as `<your-dockerhub-username>/cache-api:1.0` fails at image pull.",
    fix: "Fill in the value the TODO asks for (seed 001 gives the hints: clusterIP: None, \
        serviceName: redis-headless, labels app: redis, ...).",
};

pub fn check(objects: &[Object], out: &mut Findings) {
    let mut documents = HashSet::new();
    for object in objects {
        if !documents.insert((object.source.name.clone(), object.span.start)) {
            continue;
        }
        let lines = &object.source.lines[object.span.start..object.span.end];
        let mut keys: Vec<(usize, String)> = Vec::new();
        // Inside a block scalar (`script: |`), lines are text, not fields.
        let mut block_scalar_of: Option<usize> = None;
        for (i, line) in lines.iter().enumerate() {
            match (block_scalar_of, indent_of(line)) {
                (Some(col), Some(indent)) if indent > col => continue,
                (Some(_), None) => continue,
                _ => block_scalar_of = None,
            }
            let field = Field::parse(line);
            if opens_block_scalar(line) {
                block_scalar_of = Some(
                    field
                        .as_ref()
                        .map_or(indent_of(line).unwrap_or(0), |f| f.col),
                );
            }
            let Some(field) = field else {
                continue;
            };
            keys.retain(|(col, _)| *col < field.col);
            keys.push((field.col, field.key.to_owned()));
            let path = keys
                .iter()
                .map(|(_, k)| k.as_str())
                .collect::<Vec<_>>()
                .join(".");

            let message = if field.value.is_empty() {
                if has_block_value(lines, i, field.col) {
                    continue;
                }
                let Some(todo) = todo_comment(lines, i, field.comment) else {
                    continue;
                };
                format!("`{path}` is left empty ({todo}): Kubernetes treats it as not set")
            } else if is_placeholder(field.value) {
                format!("`{path}` still holds the placeholder {}", field.value)
            } else {
                continue;
            };
            out.add_at_line(&UNFINISHED_TODO, object, object.span.start + i + 1, message);
        }
    }
}

/// `  - key: value  # comment`
struct Field<'a> {
    /// The column the key starts at.
    col: usize,
    key: &'a str,
    value: &'a str,
    comment: &'a str,
}

impl<'a> Field<'a> {
    fn parse(line: &'a str) -> Option<Field<'a>> {
        let indent = indent_of(line)?;
        let mut col = indent;
        while line[col..].starts_with("- ") {
            col += 2;
            col += line[col..].len() - line[col..].trim_start().len();
        }
        let text = &line[col..];
        let (key, rest) = text.split_once(':')?;
        if !(rest.is_empty() || rest.starts_with(' '))
            || key.is_empty()
            || key.contains(' ') && !key.starts_with(['"', '\''])
        {
            return None;
        }
        let (value, comment) = match rest.find(" #") {
            Some(at) => (&rest[..at], &rest[at + 2..]),
            None => (rest, ""),
        };
        Some(Field {
            col,
            key: key.trim_matches(|c| c == '"' || c == '\''),
            value: value.trim(),
            comment: comment.trim(),
        })
    }
}

/// `key: |`, `- >-`: a block scalar starts on the next line.
fn opens_block_scalar(line: &str) -> bool {
    let text = line.split(" #").next().unwrap_or(line).trim_end();
    let last = text.rsplit([' ', '\t']).next().unwrap_or(text);
    last.starts_with(['|', '>'])
        && last.len() <= 3
        && last[1..]
            .chars()
            .all(|c| c == '-' || c == '+' || c.is_ascii_digit())
}

/// Whether the key on line `i` (at `col`) has its value on the following lines.
fn has_block_value(lines: &[String], i: usize, col: usize) -> bool {
    lines[i + 1..]
        .iter()
        .find_map(|line| indent_of(line).map(|indent| (indent, line)))
        .is_some_and(|(indent, line)| {
            indent > col || (indent == col && line[col..].starts_with('-'))
        })
}

/// The TODO that goes with line `i`: its own comment, or the comment lines right above it.
fn todo_comment(lines: &[String], i: usize, own: &str) -> Option<String> {
    let mentions_todo = |text: &str| text.contains("TODO") || text.contains("FIXME");
    if mentions_todo(own) {
        return Some(own.to_owned());
    }
    lines[..i]
        .iter()
        .rev()
        .take_while(|line| line.trim_start().starts_with('#'))
        .map(|line| line.trim_start().trim_start_matches('#').trim())
        .find(|text| mentions_todo(text))
        .map(str::to_owned)
}

/// `TODO`, `<your-dockerhub-username>/cache-api:1.0`, `CHANGE_ME`.
fn is_placeholder(value: &str) -> bool {
    let value = value.trim_matches(|c| c == '"' || c == '\'');
    let angle = value
        .find('<')
        .and_then(|start| {
            value[start..]
                .find('>')
                .map(|end| &value[start + 1..start + end])
        })
        .is_some_and(|inner| {
            !inner.is_empty()
                && inner
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    angle
        || value
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .any(|w| matches!(w, "TODO" | "FIXME" | "CHANGE_ME" | "CHANGEME"))
}
