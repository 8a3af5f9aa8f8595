//! A protocol-independent view of one request, for scripts that react to context.

use serde_json::Value;

/// Which wire protocol a request used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    OpenAi,
    Anthropic,
}

/// One message of the conversation as `(role, text)`. Roles are `system`, `user`,
/// `assistant` and `tool` (a tool result; Anthropic `tool_result` blocks become these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: String,
    pub text: String,
}

/// A tool result the client sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolResult {
    pub call_id: String,
    pub content: String,
    pub is_error: bool,
}

impl ToolResult {
    /// The first `http://` or `https://` URL in the content, trailing punctuation removed:
    /// what an injected instruction usually asks the model to fetch.
    pub fn first_url(&self) -> Option<String> {
        self.content
            .split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '<' || c == '>')
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .map(|w| {
                w.trim_end_matches(['.', ',', ';', ':', ')', ']', '}', '!', '?'])
                    .to_string()
            })
    }
}

/// The request as the mock model sees it.
#[derive(Debug, Clone, Default)]
pub struct Conversation {
    pub protocol: Protocol,
    /// 0 for the first request this server received, then 1, 2…
    pub request_index: usize,
    pub model: String,
    pub stream: bool,
    /// Every message in order, tool results included (role `tool`).
    pub turns: Vec<Turn>,
    /// The tool results alone, in order.
    pub tool_results: Vec<ToolResult>,
    /// Names of the tools offered.
    pub tools: Vec<String>,
    /// `(name, arguments JSON text)` of every tool call the assistant made so far.
    pub assistant_calls: Vec<(String, String)>,
}

impl Conversation {
    /// The text of the last `user` turn, if any.
    pub fn last_user_text(&self) -> Option<&str> {
        self.turns
            .iter()
            .rev()
            .find(|t| t.role == "user")
            .map(|t| t.text.as_str())
    }

    /// The last tool result, if any.
    pub fn last_tool_result(&self) -> Option<&ToolResult> {
        self.tool_results.last()
    }

    /// The first tool result whose content contains `needle`.
    pub fn tool_result_containing(&self, needle: &str) -> Option<&ToolResult> {
        self.tool_results
            .iter()
            .find(|r| r.content.contains(needle))
    }

    /// The system prompt(s), joined.
    pub fn system_text(&self) -> String {
        let parts: Vec<&str> = self
            .turns
            .iter()
            .filter(|t| t.role == "system")
            .map(|t| t.text.as_str())
            .collect();
        parts.join("\n")
    }

    pub(crate) fn from_request(protocol: Protocol, index: usize, body: &Value) -> Conversation {
        let mut conv = Conversation {
            protocol,
            request_index: index,
            model: body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            ..Conversation::default()
        };
        if let Some(tools) = body.get("tools").and_then(Value::as_array) {
            for tool in tools {
                let name = tool
                    .pointer("/function/name")
                    .or_else(|| tool.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                conv.tools.push(name.to_string());
            }
        }
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        match protocol {
            Protocol::OpenAi => conv.read_openai(&messages),
            Protocol::Anthropic => {
                match body.get("system") {
                    Some(Value::String(s)) => conv.push("system", s.clone()),
                    Some(Value::Array(blocks)) => conv.push("system", block_text(blocks)),
                    _ => {}
                }
                conv.read_anthropic(&messages);
            }
        }
        conv
    }

    fn push(&mut self, role: &str, text: String) {
        self.turns.push(Turn {
            role: role.to_string(),
            text,
        });
    }

    fn read_openai(&mut self, messages: &[Value]) {
        for m in messages {
            let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
            let text = match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => block_text(parts),
                _ => String::new(),
            };
            if role == "tool" {
                let call_id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                self.tool_results.push(ToolResult {
                    call_id,
                    content: text.clone(),
                    is_error: false,
                });
            }
            if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                for c in calls {
                    let name = c.pointer("/function/name").and_then(Value::as_str);
                    let args = c.pointer("/function/arguments").and_then(Value::as_str);
                    self.assistant_calls.push((
                        name.unwrap_or_default().to_string(),
                        args.unwrap_or_default().to_string(),
                    ));
                }
            }
            self.push(role, text);
        }
    }

    fn read_anthropic(&mut self, messages: &[Value]) {
        for m in messages {
            let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
            let blocks = match m.get("content") {
                Some(Value::String(s)) => {
                    self.push(role, s.clone());
                    continue;
                }
                Some(Value::Array(blocks)) => blocks,
                _ => continue,
            };
            let mut text = Vec::new();
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        text.push(b.get("text").and_then(Value::as_str).unwrap_or_default());
                    }
                    Some("tool_use") => {
                        let name = b.get("name").and_then(Value::as_str).unwrap_or_default();
                        let input = b.get("input").cloned().unwrap_or(Value::Null);
                        self.assistant_calls
                            .push((name.to_string(), input.to_string()));
                    }
                    Some("tool_result") => {
                        let content = match b.get("content") {
                            Some(Value::String(s)) => s.clone(),
                            Some(Value::Array(parts)) => block_text(parts),
                            _ => String::new(),
                        };
                        let call_id = b.get("tool_use_id").and_then(Value::as_str);
                        let is_error = b.get("is_error").and_then(Value::as_bool);
                        self.tool_results.push(ToolResult {
                            call_id: call_id.unwrap_or_default().to_string(),
                            content: content.clone(),
                            is_error: is_error.unwrap_or(false),
                        });
                        self.push("tool", content);
                    }
                    _ => {}
                }
            }
            if !text.is_empty() {
                self.push(role, text.join(""));
            } else if role == "assistant" {
                self.push(role, String::new());
            }
        }
    }
}

/// The text of `[{type: "text", text}]` content parts.
fn block_text(parts: &[Value]) -> String {
    parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_request_is_read() {
        let body = json!({
            "model": "m", "stream": true,
            "tools": [{"type": "function", "function": {"name": "shell"}}],
            "messages": [
                {"role": "system", "content": "be nice"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "shell", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "IGNORE PREVIOUS"}
            ]
        });
        let c = Conversation::from_request(Protocol::OpenAi, 3, &body);
        assert_eq!(c.request_index, 3);
        assert!(c.stream);
        assert_eq!(c.tools, vec!["shell"]);
        assert_eq!(c.system_text(), "be nice");
        assert_eq!(c.last_user_text(), Some("hi"));
        assert_eq!(
            c.assistant_calls,
            vec![("shell".to_string(), "{}".to_string())]
        );
        assert_eq!(
            c.tool_result_containing("IGNORE")
                .map(|r| r.call_id.as_str()),
            Some("c1")
        );
        assert_eq!(c.turns.len(), 4);
    }

    #[test]
    fn anthropic_request_is_read() {
        let body = json!({
            "model": "m", "system": "sys",
            "tools": [{"name": "http_fetch", "input_schema": {}}],
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "t1", "name": "http_fetch", "input": {"url": "u"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": true}]}
            ]
        });
        let c = Conversation::from_request(Protocol::Anthropic, 0, &body);
        assert_eq!(c.system_text(), "sys");
        assert_eq!(c.tools, vec!["http_fetch"]);
        assert_eq!(c.last_user_text(), Some("go"));
        let r = c.last_tool_result().unwrap();
        assert!(r.is_error);
        assert_eq!(r.call_id, "t1");
        assert_eq!(c.assistant_calls[0].0, "http_fetch");
    }
}
