//! `rookery serve`: a model and the SQL engine behind HTTP, on hyper.
//!
//! - `POST /classify`, an image file as the body: `{"label": "...",
//!   "scores": [{"label": "...", "score": 0.93}, ...]}` (highest first);
//! - `POST /sql`, SQL text as the body: the last statement's rows as CSV
//!   (`Accept: text/csv`, the default), JSON (`application/json`) or an
//!   Arrow IPC stream (`application/vnd.apache.arrow.stream`);
//! - `GET /health`: `ok`.
//!
//! Errors are `{"error": "..."}` with a 4xx/5xx status and the server goes
//! on. HTTP/1.1 with keep-alive. Bounded everywhere: open connections
//! (more wait in the listen queue), requests working at once, bytes of
//! request bodies held at once, body size (413), time to send the headers
//! (idle keep-alive connections close after it too) and time per request
//! (408). Ctrl-C (or the `shutdown` future) stops accepting, lets the
//! requests in flight finish, then returns.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::context::SessionContext;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rookery_udfs::cnn::runtime::{best, ranked, Classifier};
use rookery_udfs::codec::{decode, DEFAULT_MAX_PIXELS};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::output::{write_results, Layout, OutputFormat};
use rookery::exec::run_sql;

/// The server's bounds.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Connections open at once; more wait in the listen queue.
    pub max_connections: usize,
    /// Requests doing work (classifying, running SQL) at once; more wait.
    pub max_requests: usize,
    /// Largest request body (413 above it).
    pub max_body: usize,
    /// Bytes of request bodies held in memory at once, over all requests.
    pub max_body_memory: usize,
    /// Time a client has to send a request's headers, and the longest a
    /// keep-alive connection may sit idle.
    pub header_timeout: Duration,
    /// Time a request may take, from its headers to its answer (408).
    pub request_timeout: Duration,
    /// Time in-flight requests get to finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Self {
            max_connections: 512,
            max_requests: cores,
            max_body: 64 << 20,
            max_body_memory: 512 << 20,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// What the server answers with: a session for `/sql` and, when a model
/// was given, a classifier for `/classify`.
pub struct App {
    ctx: SessionContext,
    classifier: Option<Arc<Classifier>>,
    limits: ServeLimits,
    working: Semaphore,
    /// Body bytes in KiB, so a semaphore's u32 permits cover gigabytes.
    body_kib: Semaphore,
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn error(status: StatusCode, message: impl Into<String>) -> Answer {
    answer(
        status,
        "application/json",
        json!({ "error": message.into() }).to_string(),
    )
}

fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX)
}

impl App {
    pub fn new(ctx: SessionContext, classifier: Option<Arc<Classifier>>, limits: ServeLimits) -> Self {
        let limits = ServeLimits {
            max_requests: limits.max_requests.max(1),
            max_connections: limits.max_connections.max(1),
            max_body_memory: limits.max_body_memory.max(limits.max_body),
            ..limits
        };
        Self {
            ctx,
            classifier,
            working: Semaphore::new(limits.max_requests),
            body_kib: Semaphore::new(kib(limits.max_body_memory) as usize),
            limits,
        }
    }

    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Answer {
        let timeout = self.limits.request_timeout;
        match tokio::time::timeout(timeout, Arc::clone(&self).route(request)).await {
            Ok(answer) => answer,
            Err(_) => {
                let mut answer = error(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("the request took over {} s", timeout.as_secs()),
                );
                answer.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
                answer
            }
        }
    }

    async fn route(self: Arc<Self>, request: Request<Incoming>) -> Answer {
        let path = request.uri().path().to_string();
        match (request.method(), path.as_str()) {
            (&Method::GET, "/health") => answer(StatusCode::OK, "text/plain", "ok"),
            (&Method::POST, "/classify") => match self.read_body(request).await {
                Ok((body, _held)) => self.classify(body).await,
                Err(answer) => answer,
            },
            (&Method::POST, "/sql") => {
                let format = result_format(request.headers().get(ACCEPT));
                match self.read_body(request).await {
                    Ok((body, _held)) => self.sql(body, format).await,
                    Err(answer) => answer,
                }
            }
            (method, "/health" | "/classify" | "/sql") => error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed on {path}"),
            ),
            _ => error(
                StatusCode::NOT_FOUND,
                format!("no {path}; POST an image to /classify or SQL to /sql"),
            ),
        }
    }

    /// The body, and its share of the body memory (held until dropped).
    async fn read_body(
        &self,
        request: Request<Incoming>,
    ) -> std::result::Result<(Bytes, tokio::sync::SemaphorePermit<'_>), Answer> {
        let too_large = || {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is over {} bytes", self.limits.max_body),
            )
        };
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.limits.max_body) {
            return Err(too_large());
        }
        // A body of unknown length may take the whole limit.
        let held = self
            .body_kib
            .acquire_many(kib(declared.unwrap_or(self.limits.max_body)))
            .await
            .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping"))?;
        match Limited::new(request.into_body(), self.limits.max_body).collect().await {
            Ok(body) => Ok((body.to_bytes(), held)),
            Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_large()),
            Err(e) => Err(error(StatusCode::BAD_REQUEST, format!("could not read the body: {e}"))),
        }
    }

    async fn classify(&self, body: Bytes) -> Answer {
        let Some(classifier) = self.classifier.clone() else {
            return error(
                StatusCode::NOT_FOUND,
                "no model: start the server with --model m.onnx to classify",
            );
        };
        let Ok(_working) = self.working.acquire().await else {
            return error(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping");
        };
        // Decoding and ONNX Runtime are CPU work: off the I/O threads.
        let work = tokio::task::spawn_blocking(move || classify_image(&body, &classifier));
        match work.await {
            Ok(answer) => answer,
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("classification failed: {e}")),
        }
    }

    async fn sql(&self, body: Bytes, format: ResultFormat) -> Answer {
        let Ok(text) = std::str::from_utf8(&body) else {
            return error(StatusCode::BAD_REQUEST, "the SQL is not UTF-8 text");
        };
        let Ok(_working) = self.working.acquire().await else {
            return error(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping");
        };
        let results = match run_sql(&self.ctx, text).await {
            Ok(results) => results,
            Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let Some(last) = results.last() else {
            return error(StatusCode::BAD_REQUEST, "no statement in the body");
        };
        match format.write(&last.schema, &last.batches) {
            Ok(bytes) => answer(StatusCode::OK, format.content_type(), bytes),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

fn classify_image(body: &[u8], classifier: &Classifier) -> Answer {
    let image = match decode(body, DEFAULT_MAX_PIXELS) {
        Ok((_, image)) => image,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not a readable image: {e}"),
            )
        }
    };
    let scores = match classifier.scores(&[image.view()]) {
        Ok(mut s) if s.len() == 1 => s.remove(0),
        Ok(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "the model returned no scores"),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, rookery_udfs::cnn::message(&e)),
    };
    let entries: Vec<_> = ranked(&scores)
        .iter()
        .map(|(i, s)| json!({ "label": classifier.label(*i), "score": s }))
        .collect();
    answer(
        StatusCode::OK,
        "application/json",
        json!({ "label": classifier.label(best(&scores)), "scores": entries }).to_string(),
    )
}

/// How `/sql` writes its rows, from the request's `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultFormat {
    Csv,
    Json,
    ArrowStream,
}

const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

fn result_format(accept: Option<&HeaderValue>) -> ResultFormat {
    let accept = accept.and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains(ARROW_STREAM) {
        ResultFormat::ArrowStream
    } else if accept.contains("application/json") {
        ResultFormat::Json
    } else {
        ResultFormat::Csv
    }
}

impl ResultFormat {
    fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv",
            Self::Json => "application/json",
            Self::ArrowStream => ARROW_STREAM,
        }
    }

    /// CSV and JSON as the CLI prints them (images as compact cells);
    /// Arrow as it is, images included.
    fn write(self, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let layout = |format| Layout {
            format,
            max_rows: None,
            footer: false,
        };
        match self {
            Self::Csv => write_results(&mut out, schema, batches, layout(OutputFormat::Csv))?,
            Self::Json => write_results(&mut out, schema, batches, layout(OutputFormat::Json))?,
            Self::ArrowStream => {
                let mut writer = datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut out, schema)?;
                for batch in batches {
                    writer.write(batch)?;
                }
                writer.finish()?;
            }
        }
        Ok(out)
    }
}

/// Serves `app` on `listener` until `shutdown` completes; then lets the
/// requests in flight finish (for up to `shutdown_grace`).
pub async fn serve(app: Arc<App>, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<()> {
    let connections = Arc::new(Semaphore::new(app.limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(app.limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => permit.map_err(|e| DataFusionError::External(Box::new(e)))?,
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: wait, go on.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        let service = service_fn(move |request| {
            let app = Arc::clone(&app);
            async move { Ok::<_, Infallible>(app.handle(request).await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that goes away mid-answer is not the server's problem.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(app.limits.shutdown_grace, graceful.shutdown()).await;
    Ok(())
}

/// Binds `addr`, calls `ready` with the bound address, and serves until
/// Ctrl-C.
pub async fn serve_until_ctrl_c(app: Arc<App>, addr: &str, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let listener = TcpListener::bind(addr).await?;
    ready(listener.local_addr()?);
    serve(app, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_the_format() {
        let header = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(result_format(None), ResultFormat::Csv);
        assert_eq!(result_format(Some(&header("application/json"))), ResultFormat::Json);
        assert_eq!(
            result_format(Some(&header("application/vnd.apache.arrow.stream, */*"))),
            ResultFormat::ArrowStream
        );
        assert_eq!(result_format(Some(&header("text/csv;q=0.9"))), ResultFormat::Csv);
    }

    #[test]
    fn body_memory_in_kib() {
        assert_eq!(kib(0), 1);
        assert_eq!(kib(1024), 1);
        assert_eq!(kib(1025), 2);
        assert_eq!(kib(usize::MAX), u32::MAX);
    }
}
