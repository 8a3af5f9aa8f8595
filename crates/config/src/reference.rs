//! Generated documentation: the JSON Schema of `cordon.toml` and the Markdown key
//! reference (`docs/configuration.md`), both derived from the doc comments in
//! [`crate::schema`] so that every key is documented exactly once.
//!
//! Guarantees: every key reachable from [`Config`] appears in the reference with its type,
//! default and description. Does not: document semantic rules that live only in code
//! (they are written into the field docs instead).

use serde_json::{Map, Value};

use crate::Config;

/// The JSON Schema (draft 2020-12) of `cordon.toml`.
pub fn json_schema() -> Value {
    let schema = schemars::schema_for!(Config);
    schema.to_value()
}

/// The Markdown content of `docs/configuration.md`.
pub fn reference_markdown() -> String {
    let schema = json_schema();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut out = String::from(
        "# Configuration reference\n\n\
         <!-- Generated from crates/config/src/schema.rs by `UPDATE_DOCS=1 cargo test -p \
         cordon-config --test docs`. Do not edit by hand. -->\n\n\
         Cordon reads `cordon.toml` from `$CORDON_CONFIG`, else \
         `~/.config/cordon/cordon.toml`. Loading is strict: an unknown key, a wrong type or \
         an out-of-range value is an error naming `FILE:LINE:COLUMN` and the key. Secrets \
         never go in this file. `cordon init --tier personal|team|enterprise` writes a \
         commented starting point.\n\n",
    );
    let mut rows = Vec::new();
    walk(&schema, &defs, "", &mut rows);
    for row in rows {
        out.push_str(&format!("## `{}`\n\n", row.path));
        out.push_str(&format!("- Type: {}\n", row.ty));
        out.push_str(&format!("- Default: {}\n", row.default));
        out.push('\n');
        if !row.description.is_empty() {
            out.push_str(&row.description);
            out.push_str("\n\n");
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

struct Row {
    path: String,
    ty: String,
    default: String,
    description: String,
}

/// Follow `$ref` (possibly wrapped in `allOf`) to the definition.
fn resolve<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    let reference = schema.get("$ref").or_else(|| {
        schema
            .get("allOf")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|s| s.get("$ref"))
    });
    match reference
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        Some(name) => defs.get(name).map_or(schema, |d| resolve(d, defs)),
        None => schema,
    }
}

fn description(field: &Value, resolved: &Value) -> String {
    let d = field
        .get("description")
        .or_else(|| resolved.get("description"));
    d.and_then(Value::as_str).unwrap_or("").to_string()
}

/// Enum variants as `a` | `b`, with their descriptions when documented.
fn variants(schema: &Value) -> Option<(String, Vec<String>)> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = values.iter().map(|v| format!("`{}`", plain(v))).collect();
        return Some((names.join(" \\| "), Vec::new()));
    }
    let options = schema.get("oneOf").and_then(Value::as_array)?;
    let mut names = Vec::new();
    let mut docs = Vec::new();
    for option in options {
        let value = option
            .get("const")
            .or_else(|| option.get("enum").and_then(|e| e.get(0)))?;
        names.push(format!("`{}`", plain(value)));
        if let Some(d) = option.get("description").and_then(Value::as_str) {
            docs.push(format!("- `{}`: {}", plain(value), d));
        }
    }
    Some((names.join(" \\| "), docs))
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn type_name(schema: &Value, defs: &Map<String, Value>) -> String {
    let resolved = resolve(schema, defs);
    if let Some((names, _)) = variants(resolved) {
        return format!("one of {names}");
    }
    let ty = match resolved.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => {
            let ts: Vec<String> = ts.iter().map(plain).filter(|t| t != "null").collect();
            format!("{} (optional)", ts.join(" or "))
        }
        _ => {
            // `Option<T>` of a referenced type: anyOf [T, null].
            if let Some(any) = resolved.get("anyOf").and_then(Value::as_array) {
                let inner: Vec<String> = any
                    .iter()
                    .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
                    .map(|s| type_name(s, defs))
                    .collect();
                return format!("{} (optional)", inner.join(" or "));
            }
            "value".to_string()
        }
    };
    if ty == "array" {
        let items = resolved.get("items").map(|i| type_name(i, defs));
        return format!("array of {}", items.unwrap_or_else(|| "values".into()));
    }
    if let Some(format) = resolved.get("format").and_then(Value::as_str) {
        return format!("{ty} ({format})");
    }
    if resolved.get("pattern").is_some() && resolved.get("description").is_some() {
        let d = resolved
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("");
        return format!("{ty}: {d}");
    }
    ty
}

fn walk(schema: &Value, defs: &Map<String, Value>, prefix: &str, rows: &mut Vec<Row>) {
    let resolved = resolve(schema, defs);
    let Some(props) = resolved.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = resolved
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // Alphabetical whatever map serde_json was built with: another crate in the
    // workspace turning on its `preserve_order` feature must not reorder the reference.
    let mut sorted: Vec<(&String, &Value)> = props.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (name, field) in sorted {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let optional = optional_table(field, defs);
        let target = optional.unwrap_or_else(|| resolve(field, defs));
        let default = match field.get("default") {
            _ if optional.is_some() => "none (absent: off)".to_string(),
            Some(v) if target.get("properties").is_none() => format!("`{}`", compact(v)),
            Some(_) => "see the keys below".to_string(),
            None if required.contains(&name.as_str()) => "none, required".to_string(),
            None => "none".to_string(),
        };
        let mut description = description(field, target);
        if let Some((_, docs)) = variants(target)
            && !docs.is_empty()
        {
            description.push_str("\n\n");
            description.push_str(&docs.join("\n"));
        }
        let is_table = target.get("properties").is_some();
        let map_of = target.get("additionalProperties").filter(|a| a.is_object());
        let ty = if optional.is_some() {
            "table (optional)".to_string()
        } else if is_table {
            "table".to_string()
        } else if let Some(values) = map_of {
            let inner = resolve(values, defs);
            if inner.get("properties").is_some() {
                "table of tables, one per name".to_string()
            } else {
                format!("table of {}", type_name(values, defs))
            }
        } else {
            type_name(field, defs)
        };
        rows.push(Row {
            path: path.clone(),
            ty,
            default,
            description,
        });
        if is_table {
            walk(target, defs, &path, rows);
        } else if let Some(values) = map_of {
            walk(values, defs, &format!("{path}.<name>"), rows);
        }
    }
}

/// The table of an `Option<T>` field whose `T` is a table (`anyOf [T, null]`), so its
/// keys are documented too.
fn optional_table<'a>(field: &'a Value, defs: &'a Map<String, Value>) -> Option<&'a Value> {
    let any = resolve(field, defs).get("anyOf")?.as_array()?;
    let mut tables = any
        .iter()
        .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
        .map(|s| resolve(s, defs));
    let table = tables.next()?;
    (tables.next().is_none() && table.get("properties").is_some()).then_some(table)
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}
