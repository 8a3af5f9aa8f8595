//! The HTTP server behind [`MockLlm`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use futures::StreamExt;
use serde_json::Value;

use crate::conversation::{Conversation, Protocol};
use crate::render::{self, Answer, Call, Usage};
use crate::script::{Reply, Script};

/// A scripted LLM server on `127.0.0.1`. Dropping it shuts the server down.
pub struct MockLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    script: Script,
    requests: Mutex<Vec<Received>>,
}

struct Received {
    body: Value,
    headers: BTreeMap<String, String>,
}

impl MockLlm {
    /// Start on a random loopback port. Panics only if the machine cannot bind loopback.
    pub async fn start(script: Script) -> MockLlm {
        match MockLlm::start_on_port(script, 0).await {
            Ok(m) => m,
            Err(e) => panic!("MockLlm cannot bind 127.0.0.1: {e}"),
        }
    }

    /// Start on `127.0.0.1:port` (`0` for a random one).
    pub async fn start_on_port(script: Script, port: u16) -> std::io::Result<MockLlm> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            script,
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .route("/v1/models", get(models))
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(MockLlm {
            addr,
            shared,
            shutdown: Some(tx),
            task,
        })
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request body received, in order (a body that was not JSON is recorded as a
    /// JSON string of its text).
    pub fn requests(&self) -> Vec<Value> {
        self.lock().iter().map(|r| r.body.clone()).collect()
    }

    /// The headers of every request, in order, names lowercase.
    pub fn request_headers(&self) -> Vec<BTreeMap<String, String>> {
        self.lock().iter().map(|r| r.headers.clone()).collect()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Received>> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Graceful shutdown waits for open connections; a test that drops the server
        // wants it gone now, streams included.
        self.task.abort();
    }
}

/// The names [`MockLlm`] lists at `GET /v1/models`, as OpenAI-compatible servers do.
pub const MOCK_MODELS: [&str; 2] = ["scripted", "scripted-large"];

/// `GET /v1/models` in the shape OpenAI, Ollama, vLLM and llama.cpp's server answer it
/// (not recorded as a request: only completions are).
async fn models() -> Response {
    let data: Vec<Value> = MOCK_MODELS
        .iter()
        .map(|id| serde_json::json!({"id": id, "object": "model", "owned_by": "testkit"}))
        .collect();
    let body = serde_json::json!({"object": "list", "data": data});
    let mut resp = Response::new(Body::from(body.to_string()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn openai(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    answer(&s, Protocol::OpenAi, &headers, &body).await
}

async fn anthropic(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    answer(&s, Protocol::Anthropic, &headers, &body).await
}

async fn answer(s: &Shared, protocol: Protocol, headers: &HeaderMap, body: &[u8]) -> Response {
    let body: Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let index = {
        let mut reqs = s.requests.lock().unwrap_or_else(|p| p.into_inner());
        reqs.push(Received {
            body: body.clone(),
            headers,
        });
        reqs.len() - 1
    };
    let conv = Conversation::from_request(protocol, index, &body);
    let mut reply = s.script.next(&conv);
    while let Reply::Delay { millis, then } = reply {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        reply = *then;
    }
    let content = match reply {
        Reply::Status {
            code,
            body,
            retry_after,
        } => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = status;
            if let Some(secs) = retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            return resp;
        }
        Reply::Garbage(text) => {
            let kind = if conv.stream {
                "text/event-stream"
            } else {
                "application/json"
            };
            return with_type(Response::new(Body::from(text)), kind);
        }
        Reply::Recorded(body) => {
            let kind = if conv.stream {
                "text/event-stream"
            } else {
                "application/json"
            };
            let stream = futures::stream::iter(uneven_pieces(body.into_bytes())).then(|c| async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok::<Bytes, Infallible>(c)
            });
            return with_type(Response::new(Body::from_stream(stream)), kind);
        }
        Reply::Delay { .. } => unreachable_delay(),
        Reply::Text(t) => Answer::Text(t),
        Reply::ToolCalls(calls) => Answer::Calls(
            calls
                .into_iter()
                .enumerate()
                .map(|(i, c)| Call {
                    id: call_id(protocol, index, i),
                    name: c.name,
                    arguments: c.arguments.to_string(),
                    input: c.arguments,
                })
                .collect(),
        ),
        Reply::RawArguments { name, arguments } => {
            let input = serde_json::from_str(&arguments)
                .unwrap_or_else(|_| Value::Object(serde_json::Map::new()));
            Answer::Calls(vec![Call {
                id: call_id(protocol, index, 0),
                name,
                arguments,
                input,
            }])
        }
    };
    let usage = usage(&body, &content);
    let model = conv.model.as_str();
    if conv.stream {
        let chunks = match protocol {
            Protocol::OpenAi => render::openai_sse(model, &content, &usage),
            Protocol::Anthropic => render::anthropic_sse(model, &content, &usage),
        };
        // A short pause between writes so that they reach the client as separate reads.
        let stream = futures::stream::iter(chunks).then(|c| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<Bytes, Infallible>(c)
        });
        let resp = Response::new(Body::from_stream(stream));
        with_type(resp, "text/event-stream")
    } else {
        let json = match protocol {
            Protocol::OpenAi => render::openai_json(model, &content, &usage),
            Protocol::Anthropic => render::anthropic_json(model, &content, &usage),
        };
        with_type(
            Response::new(Body::from(json.to_string())),
            "application/json",
        )
    }
}

/// `body` cut into pieces of 1 to 300 bytes, in a fixed pattern, so that lines, UTF-8
/// characters and `\r\n` pairs are split the way network reads split them.
fn uneven_pieces(body: Vec<u8>) -> Vec<Bytes> {
    const SIZES: [usize; 6] = [7, 64, 1, 300, 13, 2];
    let body = Bytes::from(body);
    let mut out = Vec::new();
    let mut at = 0;
    for size in SIZES.iter().cycle() {
        if at >= body.len() {
            break;
        }
        let end = (at + size).min(body.len());
        out.push(body.slice(at..end));
        at = end;
    }
    out
}

/// The `while let` above consumed every `Delay`.
fn unreachable_delay() -> Answer {
    Answer::Text(String::new())
}

fn call_id(protocol: Protocol, request: usize, i: usize) -> String {
    match protocol {
        Protocol::OpenAi => format!("call_{request}_{i}"),
        Protocol::Anthropic => format!("toolu_{request}_{i}"),
    }
}

/// Rough token counts (4 characters a token), enough for tests of usage accounting.
fn usage(body: &Value, content: &Answer) -> Usage {
    let out_chars = match content {
        Answer::Text(t) => t.len(),
        Answer::Calls(calls) => calls.iter().map(|c| c.name.len() + c.arguments.len()).sum(),
    };
    Usage {
        input: (body.to_string().len() / 4) as u64 + 1,
        output: (out_chars / 4) as u64 + 1,
    }
}

fn with_type(mut resp: Response, kind: &'static str) -> Response {
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    resp
}
