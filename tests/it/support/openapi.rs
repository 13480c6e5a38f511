//! Checks a service's `/openapi.json` against what the service really answers.

use std::collections::BTreeSet;

use serde_json::Value;

/// Every operation the document lists, as "method /path".
pub fn documented_operations(doc: &Value) -> BTreeSet<String> {
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|m| *m != "parameters")
        {
            documented.insert(format!("{method} {path}"));
        }
    }
    documented
}

/// Sends one request and checks the answer against the documented operation: the status is
/// documented, and a JSON body conforms to its schema (any other content type is documented).
/// Returns the status.
pub async fn check_answer(
    doc: &Value,
    operation: &Value,
    method: &str,
    path: &str,
    request: reqwest::RequestBuilder,
) -> String {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16().to_string();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    let documented = operation["responses"]
        .get(&status)
        .unwrap_or_else(|| panic!("{method} {path} answered undocumented {status}: {text}"));
    let documented = resolve(doc, documented);
    if content_type.starts_with("application/json") {
        let schema = &documented["content"]["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "{method} {path} {status}: no JSON schema"
        );
        let body: Value = serde_json::from_str(&text).unwrap();
        conforms(doc, schema, &body, &format!("{method} {path} {status}"));
    } else {
        assert!(
            documented["content"]
                .get(content_type.split(';').next().unwrap())
                .is_some(),
            "{method} {path} {status} answered undocumented {content_type}"
        );
    }
    status
}

/// Resolves `{"$ref": "#/components/..."}` against the document.
pub fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => resolve(
            doc,
            doc.pointer(reference.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling {reference}")),
        ),
        None => node,
    }
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => panic!("unknown type {name}"),
    }
}

/// Checks the parts of JSON Schema the document's responses use: type (one or several),
/// required, properties, items, const, enum, minimum, maximum, allOf, anyOf.
pub fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = resolve(doc, schema);
    if let Some(expected) = schema.get("const") {
        assert_eq!(value, expected, "{at}");
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        assert!(options.contains(value), "{at}: {value} not in {options:?}");
    }
    match schema.get("type") {
        Some(Value::String(name)) => {
            assert!(type_matches(name, value), "{at}: not {name}: {value}")
        }
        Some(Value::Array(names)) => assert!(
            names
                .iter()
                .any(|n| type_matches(n.as_str().unwrap(), value)),
            "{at}: not one of {names:?}: {value}"
        ),
        _ => {}
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) {
        assert!(n >= min, "{at}: {n} < {min}");
    }
    if let (Some(max), Some(n)) = (
        schema.get("maximum").and_then(Value::as_f64),
        value.as_f64(),
    ) {
        assert!(n <= max, "{at}: {n} > {max}");
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        conforms(doc, part, value, at);
    }
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        let fits = options
            .iter()
            .any(|option| std::panic::catch_unwind(|| conforms(doc, option, value, at)).is_ok());
        assert!(fits, "{at}: matches no anyOf option: {value}");
    }
    if let Some(object) = value.as_object() {
        for key in schema["required"].as_array().into_iter().flatten() {
            assert!(
                object.contains_key(key.as_str().unwrap()),
                "{at}: missing {key} in {value}"
            );
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, item) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(property) => conforms(doc, property, item, &format!("{at}.{key}")),
                None => assert!(
                    schema.get("additionalProperties") != Some(&Value::Bool(false)),
                    "{at}: undocumented field {key}"
                ),
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            conforms(doc, items, item, &format!("{at}[{i}]"));
        }
    }
}
