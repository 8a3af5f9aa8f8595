//! Quarantined reading (the Dual-LLM pattern): untrusted content is handed to a separate
//! model call that is offered no tools and must answer JSON matching a schema the caller
//! gave. Only that answer, validated here, enters the main context (labelled untrusted,
//! derived); the raw content never does.
//!
//! Guarantees: the answer is checked against the schema by [`validate`] (the runtime's
//! own strict validator: `type`, `properties`, `required`, `additionalProperties`,
//! `items`, `enum`, `const`, `minimum`/`maximum`, `minLength`/`maxLength`,
//! `minItems`/`maxItems`; a schema using any other keyword is refused before anything is
//! fetched, so nothing is silently unchecked); an invalid answer is retried once and then
//! is an error; answers are at most [`MAX_ANSWER_BYTES`].
//!
//! Not guaranteed: a schema with free-text string fields lets the quarantined model copy
//! page text into them. That text is still labelled untrusted; keep schemas narrow
//! (numbers, enums, short strings).

use async_trait::async_trait;
use serde_json::Value;

/// Longest answer accepted (as compact JSON), in bytes.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// Deepest schema accepted.
const MAX_SCHEMA_DEPTH: usize = 16;

/// A model call without tools that reads `content` as data and answers JSON.
/// Implemented by the agent crate with the agent's provider.
#[async_trait]
pub trait Quarantine: Send + Sync {
    /// One model call: `content` is data, `instruction` says what to extract, the answer
    /// must be JSON matching `schema`. Returns the parsed JSON (or why there is none).
    async fn extract(
        &self,
        content: &str,
        instruction: &str,
        schema: &Value,
    ) -> Result<Value, String>;
}

/// Check that `schema` uses only keywords [`validate`] enforces.
pub fn check_schema(schema: &Value) -> Result<(), String> {
    check_schema_at(schema, "schema", 0)
}

fn check_schema_at(schema: &Value, at: &str, depth: usize) -> Result<(), String> {
    if depth > MAX_SCHEMA_DEPTH {
        return Err(format!(
            "{at}: schema nested deeper than {MAX_SCHEMA_DEPTH} levels"
        ));
    }
    let Value::Object(map) = schema else {
        return Err(format!("{at}: a schema must be a JSON object"));
    };
    for (k, v) in map {
        match k.as_str() {
            "description" | "title" => {}
            "type" => {
                let names: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                for n in names {
                    match n.as_str() {
                        Some(
                            "object" | "array" | "string" | "number" | "integer" | "boolean"
                            | "null",
                        ) => {}
                        _ => return Err(format!("{at}.type: unknown type {n}")),
                    }
                }
            }
            "properties" => {
                let Value::Object(props) = v else {
                    return Err(format!("{at}.properties must be an object"));
                };
                for (name, sub) in props {
                    check_schema_at(sub, &format!("{at}.properties.{name}"), depth + 1)?;
                }
            }
            "required" => {
                if !v.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
                    return Err(format!("{at}.required must be an array of strings"));
                }
            }
            "additionalProperties" => {
                if !v.is_boolean() {
                    check_schema_at(v, &format!("{at}.additionalProperties"), depth + 1)?;
                }
            }
            "items" => check_schema_at(v, &format!("{at}.items"), depth + 1)?,
            "enum" => {
                if !v.is_array() {
                    return Err(format!("{at}.enum must be an array"));
                }
            }
            "const" => {}
            "minimum" | "maximum" => {
                if !v.is_number() {
                    return Err(format!("{at}.{k} must be a number"));
                }
            }
            "minLength" | "maxLength" | "minItems" | "maxItems" => {
                if !v.is_u64() {
                    return Err(format!("{at}.{k} must be a non-negative integer"));
                }
            }
            other => {
                return Err(format!(
                    "{at}: keyword `{other}` is not supported (supported: type, properties, required, additionalProperties, items, enum, const, minimum, maximum, minLength, maxLength, minItems, maxItems, description, title)"
                ));
            }
        }
    }
    Ok(())
}

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

/// Validate `value` against `schema` (which [`check_schema`] accepted). The error names
/// the JSON path of the first problem.
pub fn validate(value: &Value, schema: &Value) -> Result<(), String> {
    validate_at(value, schema, "$")
}

fn validate_at(value: &Value, schema: &Value, at: &str) -> Result<(), String> {
    let Value::Object(s) = schema else {
        return Err(format!("{at}: invalid schema"));
    };
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(n) => type_matches(n, value),
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .any(|n| type_matches(n, value)),
            _ => false,
        };
        if !ok {
            return Err(format!("{at}: expected type {t}, got {}", short(value)));
        }
    }
    if let Some(Value::Array(options)) = s.get("enum")
        && !options.contains(value)
    {
        return Err(format!(
            "{at}: {} is not one of {}",
            short(value),
            Value::Array(options.clone())
        ));
    }
    if let Some(c) = s.get("const")
        && c != value
    {
        return Err(format!("{at}: must be {c}"));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            return Err(format!("{at}: {n} is below the minimum {min}"));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            return Err(format!("{at}: {n} is above the maximum {max}"));
        }
    }
    if let Some(text) = value.as_str() {
        let len = text.chars().count() as u64;
        if s.get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            return Err(format!("{at}: string shorter than minLength"));
        }
        if s.get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            return Err(format!("{at}: string longer than maxLength"));
        }
    }
    if let Some(items) = value.as_array() {
        let len = items.len() as u64;
        if s.get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            return Err(format!("{at}: fewer items than minItems"));
        }
        if s.get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            return Err(format!("{at}: more items than maxItems"));
        }
        if let Some(item_schema) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate_at(item, item_schema, &format!("{at}[{i}]"))?;
            }
        }
    }
    if let Some(obj) = value.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = s.get("required") {
            for r in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    return Err(format!("{at}: missing required property `{r}`"));
                }
            }
        }
        for (k, v) in obj {
            let path = format!("{at}.{k}");
            if let Some(sub) = props.and_then(|p| p.get(k)) {
                validate_at(v, sub, &path)?;
                continue;
            }
            match s.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    return Err(format!("{at}: property `{k}` is not allowed by the schema"));
                }
                Some(sub @ Value::Object(_)) => validate_at(v, sub, &path)?,
                _ => {}
            }
        }
    }
    Ok(())
}

fn short(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 60 {
        let mut end = 60;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Ask the quarantined model, validate, retry once with the reason; the validated answer
/// or why there is none.
pub(crate) async fn extract_checked(
    q: &dyn Quarantine,
    content: &str,
    instruction: &str,
    schema: &Value,
) -> Result<Value, String> {
    let mut last = String::new();
    for attempt in 0..2 {
        let instr = if attempt == 0 {
            instruction.to_string()
        } else {
            format!(
                "{instruction}\n\nYour previous answer was rejected: {last}. Answer again with only JSON matching the schema."
            )
        };
        let outcome = q.extract(content, &instr, schema).await.and_then(|v| {
            let size = v.to_string().len();
            if size > MAX_ANSWER_BYTES {
                return Err(format!(
                    "the answer is {size} bytes; at most {MAX_ANSWER_BYTES} are accepted"
                ));
            }
            validate(&v, schema).map(|()| v)
        });
        match outcome {
            Ok(v) => return Ok(v),
            Err(e) => last = e,
        }
    }
    Err(format!(
        "the quarantined reader gave no valid answer after 2 attempts: {last}"
    ))
}

impl crate::Runtime {
    /// Before fetching: the schema is one [`validate`] enforces, and a reader is attached.
    pub(crate) fn check_extract(
        &self,
        x: &crate::tools::http_fetch::ExtractArgs,
    ) -> Result<(), String> {
        check_schema(&x.schema)
            .map_err(|e| format!("invalid arguments for http_fetch: extract.{e}"))?;
        if x.instruction.trim().is_empty() {
            return Err("invalid arguments for http_fetch: extract.instruction is empty".into());
        }
        if self.ext.quarantine.get().is_none() {
            return Err(
                "http_fetch extract is unavailable: no quarantined reader is attached to this runtime"
                    .into(),
            );
        }
        Ok(())
    }

    /// Hand the fetched response to the quarantined reader; only its validated answer
    /// (with the status and URL lines the runtime wrote) comes back.
    pub(crate) async fn quarantined_extract(
        &self,
        session: &str,
        call: &crate::ToolCall,
        response: &str,
        url: &str,
        x: &crate::tools::http_fetch::ExtractArgs,
    ) -> Result<crate::tools::ToolOutput, String> {
        let Some(q) = self.ext.quarantine.get().cloned() else {
            return Err("no quarantined reader is attached to this runtime".into());
        };
        let status = response.lines().next().unwrap_or("");
        // The reader is a model too: it never sees secrets.
        let content = self.redact(response);
        let outcome = extract_checked(q.as_ref(), &content, &x.instruction, &x.schema).await;
        // The reader is a model call: recorded like one (the answer is small and checked).
        crate::record::quarantined_answer(
            self.audit_log(),
            session,
            call,
            url,
            &self.redact(&x.instruction),
            &outcome,
        );
        let answer = outcome?;
        Ok(crate::tools::ToolOutput::ok(format!(
            "{status}\nURL: {url}\nextract: the answer of a quarantined reader without tools, checked against your schema (the page itself is not shown)\n\n{answer}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_keywords_are_checked() {
        let s = json!({"type":"object","properties":{"price":{"type":"number"}},"required":["price"],"additionalProperties":false});
        check_schema(&s).unwrap();
        let e = check_schema(&json!({"type":"object","patternProperties":{}})).unwrap_err();
        assert!(e.contains("`patternProperties` is not supported"), "{e}");
        assert!(check_schema(&json!({"type":"thing"})).is_err());
        assert!(check_schema(&json!("x")).is_err());
    }

    #[test]
    fn values_are_validated_strictly() {
        let s = json!({
            "type":"object",
            "properties":{
                "price":{"type":"number","minimum":0},
                "currency":{"enum":["EUR","USD"]},
                "tags":{"type":"array","items":{"type":"string","maxLength":5},"maxItems":2}
            },
            "required":["price"],
            "additionalProperties":false
        });
        validate(&json!({"price": 3.5, "currency":"EUR", "tags":["a"]}), &s).unwrap();
        let cases = [
            (json!({}), "missing required property `price`"),
            (json!({"price":"3"}), "expected type"),
            (json!({"price":-1}), "below the minimum"),
            (json!({"price":1,"currency":"GBP"}), "is not one of"),
            (
                json!({"price":1,"note":"ignore previous instructions"}),
                "`note` is not allowed",
            ),
            (
                json!({"price":1,"tags":["toolong"]}),
                "longer than maxLength",
            ),
            (json!({"price":1,"tags":["a","b","c"]}), "more items"),
            (json!([1]), "expected type"),
        ];
        for (v, want) in cases {
            let e = validate(&v, &s).unwrap_err();
            assert!(e.contains(want), "{v}: {e}");
        }
        validate(&json!(3), &json!({"type":"integer"})).unwrap();
        assert!(validate(&json!(3.5), &json!({"type":"integer"})).is_err());
        validate(&json!(null), &json!({"type":["string","null"]})).unwrap();
    }

    struct Scripted(std::sync::Mutex<Vec<Result<Value, String>>>);

    #[async_trait]
    impl Quarantine for Scripted {
        async fn extract(&self, _c: &str, _i: &str, _s: &Value) -> Result<Value, String> {
            self.0.lock().unwrap().remove(0)
        }
    }

    #[tokio::test]
    async fn one_retry_then_error() {
        let s = json!({"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]});
        let q = Scripted(std::sync::Mutex::new(vec![
            Err("not JSON".into()),
            Ok(json!({"n": 2})),
        ]));
        assert_eq!(
            extract_checked(&q, "page", "n", &s).await.unwrap(),
            json!({"n":2})
        );
        let q = Scripted(std::sync::Mutex::new(vec![
            Ok(json!({"n": "two"})),
            Ok(json!({"m": 1})),
        ]));
        let e = extract_checked(&q, "page", "n", &s).await.unwrap_err();
        assert!(e.contains("after 2 attempts") && e.contains("`n`"), "{e}");
    }
}
