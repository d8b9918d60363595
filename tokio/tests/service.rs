//! The example service (`examples/service.rs`), started on a free port of 127.0.0.1 over a
//! SQLite file and driven over HTTP: appends, conflicts, bad requests, pages, the live tail.

#[allow(dead_code)]
#[path = "../examples/service.rs"]
mod service;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// A served store, and the store itself to check what the service did.
struct Running {
    addr: SocketAddr,
    store: eventlite::tokio::AsyncEventStore<eventlite::DefaultBackend>,
    shutdown: tokio::sync::watch::Sender<bool>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start() -> Result<Running> {
    let dir = tempfile::tempdir()?;
    let store = eventlite::tokio::open(dir.path().join("service.sqlite")).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (shutdown, down) = tokio::sync::watch::channel(false);
    let app = service::router(store.clone(), down.clone());
    let mut stop = down;
    let served = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|down| *down).await;
            })
            .await
    });
    Ok(Running {
        addr,
        store,
        shutdown,
        served,
        _dir: dir,
    })
}

async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Result<Response<Incoming>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned())))?;
    Ok(sender.send_request(req).await?)
}

/// A request's status and JSON body.
async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: &str,
) -> Result<(StatusCode, Value)> {
    let res = request(addr, method, path, body, &[]).await?;
    let status = res.status();
    let bytes = res.into_body().collect().await?.to_bytes();
    let json = serde_json::from_slice(&bytes)
        .with_context(|| format!("{path}: not JSON: {}", String::from_utf8_lossy(&bytes)))?;
    Ok((status, json))
}

/// Reads SSE messages from a response until `n` event messages came: (id, cmd, data).
async fn sse_messages(res: &mut Response<Incoming>, n: usize) -> Result<Vec<(u64, String, Value)>> {
    let mut text = String::new();
    let mut out = Vec::new();
    let read = async {
        while out.len() < n {
            let Some(frame) = res.body_mut().frame().await else {
                bail!("the tail ended after {} messages", out.len());
            };
            if let Ok(data) = frame?.into_data() {
                text.push_str(std::str::from_utf8(&data)?);
            }
            while let Some(end) = text.find("\n\n") {
                let message: String = text.drain(..end + 2).collect();
                let (mut id, mut data) = (None, None);
                for line in message.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse::<u64>()?);
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(serde_json::from_str::<Value>(v.trim())?);
                    }
                }
                // Keep-alive comments carry no id.
                if let (Some(id), Some(data)) = (id, data) {
                    let cmd = data["cmd"].as_str().unwrap_or_default().to_owned();
                    out.push((id, cmd, data));
                }
            }
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .context("the tail did not deliver in time")??;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_appends_pages_and_rejects_bad_requests() -> Result<()> {
    let s = start().await?;
    let (status, placed) = call(
        s.addr,
        Method::POST,
        "/events",
        r#"{"cmd": "order_placed", "user": "ada", "data": {"total": 12}}"#,
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    assert_eq!(
        (placed["id"].clone(), placed["data"]["total"].clone()),
        (json!(1), json!(12))
    );
    let paid = r#"{"cmd": "paid", "causation_id": 1}"#;
    let (status, paid) = call(s.addr, Method::POST, "/events", paid).await?;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        paid["correlation_id"], placed["correlation_id"],
        "joins its cause's group"
    );

    // Malformed JSON: 400 with a message, nothing stored.
    let (status, error) = call(s.addr, Method::POST, "/events", r#"{"cmd": "x", "#).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["kind"], "bad_json");
    assert!(
        error["error"].as_str().is_some_and(|m| !m.is_empty()),
        "{error}"
    );
    // A field we do not know, an unknown cause, an empty cmd: rejected, nothing stored.
    let (status, error) = call(
        s.addr,
        Method::POST,
        "/events",
        r#"{"cmd": "x", "colour": 1}"#,
    )
    .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let (status, error) = call(
        s.addr,
        Method::POST,
        "/events",
        r#"{"cmd": "x", "causation_id": 99}"#,
    )
    .await?;
    assert_eq!(
        (status, error["kind"].clone()),
        (StatusCode::BAD_REQUEST, json!("unknown_causation"))
    );
    let (status, error) = call(s.addr, Method::POST, "/events", r#"{"cmd": ""}"#).await?;
    assert_eq!(
        (status, error["kind"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_event"))
    );
    assert_eq!(
        s.store.last_id().await?,
        2,
        "no bad request stored anything"
    );

    // Streams: the expectation holds once, then 409 and nothing stored.
    let batch = r#"{"expected": "no_stream", "events": [{"cmd": "added", "data": "tea"}, {"cmd": "added", "data": "jam"}]}"#;
    let (status, added) = call(s.addr, Method::POST, "/streams/cart-1", batch).await?;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["events"][1]["stream_version"], 2);
    let (status, conflict) = call(s.addr, Method::POST, "/streams/cart-1", batch).await?;
    assert_eq!(
        (status, conflict["kind"].clone()),
        (StatusCode::CONFLICT, json!("conflict"))
    );
    let stale = r#"{"expected": 1, "events": [{"cmd": "added"}]}"#;
    assert_eq!(
        call(s.addr, Method::POST, "/streams/cart-1", stale)
            .await?
            .0,
        StatusCode::CONFLICT
    );
    let next = r#"{"expected": 2, "events": [{"cmd": "removed"}]}"#;
    assert_eq!(
        call(s.addr, Method::POST, "/streams/cart-1", next).await?.0,
        StatusCode::CREATED
    );
    let odd = r#"{"expected": "whatever", "events": [{"cmd": "added"}]}"#;
    assert_eq!(
        call(s.addr, Method::POST, "/streams/cart-1", odd).await?.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(s.store.last_id().await?, 5);

    // Pages with cursors.
    let (status, first) = call(s.addr, Method::GET, "/events?limit=2", "").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            first["total"].clone(),
            first["events"].as_array().map(Vec::len)
        ),
        (json!(5), Some(2))
    );
    let cursor = first["next"].as_str().context("a next cursor")?.to_owned();
    let (_, rest) = call(
        s.addr,
        Method::GET,
        &format!("/events?limit=10&after={cursor}"),
        "",
    )
    .await?;
    let ids: Vec<u64> = rest["events"]
        .as_array()
        .context("events")?
        .iter()
        .filter_map(|e| e["id"].as_u64())
        .collect();
    assert_eq!(ids, [3, 4, 5]);
    assert!(rest["next"].is_null());
    let (_, added) = call(s.addr, Method::GET, "/events?cmd=added&stream=cart-1", "").await?;
    assert_eq!(added["total"], 2);
    assert_eq!(
        call(s.addr, Method::GET, "/events?after=nonsense", "")
            .await?
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(s.addr, Method::GET, "/events?limit=0", "").await?.0,
        StatusCode::BAD_REQUEST
    );
    let (status, one) = call(s.addr, Method::GET, "/events/4", "").await?;
    assert_eq!(
        (status, one["data"].clone()),
        (StatusCode::OK, json!("jam"))
    );
    let (status, missing) = call(s.addr, Method::GET, "/events/999", "").await?;
    assert_eq!(
        (status, missing["kind"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    let (status, bad_id) = call(s.addr, Method::GET, "/events/abc", "").await?;
    assert_eq!(
        (status, bad_id["kind"].clone()),
        (StatusCode::BAD_REQUEST, json!("bad_request"))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tail_delivers_the_log_then_each_new_event() -> Result<()> {
    let s = start().await?;
    for cmd in ["a", "b"] {
        call(
            s.addr,
            Method::POST,
            "/events",
            &format!(r#"{{"cmd": "{cmd}"}}"#),
        )
        .await?;
    }
    let mut tail = request(s.addr, Method::GET, "/tail?from=0", "", &[]).await?;
    assert_eq!(tail.status(), StatusCode::OK);
    assert_eq!(tail.headers()["content-type"], "text/event-stream");
    let stored = sse_messages(&mut tail, 2).await?;
    assert_eq!(
        stored
            .iter()
            .map(|m| (m.0, m.1.as_str()))
            .collect::<Vec<_>>(),
        [(1, "a"), (2, "b")]
    );
    // A commit after the tail began arrives on it.
    call(
        s.addr,
        Method::POST,
        "/events",
        r#"{"cmd": "c", "data": [1, 2]}"#,
    )
    .await?;
    let live = sse_messages(&mut tail, 1).await?;
    assert_eq!((live[0].0, live[0].2["data"].clone()), (3, json!([1, 2])));

    // A client that reconnects with Last-Event-ID resumes after it; a filter narrows the tail.
    let mut resumed = request(s.addr, Method::GET, "/tail", "", &[("last-event-id", "2")]).await?;
    assert_eq!(sse_messages(&mut resumed, 1).await?[0].0, 3);
    let mut only_b = request(s.addr, Method::GET, "/tail?cmd=b", "", &[]).await?;
    assert_eq!(sse_messages(&mut only_b, 1).await?[0].1, "b");
    // A cmd with a line break travels inside the JSON data.
    call(s.addr, Method::POST, "/events", r#"{"cmd": "two\nlines"}"#).await?;
    let odd = sse_messages(&mut resumed, 1).await?;
    assert_eq!((odd[0].0, odd[0].1.as_str()), (4, "two\nlines"));
    // A start past the end of the log is the client's error.
    let res = request(s.addr, Method::GET, "/tail?from=50", "", &[]).await?;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = request(s.addr, Method::GET, "/tail", "", &[("last-event-id", "x")]).await?;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // Shutting down ends the open tails, so that the graceful shutdown can finish.
    s.shutdown.send(true)?;
    tokio::time::timeout(Duration::from_secs(20), tail.into_body().collect())
        .await
        .context("a tail outlived the shutdown")??;
    tokio::time::timeout(Duration::from_secs(20), s.served)
        .await
        .context("the service did not shut down")???;
    Ok(())
}
