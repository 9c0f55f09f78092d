//! A minimal HTTP/1.1 responder for Prometheus scrapes: `GET /metrics` (or `HEAD`) answers
//! the registry's text; any other path is 404, any other method on `/metrics` 405 (with
//! `Allow`), a request that is not HTTP/1.x or has a head over 8 KiB is 400. One request per
//! connection (`Connection: close`), each connection in its own task, at most 64 at once
//! (more wait to be accepted), a client that has not sent its request and read the answer
//! within 10 s dropped. A bad request ends only its own connection.
//!
//! What it does not do: TLS, authentication, compression, keep-alive, chunked bodies or
//! content negotiation (it always answers the 0.0.4 text format, which every Prometheus
//! version reads).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request and read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections answered at once.
const MAX_CONNECTIONS: usize = 64;
/// The content type of Prometheus's text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Answers scrapes on `listener` with `registry`'s metrics until `shutdown` is cancelled,
/// then waits for the connections in progress to end.
pub async fn serve_http(
    listener: TcpListener,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = accept(&listener, &slots) => a,
        };
        match accepted {
            Ok((stream, peer, slot)) => {
                let registry = Arc::clone(&registry);
                tracker.spawn(async move {
                    match tokio::time::timeout(CLIENT_TIMEOUT, answer(stream, &registry)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "metrics request failed"),
                        Err(_) => tracing::debug!(%peer, "metrics client too slow; dropped"),
                    }
                    drop(slot);
                });
            }
            Err(e) => {
                // EMFILE and the like: the listener itself is fine; try again shortly.
                tracing::warn!(error = %e, "metrics listener accept failed");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
    tracker.close();
    tracker.wait().await;
}

/// The next connection, once fewer than [`MAX_CONNECTIONS`] are being answered.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> std::io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = Arc::clone(slots)
        .acquire_owned()
        .await
        .map_err(|_| std::io::Error::other("metrics responder closed"))?;
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, slot))
}

/// Reads one request from `stream` and writes its answer.
async fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let head = read_head(&mut stream).await?;
    let response = match head {
        Some(head) => respond(&head, || crate::metrics::encode(registry)),
        None => Response::status(400, "Bad Request"),
    };
    stream.write_all(&response.into_bytes()).await?;
    stream.shutdown().await
}

/// The request head up to its blank line; `None` when it is too long or the client stopped
/// before it ended.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(buf));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// An HTTP response.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    code: u16,
    reason: &'static str,
    extra: Option<&'static str>,
    body: String,
    send_body: bool,
}

impl Response {
    fn status(code: u16, reason: &'static str) -> Self {
        Response {
            code,
            reason,
            extra: None,
            body: format!("{code} {reason}\n"),
            send_body: true,
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        let content_type = if self.code == 200 {
            CONTENT_TYPE
        } else {
            "text/plain; charset=utf-8"
        };
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.code,
            self.reason,
            self.body.len()
        );
        if let Some(h) = self.extra {
            out.push_str(h);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        if self.send_body {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }
}

/// The answer to a request head; `metrics` encodes the body of a scrape.
fn respond(head: &[u8], metrics: impl FnOnce() -> String) -> Response {
    let Ok(text) = std::str::from_utf8(head) else {
        return Response::status(400, "Bad Request");
    };
    let line = text.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Response::status(400, "Bad Request");
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Response::status(400, "Bad Request");
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return Response::status(404, "Not Found");
    }
    match method {
        "GET" | "HEAD" => Response {
            code: 200,
            reason: "OK",
            extra: None,
            body: metrics(),
            send_body: method == "GET",
        },
        _ => Response {
            extra: Some("Allow: GET, HEAD"),
            ..Response::status(405, "Method Not Allowed")
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(head: &str) -> u16 {
        respond(head.as_bytes(), || "m 1\n".into()).code
    }

    #[test]
    fn requests_get_their_status() {
        assert_eq!(code("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
        assert_eq!(code("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), 200);
        assert_eq!(code("GET / HTTP/1.1\r\n\r\n"), 404);
        assert_eq!(code("GET /metricsx HTTP/1.1\r\n\r\n"), 404);
        assert_eq!(code("POST /metrics HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(code("DELETE /metrics HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(code("GET /metrics\r\n\r\n"), 400);
        assert_eq!(code("GET /metrics SPDY/3\r\n\r\n"), 400);
        assert_eq!(code("GET metrics HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(code("\r\n\r\n"), 400);
        assert_eq!(respond(b"GET \xff HTTP/1.1\r\n\r\n", String::new).code, 400);
    }

    #[test]
    fn head_has_the_length_but_no_body_and_405_says_allow() {
        let r = respond(b"HEAD /metrics HTTP/1.1\r\n\r\n", || "abc\n".into());
        let text = String::from_utf8(r.into_bytes()).unwrap_or_default();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 4\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
        let r = respond(b"PUT /metrics HTTP/1.1\r\n\r\n", String::new);
        let text = String::from_utf8(r.into_bytes()).unwrap_or_default();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nAllow: GET, HEAD\r\n"), "{text}");
    }
}
