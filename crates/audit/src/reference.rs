//! `docs/audit-events.md`: the record reference, generated from the [`Event`] types and
//! their doc comments (a test in `tests/docs.rs` keeps the file current).

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

use crate::event::Event;

/// The Markdown reference of every record kind and its fields.
pub fn reference_markdown() -> String {
    // The serialising contract: what writers emit (an optional field that is omitted
    // when empty is not required; one written as `null` is).
    let schema = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<Event>();
    let schema = schema.as_value();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut out = String::from(INTRO);
    let kinds = schema
        .get("oneOf")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for variant in &kinds {
        let Some(kind) = variant
            .pointer("/properties/kind")
            .and_then(constant)
            .map(plain)
        else {
            continue;
        };
        out.push_str(&format!("## `{kind}`\n\n"));
        push_text(&mut out, text(variant));
        let Some(data) = variant.pointer("/properties/data") else {
            continue;
        };
        let data = resolve(data, &defs);
        push_text(&mut out, text(data));
        let shapes = shapes(data, &defs);
        let count = shapes.len();
        for (i, shape) in shapes.into_iter().enumerate() {
            if count > 1 {
                let title = match shape.tag {
                    Some(tag) => format!("`{kind}` with {tag}"),
                    None => format!("`{kind}`, shape {} of {count}", i + 1),
                };
                out.push_str(&format!("### {title}\n\n"));
                push_text(&mut out, shape.description.clone());
            }
            out.push_str("| Field | Type | Present | Meaning |\n|---|---|---|---|\n");
            let mut rows = Vec::new();
            fields(&shape.object, &defs, "", &mut rows);
            for r in rows {
                out.push_str(&format!(
                    "| `{}` | {} | {} | {} |\n",
                    r.path,
                    cell(&r.ty),
                    r.presence,
                    cell(&r.meaning)
                ));
            }
            out.push('\n');
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

const INTRO: &str = "# Audit record reference

<!-- Generated from crates/audit/src/event.rs by `UPDATE_DOCS=1 cargo test -p cordon-audit \
--test docs`. Do not edit by hand. -->

Cordon's audit log is `STATE/audit/audit.jsonl`: one JSON object per line, hash-chained
(`cordon log verify` checks it; `cordon log show` and `cordon log export` read it; `[audit.export]`
streams it to a collector). Every line has the same envelope:

| Field | Type | Meaning |
|---|---|---|
| `seq` | integer | Position in the log, from 1, without gaps. |
| `ts` | string | When it was appended, RFC 3339 UTC. |
| `kind` | string | What the record is about: one of the kinds below. |
| `session` | string or null | The agent session it belongs to; `null` for records outside a session. |
| `data` | object | The kind's fields, described below. |
| `prev` | string | `hash` of the previous record; 64 zeros for the first. |
| `hash` | string | Lower-case hex SHA-256 of the canonical form of the other fields. |

Fields are only ever added, never renamed or removed. A kind written in several shapes lists
each; they are told apart by a tag field (`state`, `alert`, `action`) or by the fields
present. \"Present: always\" fields are in every record of that shape (possibly `null` when the
type says so); \"optional\" fields are omitted when they do not apply. Values described as
\"any JSON\" carry another component's data as that component writes it; their meaning says
what to expect. Text that could hold a secret (actions, arguments, messages) is redacted before
it is written.

";

struct Shape {
    /// The tag that tells it apart (`` `state: requested` ``), if any.
    tag: Option<String>,
    description: String,
    /// The object schema (own properties, `$ref` and `allOf` still to merge).
    object: Value,
}

/// The alternatives of a payload: one for a struct, several for an enum (nested enums
/// flattened).
fn shapes(schema: &Value, defs: &Map<String, Value>) -> Vec<Shape> {
    let resolved = resolve(schema, defs);
    let options = resolved
        .get("oneOf")
        .or_else(|| resolved.get("anyOf"))
        .and_then(Value::as_array);
    let Some(options) = options else {
        return vec![Shape {
            tag: None,
            description: String::new(),
            object: schema.clone(),
        }];
    };
    let mut out = Vec::new();
    for option in options {
        let inner = shapes(option, defs);
        let nested = inner.len() > 1;
        for mut s in inner {
            let own = text(option);
            if s.tag.is_none() {
                s.tag = tag_of(&s.object, defs).or_else(|| tag_of(option, defs));
            }
            if !nested || s.description.is_empty() {
                s.description = if own.is_empty() {
                    text(resolve(&s.object, defs))
                } else {
                    own
                };
            }
            out.push(s);
        }
    }
    out
}

/// `state: requested` when the object has a constant string property (a serde tag).
fn tag_of(schema: &Value, defs: &Map<String, Value>) -> Option<String> {
    let (props, _) = properties(schema, defs);
    props.iter().find_map(|(name, p)| {
        constant(p)
            .filter(|c| c.is_string())
            .map(|c| format!("`{name}: {}`", plain(c)))
    })
}

struct Row {
    path: String,
    ty: String,
    presence: &'static str,
    meaning: String,
}

fn fields(schema: &Value, defs: &Map<String, Value>, prefix: &str, rows: &mut Vec<Row>) {
    let (mut props, required) = properties(schema, defs);
    // Tags first, then alphabetical whatever map serde_json was built with.
    props.sort_by(|a, b| {
        let tag = |p: &Value| constant(p).is_none();
        (tag(&a.1), &a.0).cmp(&(tag(&b.1), &b.0))
    });
    for (name, field) in props {
        let path = format!("{prefix}{name}");
        let target = resolve(&field, defs);
        let (inner, nullable) = non_null(target, defs);
        let present = required.contains(&name);
        let ty = type_name(inner, defs);
        // An optional field is omitted rather than `null`.
        let ty = if nullable && present {
            format!("{ty} or null")
        } else {
            ty
        };
        let mut meaning = text(&field);
        if meaning.is_empty() {
            meaning = text(inner);
        }
        if meaning.is_empty() && constant(inner).is_some() {
            meaning = "Tells this shape apart from the kind's others.".to_string();
        }
        rows.push(Row {
            path: path.clone(),
            ty,
            presence: if present { "always" } else { "optional" },
            meaning,
        });
        if is_object(inner, defs) {
            fields(inner, defs, &format!("{path}."), rows);
        } else if let Some(items) = inner.get("items").map(|i| resolve(i, defs))
            && is_object(items, defs)
        {
            fields(items, defs, &format!("{path}[]."), rows);
        }
    }
}

/// An object's properties and required names, merging `$ref` and `allOf`.
fn properties(schema: &Value, defs: &Map<String, Value>) -> (Vec<(String, Value)>, Vec<String>) {
    let mut props = Vec::new();
    let mut required = Vec::new();
    let mut parts = vec![schema];
    if let Some(def) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|name| defs.get(name))
    {
        parts.push(resolve(def, defs));
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        parts.extend(all.iter().map(|s| resolve(s, defs)));
    }
    for part in parts {
        if let Some(p) = part.get("properties").and_then(Value::as_object) {
            for (k, v) in p {
                if !props.iter().any(|(n, _)| n == k) {
                    props.push((k.clone(), v.clone()));
                }
            }
        }
        if let Some(r) = part.get("required").and_then(Value::as_array) {
            required.extend(r.iter().filter_map(Value::as_str).map(str::to_string));
        }
    }
    (props, required)
}

fn is_object(schema: &Value, defs: &Map<String, Value>) -> bool {
    !properties(schema, defs).0.is_empty()
}

/// Follow `$ref` to the definition.
fn resolve<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    match schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        Some(name) if schema.get("properties").is_none() => {
            defs.get(name).map_or(schema, |d| resolve(d, defs))
        }
        _ => schema,
    }
}

/// The schema without its `null` alternative, and whether it had one.
fn non_null<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> (&'a Value, bool) {
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let others: Vec<&Value> = any
            .iter()
            .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        if others.len() == 1 && others.len() < any.len() {
            return (resolve(others[0], defs), true);
        }
    }
    let nullable = schema
        .get("type")
        .and_then(Value::as_array)
        .is_some_and(|ts| ts.iter().any(|t| t == "null"));
    (schema, nullable)
}

fn type_name(schema: &Value, defs: &Map<String, Value>) -> String {
    if let Some(c) = constant(schema) {
        return format!("`{}`", plain(c));
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = values
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| format!("`{}`", plain(v)))
            .collect();
        return format!("one of {}", names.join(", "));
    }
    // A string enum with some variants documented: oneOf [{enum: [..]}, {const: ..}].
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array)
        && let Some(values) = options
            .iter()
            .map(
                |o| match (constant(o), o.get("enum").and_then(Value::as_array)) {
                    (Some(c), _) => Some(vec![c.clone()]),
                    (None, Some(all)) => Some(all.clone()),
                    (None, None) => None,
                },
            )
            .collect::<Option<Vec<Vec<Value>>>>()
    {
        let names: Vec<String> = values
            .iter()
            .flatten()
            .map(|v| format!("`{}`", plain(v)))
            .collect();
        return format!("one of {}", names.join(", "));
    }
    let ty: Vec<String> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts.iter().map(plain).filter(|t| t != "null").collect(),
        _ => Vec::new(),
    };
    match ty.as_slice() {
        [] => "any JSON".to_string(),
        [t] if t == "array" => {
            let items = schema.get("items").map(|i| resolve(i, defs));
            match items {
                Some(i) if is_object(i, defs) => "array of objects".to_string(),
                Some(i) => format!("array of {}", type_name(non_null(i, defs).0, defs)),
                None => "array".to_string(),
            }
        }
        [t] => t.clone(),
        many => many.join(" or "),
    }
}

fn constant(schema: &Value) -> Option<&Value> {
    schema.get("const").or_else(|| {
        schema
            .get("enum")
            .and_then(Value::as_array)
            .filter(|e| e.len() == 1)
            .and_then(|e| e.first())
    })
}

fn text(schema: &Value) -> String {
    schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn push_text(out: &mut String, t: String) {
    if !t.is_empty() {
        out.push_str(&t);
        out.push_str("\n\n");
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A Markdown table cell: no line breaks, `|` escaped.
fn cell(t: &str) -> String {
    t.replace('|', "\\|")
}
