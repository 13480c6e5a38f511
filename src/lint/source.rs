//! Manifest text: splitting a YAML stream into documents, and finding the line a field is on.
//!
//! serde_norway gives values without positions, so lines are found in the text itself: a
//! document starts after its `---` marker, and a field is found by walking the document's
//! block structure (mapping keys at one indentation, sequence dashes at one indentation) along
//! the field's path. Block style is what Kubernetes manifests use; flow collections (`args:
//! ["a", "b"]`, or a whole document written as JSON) are walked bracket by bracket. Where the
//! walk cannot go on, the line of the deepest field found is used.

use std::fmt;

/// One input: a file, or standard input.
#[derive(Debug)]
pub struct Source {
    /// The name findings show: the path as given, or `<stdin>`.
    pub name: String,
    pub lines: Vec<String>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: &str) -> Source {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Source {
            name: name.into(),
            lines: text.lines().map(str::to_owned).collect(),
        }
    }
}

/// A path into a document: mapping keys and sequence indexes, as serde reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Path(Vec<Segment>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

impl Path {
    pub fn root() -> Path {
        Path(Vec::new())
    }

    pub fn key(&self, key: &str) -> Path {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.to_owned()));
        next
    }

    pub fn index(&self, index: usize) -> Path {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }

    /// `self` followed by `other`.
    pub fn join(&self, other: &Path) -> Path {
        let mut next = self.clone();
        next.0.extend(other.0.iter().cloned());
        next
    }

    pub fn push(&mut self, segment: Segment) {
        self.0.push(segment);
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }
}

/// `spec.template.spec.containers[0].image`
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// One YAML document of a source: its lines are `start..end` (0-based) of the source.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// Splits a YAML stream at its `---` and `...` markers. Each document's text keeps the
/// source's line numbering relative to `span.start` (marker lines become blank).
pub fn split_documents(source: &Source) -> Vec<(Span, String)> {
    let mut documents = Vec::new();
    let mut start = 0;
    for (i, line) in source.lines.iter().enumerate() {
        if is_marker(line, "---") || is_marker(line, "...") {
            documents.push(Span { start, end: i });
            start = i + 1;
        }
    }
    documents.push(Span {
        start,
        end: source.lines.len(),
    });
    documents
        .into_iter()
        .filter(|span| (span.start..span.end).any(|i| indent_of(&source.lines[i]).is_some()))
        .filter(|span| {
            !(span.start..span.end).all(|i| {
                let line = &source.lines[i];
                is_directive(line) || indent_of(line).is_none()
            })
        })
        .map(|span| {
            let text = source.lines[span.start..span.end]
                .iter()
                .map(|line| {
                    if is_directive(line) {
                        ""
                    } else {
                        line.as_str()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            (span, text)
        })
        .collect()
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// `%YAML 1.2` and `%TAG` lines, which may precede a document's `---`.
fn is_directive(line: &str) -> bool {
    line.starts_with('%')
}

/// The indentation of a line that holds YAML content; `None` for blank and comment-only lines.
pub fn indent_of(line: &str) -> Option<usize> {
    let trimmed = line.trim_start_matches(' ');
    if trimmed.trim().is_empty() || trimmed.starts_with('#') {
        None
    } else {
        Some(line.len() - trimmed.len())
    }
}

/// A node found in the text: where it starts, and the line its block ends before.
#[derive(Clone, Copy, Debug)]
struct Node {
    /// The line that names the node: its key, or its sequence dash.
    anchor: usize,
    /// The line its content starts on.
    line: usize,
    col: usize,
    end: usize,
    /// A scalar or flow collection on the line itself: nothing below it can be walked.
    inline: bool,
    /// Where an inline value starts on `line` (a flow collection is walked from there).
    value_col: usize,
}

/// A position in the source: line and byte column, both 0-based.
type Pos = (usize, usize);

/// Finds lines within one document.
pub struct Locator<'a> {
    lines: &'a [String],
    span: Span,
}

impl<'a> Locator<'a> {
    pub fn new(source: &'a Source, span: Span) -> Locator<'a> {
        Locator {
            lines: &source.lines,
            span,
        }
    }

    /// The first line of the document that holds content (0-based index into the source).
    pub fn start_line(&self) -> usize {
        self.next_content(self.span.start, self.span.end)
            .unwrap_or(self.span.start)
    }

    /// The line of the field at `path`, or of the deepest field along it that exists.
    pub fn line_of(&self, path: &Path) -> usize {
        self.walk(path).anchor
    }

    /// The first line of the field at `path` (including a block scalar's content lines) that
    /// contains `needle`; the field's own line when none does.
    pub fn line_of_text(&self, path: &Path, needle: &str) -> usize {
        let node = self.walk(path);
        (node.anchor..node.end.max(node.anchor + 1))
            .find(|&i| self.lines.get(i).is_some_and(|line| line.contains(needle)))
            .unwrap_or(node.anchor)
    }

    fn walk(&self, path: &Path) -> Node {
        let start = self.start_line();
        let col = indent_of(&self.lines[start]).unwrap_or(0);
        let mut node = Node {
            anchor: start,
            line: start,
            col,
            end: self.span.end,
            inline: false,
            value_col: col,
        };
        let segments = path.segments();
        // A whole document written in flow style (`{"apiVersion": ...}`, as JSON is).
        if self.text_at(start, col).starts_with(['{', '[']) {
            return self.walk_flow(node, segments);
        }
        for (i, segment) in segments.iter().enumerate() {
            if node.inline {
                if self
                    .text_at(node.line, node.value_col)
                    .starts_with(['{', '['])
                {
                    return self.walk_flow(node, &segments[i..]);
                }
                break;
            }
            let next = match segment {
                Segment::Key(key) => self.find_key(node, key),
                Segment::Index(index) => self.find_item(node, *index),
            };
            match next {
                Some(next) => node = next,
                None => break,
            }
        }
        node
    }

    /// Walks `segments` through the flow collection starting at (`node.line`,
    /// `node.value_col`): keys and items separated by commas, quoted or plain, over any number
    /// of lines. Stops at the deepest field found, like the block walk.
    fn walk_flow(&self, mut node: Node, segments: &[Segment]) -> Node {
        let mut at = (node.line, node.value_col);
        for segment in segments {
            let open = self.byte(at);
            let found = match (segment, open) {
                (Segment::Key(key), Some(b'{')) => self.flow_key(self.step(at), key),
                (Segment::Index(index), Some(b'[')) => self.flow_item(self.step(at), *index),
                _ => None,
            };
            let Some((anchor, value)) = found else {
                break;
            };
            let end = self.skip_value(value);
            node = Node {
                anchor: anchor.0,
                line: value.0,
                col: value.1,
                end: (end.0 + 1).min(self.span.end),
                inline: true,
                value_col: value.1,
            };
            at = value;
        }
        node
    }

    /// The byte at a position; a line's end reads as `\n`, the document's end as `None`.
    fn byte(&self, (line, col): (usize, usize)) -> Option<u8> {
        if line >= self.span.end {
            return None;
        }
        Some(
            self.lines[line]
                .as_bytes()
                .get(col)
                .copied()
                .unwrap_or(b'\n'),
        )
    }

    fn step(&self, (line, col): (usize, usize)) -> (usize, usize) {
        if col >= self.lines[line].len() {
            (line + 1, 0)
        } else {
            (line, col + 1)
        }
    }

    /// Past spaces, line ends and comments.
    fn skip_blank(&self, mut at: (usize, usize)) -> (usize, usize) {
        while let Some(b) = self.byte(at) {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => at = self.step(at),
                b'#' => at = (at.0 + 1, 0),
                _ => break,
            }
        }
        at
    }

    /// Past one value (a scalar, quoted or plain, or a nested collection), to the `,` or the
    /// closing bracket after it.
    fn skip_value(&self, mut at: (usize, usize)) -> (usize, usize) {
        let mut depth = 0usize;
        while let Some(b) = self.byte(at) {
            match b {
                b'"' | b'\'' => {
                    at = self.skip_quoted(at);
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => return at,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return self.step(at);
                    }
                }
                b',' if depth == 0 => return at,
                _ => {}
            }
            at = self.step(at);
        }
        at
    }

    /// Past a quoted scalar starting at `at`.
    fn skip_quoted(&self, at: (usize, usize)) -> (usize, usize) {
        let quote = self.byte(at);
        let mut at = self.step(at);
        while let Some(b) = self.byte(at) {
            if b == b'\\' && quote == Some(b'"') {
                at = self.step(self.step(at));
                continue;
            }
            if Some(b) == quote {
                let next = self.step(at);
                // `''` inside single quotes is one quote.
                if quote == Some(b'\'') && self.byte(next) == Some(b'\'') {
                    at = self.step(next);
                    continue;
                }
                return next;
            }
            at = self.step(at);
        }
        at
    }

    /// In a flow mapping whose first entry may start at `at`: the key's position and its
    /// value's.
    fn flow_key(&self, mut at: (usize, usize), key: &str) -> Option<(Pos, Pos)> {
        loop {
            at = self.skip_blank(at);
            let key_at = at;
            let name = match self.byte(at)? {
                b'}' => return None,
                b'"' | b'\'' => {
                    let end = self.skip_quoted(at);
                    let text = if end.0 == at.0 {
                        self.lines[at.0]
                            .get(at.1 + 1..end.1.saturating_sub(1))
                            .unwrap_or("")
                    } else {
                        ""
                    };
                    at = end;
                    text
                }
                _ => {
                    let line = &self.lines[at.0];
                    let rest = &line[at.1..];
                    let len = rest.find([':', ',', '}']).unwrap_or(rest.len());
                    let text = rest[..len].trim_end();
                    at = (at.0, at.1 + len);
                    text
                }
            };
            at = self.skip_blank(at);
            if self.byte(at)? != b':' {
                return None;
            }
            let value = self.skip_blank(self.step(at));
            if name == key {
                return Some((key_at, value));
            }
            at = self.skip_value(value);
            match self.byte(at)? {
                b',' => at = self.step(at),
                _ => return None,
            }
        }
    }

    /// Item `index` of a flow sequence whose first item may start at `at`.
    fn flow_item(&self, mut at: (usize, usize), index: usize) -> Option<(Pos, Pos)> {
        let mut seen = 0;
        loop {
            at = self.skip_blank(at);
            if self.byte(at)? == b']' {
                return None;
            }
            if seen == index {
                return Some((at, at));
            }
            seen += 1;
            at = self.skip_value(at);
            match self.byte(at)? {
                b',' => at = self.step(at),
                _ => return None,
            }
        }
    }

    fn next_content(&self, from: usize, end: usize) -> Option<usize> {
        (from..end).find(|&i| indent_of(&self.lines[i]).is_some())
    }

    /// The text of a line from a column on (empty when the line is shorter).
    fn text_at(&self, line: usize, col: usize) -> &'a str {
        self.lines[line].get(col..).unwrap_or("")
    }

    fn is_dash_at(&self, line: usize, col: usize) -> bool {
        let text = self.text_at(line, col);
        text == "-" || text.starts_with("- ")
    }

    /// The mapping at `node`: its keys sit at `node.col`, on `node.line` and on later lines.
    fn find_key(&self, node: Node, key: &str) -> Option<Node> {
        let mut line = node.line;
        while line < node.end {
            if let Some(indent) = indent_of(&self.lines[line]) {
                let first = line == node.line;
                if !first && indent < node.col {
                    return None;
                }
                if (first || indent == node.col)
                    && !self.is_dash_at(line, node.col)
                    && let Some(rest) = strip_key(self.text_at(line, node.col), key)
                {
                    return Some(self.value_after_key(line, node.col, rest, node.end));
                }
            }
            line += 1;
        }
        None
    }

    /// The value of a key found at (`line`, `col`), whose text after the colon is `rest`.
    fn value_after_key(&self, line: usize, col: usize, rest: &str, end: usize) -> Node {
        let block_end = self.block_end(line, col, end);
        let untrimmed = rest;
        let rest = rest.trim();
        let value_on_line = !rest.is_empty() && !rest.starts_with('#') && !is_properties_only(rest);
        let after_key = self.text_at(line, col);
        let value_col = col + after_key.len() - untrimmed.len()
            + (untrimmed.len() - untrimmed.trim_start().len());
        let inline = Node {
            anchor: line,
            line,
            col,
            end: block_end,
            inline: true,
            value_col,
        };
        if value_on_line {
            return inline;
        }
        match self.next_content(line + 1, block_end) {
            Some(next) => {
                let indent = indent_of(&self.lines[next]).unwrap_or(0);
                if indent > col || (indent == col && self.is_dash_at(next, col)) {
                    Node {
                        anchor: line,
                        line: next,
                        col: indent,
                        end: block_end,
                        inline: false,
                        value_col: indent,
                    }
                } else {
                    inline
                }
            }
            None => inline,
        }
    }

    /// Where the value of a key at (`line`, `col`) ends: the next line at the key's own
    /// indentation (another key) or less. A sequence written at the key's indentation belongs
    /// to the key.
    fn block_end(&self, line: usize, col: usize, end: usize) -> usize {
        (line + 1..end)
            .find(|&i| match indent_of(&self.lines[i]) {
                Some(indent) => indent < col || (indent == col && !self.is_dash_at(i, col)),
                None => false,
            })
            .unwrap_or(end)
    }

    /// Item `index` of the sequence at `node`: dashes at `node.col`.
    fn find_item(&self, node: Node, index: usize) -> Option<Node> {
        let mut seen = 0;
        let mut line = node.line;
        while line < node.end {
            if let Some(indent) = indent_of(&self.lines[line]) {
                let first = line == node.line;
                if !first && indent < node.col {
                    return None;
                }
                if first || indent == node.col {
                    if !self.is_dash_at(line, node.col) {
                        return None;
                    }
                    if seen == index {
                        return Some(self.item_at(line, node.col, node.end));
                    }
                    seen += 1;
                }
            }
            line += 1;
        }
        None
    }

    fn item_at(&self, line: usize, col: usize, end: usize) -> Node {
        let item_end = (line + 1..end)
            .find(|&i| indent_of(&self.lines[i]).is_some_and(|indent| indent <= col))
            .unwrap_or(end);
        let after_dash = &self.text_at(line, col)[1..];
        let content = after_dash.trim_start_matches(' ');
        let content_col = col + 1 + (after_dash.len() - content.len());
        if !content.is_empty() && !content.starts_with('#') {
            return Node {
                anchor: line,
                line,
                col: content_col,
                end: item_end,
                inline: content.starts_with(['|', '>', '[', '{', '"', '\'']),
                value_col: content_col,
            };
        }
        match self.next_content(line + 1, item_end) {
            Some(next) => {
                let indent = indent_of(&self.lines[next]).unwrap_or(0);
                Node {
                    anchor: line,
                    line: next,
                    col: indent,
                    end: item_end,
                    inline: false,
                    value_col: indent,
                }
            }
            None => Node {
                anchor: line,
                line,
                col,
                end: item_end,
                inline: true,
                value_col: col,
            },
        }
    }
}

/// `key: rest` → `rest`, for plain, double-quoted and single-quoted keys.
pub fn strip_key<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    let after = text
        .strip_prefix(key)
        .or_else(|| {
            text.strip_prefix('"')
                .and_then(|t| t.strip_prefix(key))
                .and_then(|t| t.strip_prefix('"'))
        })
        .or_else(|| {
            text.strip_prefix('\'')
                .and_then(|t| t.strip_prefix(key))
                .and_then(|t| t.strip_prefix('\''))
        })?;
    let rest = after.strip_prefix(':')?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some(rest)
}

/// An anchor or tag with nothing after it (`key: &data`): the value is on the next lines.
fn is_properties_only(rest: &str) -> bool {
    let rest = rest.split(" #").next().unwrap_or(rest).trim();
    !rest.is_empty()
        && rest
            .split_whitespace()
            .all(|token| token.starts_with('&') || token.starts_with('!'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# leading comment
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  annotations:
    \"helm.sh/hook\": pre-install
spec:
  template:
    spec:
      initContainers:
      - name: init
        command: [\"sh\", \"-c\"]
        args:
          - |
            echo 0 > /data/n
            chown 1000 /data/n
      containers:
        - name: a
          env:
          - name: X
            value: \"10.0.0.1\"
        -   name: b
          # a comment at the item's indentation
            image: redis
---
kind: Service
";

    fn locate(path: &Path) -> usize {
        let source = Source::new("t", TEXT);
        let (span, _) = split_documents(&source)[0];
        Locator::new(&source, span).line_of(path) + 1
    }

    #[test]
    fn finds_keys_and_items() {
        let spec = Path::root().key("spec").key("template").key("spec");
        assert_eq!(locate(&Path::root()), 2);
        assert_eq!(locate(&Path::root().key("kind")), 3);
        assert_eq!(
            locate(
                &Path::root()
                    .key("metadata")
                    .key("annotations")
                    .key("helm.sh/hook")
            ),
            7
        );
        assert_eq!(locate(&spec.key("initContainers").index(0).key("name")), 12);
        assert_eq!(
            locate(&spec.key("initContainers").index(0).key("args").index(0)),
            15
        );
        let env = spec.key("containers").index(0).key("env").index(0);
        assert_eq!(locate(&env.key("value")), 22);
        assert_eq!(locate(&spec.key("containers").index(1).key("image")), 25);
        // Missing fields give the deepest line that exists.
        assert_eq!(locate(&spec.key("containers").index(1).key("nope")), 23);
        assert_eq!(
            locate(&spec.key("initContainers").index(0).key("command").index(1)),
            13
        );
    }

    #[test]
    fn finds_text_inside_block_scalars() {
        let source = Source::new("t", TEXT);
        let (span, _) = split_documents(&source)[0];
        let args = Path::root()
            .key("spec")
            .key("template")
            .key("spec")
            .key("initContainers")
            .index(0)
            .key("args")
            .index(0);
        assert_eq!(
            Locator::new(&source, span).line_of_text(&args, "chown") + 1,
            17
        );
    }

    #[test]
    fn finds_fields_in_flow_style() {
        let text = "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Pod\",\n  \"spec\": {\"containers\": [\n    {\"name\": \"a\"},\n    {\"name\": \"b\",\n     \"image\": \"x:1\"}]}\n}\n";
        let source = Source::new("t", text);
        let (span, _) = split_documents(&source)[0];
        let locator = Locator::new(&source, span);
        let containers = Path::root().key("spec").key("containers");
        assert_eq!(locator.line_of(&Path::root().key("kind")) + 1, 3);
        assert_eq!(locator.line_of(&containers.index(1).key("image")) + 1, 7);
        assert_eq!(locator.line_of(&containers.index(0).key("name")) + 1, 5);
        let block = Source::new("t", "a:\n  args: [\"x\",\n    \"10.0.0.1\"]\n");
        let (span, _) = split_documents(&block)[0];
        let args = Path::root().key("a").key("args").index(1);
        assert_eq!(Locator::new(&block, span).line_of(&args) + 1, 3);
    }

    #[test]
    fn splits_documents_at_markers() {
        let source = Source::new("t", "---\n# only a comment\n---\na: 1\n...\n---\nb: 2\n");
        let documents = split_documents(&source);
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[0].0.start, 3);
        assert_eq!(documents[1].1, "b: 2");
    }
}
