//! Request templates: a method, a path and an optional JSON or form body in which `{n}` (the
//! request's sequence number, from 0), `{uuid}` (a random UUID per request) and `{run}` (an
//! id shared by every request of one run) are replaced, so every write can be unique and
//! recognisable afterwards.

use anyhow::{Context, bail};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    N,
    Uuid,
}

/// A text with placeholders, split once so rendering is a few appends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    segments: Vec<Segment>,
}

/// The values of one request's placeholders.
#[derive(Debug, Clone, Copy)]
pub struct Vars {
    pub n: u64,
    pub uuid: Uuid,
}

impl Text {
    /// Splits `text` on the known placeholders; `{run}` is replaced at once by `run_id`.
    /// Any other brace is literal (JSON bodies are full of them).
    pub fn parse(text: &str, run_id: &str) -> Text {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(start) = rest.find('{') {
            literal.push_str(&rest[..start]);
            let tail = &rest[start..];
            // `{num}` is the same as `{n}`: clap turns `{n}` into a line break in `--help`, so
            // the help shows `{num}`.
            let (segment, len) = if tail.starts_with("{n}") {
                (Some(Segment::N), 3)
            } else if tail.starts_with("{num}") {
                (Some(Segment::N), 5)
            } else if tail.starts_with("{uuid}") {
                (Some(Segment::Uuid), 6)
            } else if tail.starts_with("{run}") {
                literal.push_str(run_id);
                (None, 5)
            } else {
                literal.push('{');
                (None, 1)
            };
            if let Some(segment) = segment {
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                segments.push(segment);
            }
            rest = &tail[len..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Text { segments }
    }

    /// True when the text is the same for every request.
    pub fn is_constant(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
    }

    pub fn uses_uuid(&self) -> bool {
        self.segments.contains(&Segment::Uuid)
    }

    pub fn render_into(&self, out: &mut String, vars: &Vars) {
        use std::fmt::Write;
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::N => {
                    let _ = write!(out, "{}", vars.n);
                }
                Segment::Uuid => out.push_str(
                    vars.uuid
                        .hyphenated()
                        .encode_lower(&mut Uuid::encode_buffer()),
                ),
            }
        }
    }

    pub fn render(&self, vars: &Vars) -> String {
        let mut out = String::new();
        self.render_into(&mut out, vars);
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Form,
}

#[derive(Debug, Clone)]
pub struct Body {
    pub kind: BodyKind,
    pub text: Text,
}

/// Everything needed to build each request of a run.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    pub method: Method,
    pub path: Text,
    pub body: Option<Body>,
    pub headers: HeaderMap,
    pub run_id: String,
}

impl RequestTemplate {
    /// Builds and checks a template: the path must start with `/`, a JSON body must be valid
    /// JSON once its placeholders are filled in.
    pub fn new(
        method: Option<&str>,
        path: &str,
        json_body: Option<&str>,
        form_body: Option<&str>,
        headers: &[String],
        run_id: &str,
    ) -> anyhow::Result<RequestTemplate> {
        if !path.starts_with('/') {
            bail!("the path must start with '/' (got {path:?})");
        }
        let body = match (json_body, form_body) {
            (Some(_), Some(_)) => bail!("give either a JSON body or a form body, not both"),
            (Some(json), None) => Some(Body {
                kind: BodyKind::Json,
                text: Text::parse(json, run_id),
            }),
            (None, Some(form)) => Some(Body {
                kind: BodyKind::Form,
                text: Text::parse(form, run_id),
            }),
            (None, None) => None,
        };
        let method = match method {
            Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| anyhow::anyhow!("{m:?} is not an HTTP method"))?,
            None if body.is_some() => Method::POST,
            None => Method::GET,
        };
        let mut header_map = HeaderMap::new();
        if let Some(body) = &body {
            let content_type = match body.kind {
                BodyKind::Json => "application/json",
                BodyKind::Form => "application/x-www-form-urlencoded",
            };
            header_map.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        for header in headers {
            let (name, value) = header
                .split_once(':')
                .with_context(|| format!("a header is NAME: VALUE (got {header:?})"))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("invalid header name in {header:?}"))?;
            let value = HeaderValue::from_str(value.trim())
                .with_context(|| format!("invalid header value in {header:?}"))?;
            header_map.insert(name, value);
        }
        let template = RequestTemplate {
            method,
            path: Text::parse(path, run_id),
            body,
            headers: header_map,
            run_id: run_id.to_owned(),
        };
        if let Some(Body {
            kind: BodyKind::Json,
            text,
        }) = &template.body
        {
            let sample = text.render(&Vars {
                n: 0,
                uuid: Uuid::nil(),
            });
            serde_json::from_str::<Value>(&sample).with_context(|| {
                format!(
                    "the JSON body is not valid JSON once its placeholders are filled in: {sample}"
                )
            })?;
        }
        Ok(template)
    }

    pub fn uses_uuid(&self) -> bool {
        self.path.uses_uuid() || self.body.as_ref().is_some_and(|b| b.text.uses_uuid())
    }

    /// The value of `field` in the body of request `vars`, which identifies that write in
    /// the service's storage.
    pub fn key_of(&self, field: &str, vars: &Vars) -> Option<String> {
        let body = self.body.as_ref()?;
        let rendered = body.text.render(vars);
        field_value(body.kind, &rendered, field)
    }

    /// Checks that `field` exists in the body and differs from one request to the next.
    pub fn check_audit_key(&self, field: &str) -> anyhow::Result<()> {
        let Some(body) = &self.body else {
            bail!(
                "--audit needs a request body (--json-body or --form-body) to recognise each write"
            );
        };
        let first = Vars {
            n: 0,
            uuid: Uuid::new_v4(),
        };
        let second = Vars {
            n: 1,
            uuid: Uuid::new_v4(),
        };
        let (Some(a), Some(b)) = (self.key_of(field, &first), self.key_of(field, &second)) else {
            bail!(
                "the {} body has no text field {field:?}, which the audit uses to recognise each write",
                match body.kind {
                    BodyKind::Json => "JSON",
                    BodyKind::Form => "form",
                }
            );
        };
        if a == b {
            bail!(
                "the body field {field:?} must contain {{n}} or {{uuid}} so every write is unique"
            );
        }
        Ok(())
    }
}

fn field_value(kind: BodyKind, rendered: &str, field: &str) -> Option<String> {
    match kind {
        BodyKind::Json => {
            let value: Value = serde_json::from_str(rendered).ok()?;
            match value.get(field)? {
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            }
        }
        BodyKind::Form => {
            // The URL parser's query decoding is exactly form decoding.
            let url = reqwest::Url::parse(&format!("http://form.invalid/?{rendered}")).ok()?;
            url.query_pairs()
                .find(|(name, _)| name == field)
                .map(|(_, value)| value.into_owned())
        }
    }
}

/// A short random id for `{run}`: 8 hex digits.
pub fn new_run_id() -> String {
    Uuid::new_v4().simple().to_string()[..8].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(n: u64) -> Vars {
        Vars {
            n,
            uuid: Uuid::nil(),
        }
    }

    #[test]
    fn placeholders_are_replaced_and_other_braces_kept() {
        let text = Text::parse(r#"{"name":"w-{run}-{n}","id":"{uuid}","x":{}}"#, "abc");
        assert_eq!(
            text.render(&vars(7)),
            r#"{"name":"w-abc-7","id":"00000000-0000-0000-0000-000000000000","x":{}}"#
        );
        assert!(!text.is_constant());
        assert!(Text::parse("/healthz", "r").is_constant());
        assert_eq!(Text::parse("{", "r").render(&vars(0)), "{");
        assert_eq!(Text::parse("{nope}{n}", "r").render(&vars(3)), "{nope}3");
        assert_eq!(Text::parse("a{num}b{n}", "r").render(&vars(7)), "a7b7");
    }

    #[test]
    fn templates_are_checked() {
        assert!(RequestTemplate::new(None, "healthz", None, None, &[], "r").is_err());
        assert!(RequestTemplate::new(None, "/", Some("{\"a\": {n}"), None, &[], "r").is_err());
        assert!(RequestTemplate::new(None, "/", Some("{}"), Some("a=b"), &[], "r").is_err());
        let t = RequestTemplate::new(
            None,
            "/",
            Some(r#"{"a": {n}}"#),
            None,
            &["X-A: b".into()],
            "r",
        )
        .unwrap();
        assert_eq!(t.method, Method::POST);
        assert_eq!(t.headers["x-a"], "b");
        assert_eq!(t.headers[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn audit_keys_come_from_json_or_form_bodies() {
        let json = RequestTemplate::new(
            None,
            "/",
            Some(r#"{"name":"w-{n}","message":"hi"}"#),
            None,
            &[],
            "r",
        )
        .unwrap();
        assert_eq!(json.key_of("name", &vars(4)).as_deref(), Some("w-4"));
        assert!(json.check_audit_key("name").is_ok());
        assert!(json.check_audit_key("message").is_err());
        assert!(json.check_audit_key("missing").is_err());
        let form =
            RequestTemplate::new(None, "/", None, Some("name=a+b%2F{n}&message=x"), &[], "r")
                .unwrap();
        assert_eq!(form.key_of("name", &vars(2)).as_deref(), Some("a b/2"));
        assert!(form.check_audit_key("name").is_ok());
    }
}
