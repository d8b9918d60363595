//! A small HTTP service over EventLite with axum: append events (with stream expectations),
//! read them in pages with cursors, and follow the log live over Server-Sent Events.
//!
//! ```sh
//! cargo run -p eventlite-tokio --example service -- --db data/service.sqlite --addr 127.0.0.1:3000
//! curl -s -XPOST localhost:3000/events -H 'content-type: application/json' \
//!      -d '{"cmd": "order_placed", "user": "ada", "data": {"total": 12}}'
//! curl -s -XPOST localhost:3000/streams/cart-1 -H 'content-type: application/json' \
//!      -d '{"expected": "no_stream", "events": [{"cmd": "added", "data": "tea"}]}'
//! curl -s 'localhost:3000/events?limit=10&cmd=order_placed'   # a page; `next` is the cursor
//! curl -s localhost:3000/events/1
//! curl -sN 'localhost:3000/tail?from=0'                       # live, until Ctrl-C
//! ```
//!
//! Errors are JSON, `{"error": "...", "kind": "..."}`: malformed JSON or a bad event is 400
//! (JSON of the wrong shape 422, a body that is not `application/json` 415), an unknown id 404,
//! a stream expectation that does not hold 409 (nothing stored), a busy or unreachable engine,
//! or too many live tails, 503. Ctrl-C ends the live tails, then the service.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use eventlite::tokio::AsyncEventStore;
use eventlite::{
    Backend, Cursor, Error, Event, ExpectedVersion, Filter, NewEvent, Order, Page, Start,
    SubscribeOptions,
};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

/// The most live tails at once: each holds a thread that follows the log.
pub const MAX_TAILS: usize = 256;

/// What every handler shares.
pub struct App<B> {
    store: AsyncEventStore<B>,
    /// Turns true when the service shuts down: the live tails end.
    shutdown: watch::Receiver<bool>,
    tails: Arc<Semaphore>,
}

impl<B> Clone for App<B> {
    fn clone(&self) -> Self {
        App {
            store: self.store.clone(),
            shutdown: self.shutdown.clone(),
            tails: Arc::clone(&self.tails),
        }
    }
}

/// The service's routes over `store`; the live tails end when `shutdown` turns true (a
/// graceful shutdown waits for every response to end, and a tail never would).
pub fn router<B: Backend>(store: AsyncEventStore<B>, shutdown: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/events", post(append::<B>).get(page::<B>))
        .route("/events/{id}", get(one::<B>))
        .route("/streams/{stream}", post(append_to_stream::<B>))
        .route("/tail", get(tail::<B>))
        .with_state(App {
            store,
            shutdown,
            tails: Arc::new(Semaphore::new(MAX_TAILS)),
        })
}

/// An error as the client sees it.
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_request",
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let (status, kind) = match &e {
            Error::InvalidEvent { .. } => (StatusCode::BAD_REQUEST, "invalid_event"),
            Error::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "invalid_argument"),
            Error::UnknownCausation(_) => (StatusCode::BAD_REQUEST, "unknown_causation"),
            Error::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Busy { .. } | Error::Unavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError {
            status,
            kind,
            message: e.to_string(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        ApiError {
            status: rejection.status(),
            kind: "bad_json",
            message: rejection.body_text(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.message, "kind": self.kind }));
        (self.status, body).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// An event as clients send it (upstream's field names).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    cmd: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    causation_id: Option<u64>,
}

impl EventIn {
    fn into_new_event(self) -> NewEvent {
        let mut event = NewEvent::new(self.cmd);
        if let Some(user) = self.user {
            event = event.user(user);
        }
        if let Some(ip) = self.ip {
            event = event.ip(ip);
        }
        if let Some(data) = &self.data {
            event = event.data(data);
        }
        if let Some(metadata) = &self.metadata {
            event = event.metadata(metadata);
        }
        if let Some(id) = self.correlation_id {
            event = event.correlation_id(id);
        }
        if let Some(id) = self.causation_id {
            event = event.causation_id(id);
        }
        event
    }
}

/// An event as clients receive it: upstream's field names, data and metadata as JSON.
pub fn event_json(e: &Event) -> Value {
    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    json!({
        "id": e.id,
        "version": e.version,
        "datetime": e.datetime,
        "user": e.user,
        "ip": e.ip,
        "cmd": e.cmd,
        "data": parse(&e.data),
        "metadata": parse(&e.metadata),
        "correlation_id": e.correlation_id,
        "causation_id": e.causation_id,
        "stream": e.stream,
        "stream_version": e.stream_version,
    })
}

async fn append<B: Backend>(
    State(App { store, .. }): State<App<B>>,
    body: Result<Json<EventIn>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(event) = body?;
    let stored = store.store(event.into_new_event()).await?;
    Ok((StatusCode::CREATED, Json(event_json(&stored))))
}

/// What a stream's batch expects of the stream: `"any"`, `"no_stream"`, or a version.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Expected {
    Version(u64),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamBatch {
    expected: Expected,
    events: Vec<EventIn>,
}

async fn append_to_stream<B: Backend>(
    State(App { store, .. }): State<App<B>>,
    stream: Result<Path<String>, PathRejection>,
    body: Result<Json<StreamBatch>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Path(stream) = stream.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Json(batch) = body?;
    let expected = match batch.expected {
        Expected::Version(v) => ExpectedVersion::Exact(v),
        Expected::Word(w) if w == "any" => ExpectedVersion::Any,
        Expected::Word(w) if w == "no_stream" => ExpectedVersion::NoStream,
        Expected::Word(w) => {
            return Err(ApiError::bad_request(format!(
                "expected must be \"any\", \"no_stream\" or a version, not {w:?}"
            )));
        }
    };
    let events = batch
        .events
        .into_iter()
        .map(EventIn::into_new_event)
        .collect();
    let stored = store.append_to_stream(&stream, expected, events).await?;
    let stored: Vec<Value> = stored.iter().map(event_json).collect();
    Ok((StatusCode::CREATED, Json(json!({ "events": stored }))))
}

async fn one<B: Backend>(
    State(App { store, .. }): State<App<B>>,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let Path(id) = id.map_err(|e| ApiError::bad_request(e.body_text()))?;
    match store.get(id).await? {
        Some(event) => Ok(Json(event_json(&event))),
        None => Err(Error::NotFound(format!("event {id}")).into()),
    }
}

/// The filters and paging of `GET /events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    cmd: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    stream: Option<String>,
}

/// The most events a page may ask for.
const MAX_PAGE: u64 = 1_000;

async fn page<B: Backend>(
    State(App { store, .. }): State<App<B>>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be 1..={MAX_PAGE}"
        )));
    }
    let filter = Filter {
        cmd: q.cmd,
        user: q.user,
        correlation_id: q.correlation_id,
        stream: q.stream,
        ..Filter::default()
    };
    let page = match q.after {
        Some(cursor) => Page::after(limit, cursor.parse::<Cursor>()?),
        None => Page::first(limit),
    };
    let page = store.page(filter, Order::IdAsc, page).await?;
    let events: Vec<Value> = page.events.iter().map(event_json).collect();
    Ok(Json(json!({
        "events": events,
        "total": page.total_count,
        "next": page.next_cursor.map(|c| c.to_string()),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TailQuery {
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    cmd: Option<String>,
}

/// Events after `from` (or after the `Last-Event-ID` a reconnecting client sends), then each
/// as it commits. Each SSE message carries the event's id, so a client resumes where it was.
async fn tail<B: Backend>(
    State(App {
        store,
        mut shutdown,
        tails,
    }): State<App<B>>,
    headers: HeaderMap,
    query: Result<Query<TailQuery>, QueryRejection>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Ok(permit) = tails.try_acquire_owned() else {
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "too_many_tails",
            message: format!("{MAX_TAILS} live tails already: try again later"),
        });
    };
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID must be an event id"))?,
        ),
        None => None,
    };
    let from = resume.or(q.from).unwrap_or(0);
    let filter = Filter {
        cmd: q.cmd,
        ..Filter::default()
    };
    let live = store
        .subscribe(
            SubscribeOptions::new()
                .start(Start::After(from))
                .filter(filter),
        )
        .await?;
    let messages = live.flat_map(|batch| {
        let messages: Vec<Result<SseEvent, Infallible>> = match batch {
            Ok(events) => events
                .iter()
                .map(|e| {
                    // No SSE event name: a cmd may hold a line break, which SSE cannot carry
                    // there (the JSON data escapes it).
                    Ok(SseEvent::default()
                        .id(e.id.to_string())
                        .data(event_json(e).to_string()))
                })
                .collect(),
            // The stream ends after an error: tell the client why.
            Err(e) => vec![Ok(SseEvent::default().event("error").data(e.to_string()))],
        };
        futures::stream::iter(messages)
    });
    let ends = async move {
        let _ = shutdown.wait_for(|down| *down).await;
    };
    // The permit goes with the stream: a tail's slot frees when its client leaves.
    let messages = messages.take_until(ends).map(move |m| {
        let _held = &permit;
        m
    });
    Ok(Sse::new(messages).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The command line: `--db PATH` (default `data/service.sqlite`), `--addr HOST:PORT` (default
/// 127.0.0.1:3000).
fn args() -> anyhow::Result<(PathBuf, SocketAddr)> {
    let mut db = PathBuf::from("data/service.sqlite");
    let mut addr: SocketAddr = "127.0.0.1:3000".parse()?;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--db" => db = PathBuf::from(value()?),
            "--addr" => addr = value()?.parse()?,
            other => anyhow::bail!("unknown argument {other:?} (try --db PATH --addr HOST:PORT)"),
        }
    }
    Ok((db, addr))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (db, addr) = args()?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let store = eventlite::tokio::open(&db).await?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!(
        "EventLite service on http://{} (store {})",
        listener.local_addr()?,
        db.display()
    );
    let (shutdown, down) = watch::channel(false);
    axum::serve(listener, router(store, down))
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            let _ = shutdown.send(true);
        })
        .await?;
    Ok(())
}
