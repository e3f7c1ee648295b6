//! `rookery serve`: a model and the SQL engine behind HTTP, on hyper.
//!
//! - `POST /classify`, an image file as the body: `{"label": "...",
//!   "scores": [{"label": "...", "score": 0.93}, ...]}` (highest first);
//! - `POST /sql`, SQL text as the body: the last statement's rows as CSV
//!   (`Accept: text/csv`, the default), JSON (`application/json`) or an
//!   Arrow IPC stream (`application/vnd.apache.arrow.stream`);
//! - `GET /health`: `ok`.
//!
//! Safe by default on a shared machine (see [`Access`]): `/sql` is off
//! unless asked for; `/sql` and `/classify` take a bearer token; the Host
//! header must name an IP address, `localhost` or an allowed name (DNS
//! rebinding), and a browser's cross-origin request is refused; `/sql` is
//! read-only over the server's tables unless writes are allowed, and each
//! request plans in a session state of its own (a `SET` stays in it).
//!
//! Errors are `{"error": "..."}` with a 4xx/5xx status and the server goes
//! on. HTTP/1.1 with keep-alive. Bounded everywhere: open connections
//! (more wait in the listen queue), requests working at once, bytes of
//! request bodies held at once, body size (413), time to send the headers
//! (idle keep-alive connections close after it too) and time per request
//! (408), time to send a body, and a `/sql` result's size. Ctrl-C or SIGTERM
//! (or the `shutdown` future) stops accepting, lets the requests in flight
//! finish, then returns.

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
use hyper::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rookery_image::codec::{decode, read_header};
use rookery_image::ImageMemory;
use rookery_models::runtime::{best, ranked, Classifier};
use rookery_udfs::functions::model_rows::{message, PoolInputs};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::output::{write_results, Layout, OutputFormat};
use datafusion::execution::context::SQLOptions;
use futures::StreamExt;
use rookery::exec::{all_statements, catching_panics, parse_statement};

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
    /// Time a client has to send a request's whole body (408 after).
    pub body_timeout: Duration,
    /// Largest `/sql` result, in bytes of Arrow memory (413 above it).
    pub max_result: usize,
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
            body_timeout: Duration::from_secs(30),
            max_result: 256 << 20,
        }
    }
}

/// Who may use the server, and what `/sql` may do.
#[derive(Clone, Default)]
pub struct Access {
    /// Required as `Authorization: Bearer <token>` on `/sql` and
    /// `/classify`; `None` only where the caller checks clients itself.
    pub token: Option<String>,
    /// Whether `/sql` is on.
    pub sql: bool,
    /// Whether `/sql` may write and reach anything: COPY, DDL, SET, DML,
    /// `images()`, `read_blob` of any location, `cnn_train`. Without it
    /// `/sql` runs read-only statements over the tables the server was
    /// started with, and `read_blob` reads only under `readable`.
    pub sql_writes: bool,
    /// The locations `read_blob` may read without `sql_writes`.
    pub readable: Vec<String>,
    /// Host names accepted in the Host header besides IP addresses and
    /// `localhost`.
    pub allowed_hosts: Vec<String>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never in logs.
        f.debug_struct("Access")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("sql", &self.sql)
            .field("sql_writes", &self.sql_writes)
            .field("readable", &self.readable)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

/// A fresh random token, 32 hexadecimal digits, from the kernel.
pub fn generate_token() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| DataFusionError::Execution(format!("cannot make a token: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares in time independent of where the texts differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The host part of a Host header's value (`[::1]:8080` -> `::1`).
fn host_name(value: &str) -> &str {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match value.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => value,
    }
}

/// Whether a Host header names this server rather than a name an attacker
/// controls (DNS rebinding points such a name at 127.0.0.1).
fn host_allowed(host: Option<&str>, allowed: &[String]) -> bool {
    let Some(name) = host.map(host_name) else {
        return false;
    };
    name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// Functions that write files from a SELECT, left out of a read-only `/sql`.
const WRITING_AGGREGATES: [&str; 3] = ["cnn_train", "linear_train", "cnn_quantize"];

/// The session `/sql` requests start from: without `sql_writes`, one that
/// cannot reach past the server's tables.
fn sql_session(ctx: &SessionContext, access: &Access) -> Result<SessionContext> {
    let sql_ctx = SessionContext::new_with_state(ctx.state());
    if !access.sql_writes {
        sql_ctx.deregister_udtf("images");
        sql_ctx.deregister_udtf("image_tiles");
        for name in WRITING_AGGREGATES {
            sql_ctx.deregister_udaf(name);
        }
        sql_ctx.register_udf(rookery::read_blob::ReadBlob::restricted_udf(
            Arc::clone(&ctx.runtime_env()),
            &access.readable,
        )?);
    }
    Ok(sql_ctx)
}

/// A multi-threaded runtime for queries, shut down without waiting when
/// the server goes (dropping a runtime from async code would panic).
struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl QueryRuntime {
    fn new(threads: usize) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("rookery-serve-query")
            .enable_all()
            .build()?;
        Ok(Self(Some(runtime)))
    }

    /// Runs `work` there; dropping the returned future cancels it.
    async fn run<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> Result<T> {
        struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);
        impl<T> Drop for AbortOnDrop<T> {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let Some(runtime) = &self.0 else {
            return Err(DataFusionError::Execution("the server is stopping".to_string()));
        };
        let mut task = AbortOnDrop(runtime.spawn(work));
        (&mut task.0).await.map_err(|e| DataFusionError::External(Box::new(e)))
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// What the server answers with: a session for `/sql` and, when a model
/// was given, a classifier for `/classify`.
pub struct App {
    ctx: SessionContext,
    /// Where `/sql` queries run: a runtime of their own, so a busy query
    /// never holds up `/health`, new connections or a timeout's cancel.
    queries: QueryRuntime,
    access: Access,
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
    pub fn new(
        ctx: SessionContext,
        classifier: Option<Arc<Classifier>>,
        limits: ServeLimits,
        access: Access,
    ) -> Result<Self> {
        let limits = ServeLimits {
            max_requests: limits.max_requests.max(1),
            max_connections: limits.max_connections.max(1),
            max_body_memory: limits.max_body_memory.max(limits.max_body),
            ..limits
        };
        Ok(Self {
            ctx: sql_session(&ctx, &access)?,
            queries: QueryRuntime::new(limits.max_requests)?,
            access,
            classifier,
            working: Semaphore::new(limits.max_requests),
            body_kib: Semaphore::new(kib(limits.max_body_memory) as usize),
            limits,
        })
    }

    /// Why a request may not go on: a foreign Host or Origin, or a
    /// missing or wrong token (`/health` needs none).
    fn refusal(&self, request: &Request<Incoming>) -> Option<Answer> {
        let header = |name| request.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());
        let host = header(HOST);
        if !host_allowed(host, &self.access.allowed_hosts) {
            return Some(error(
                StatusCode::FORBIDDEN,
                "the Host header names no address of this server (give --allow-host NAME to accept a name)",
            ));
        }
        // A browser names the page that sent a request; only this
        // server's own pages may.
        if let Some(origin) = header(ORIGIN) {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            if Some(origin_host) != host {
                return Some(error(StatusCode::FORBIDDEN, "cross-origin requests are refused"));
            }
        }
        if request.uri().path() == "/health" {
            return None;
        }
        let token = self.access.token.as_deref()?;
        let given = header(AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer "));
        if given.is_some_and(|g| same_secret(g.trim().as_bytes(), token.as_bytes())) {
            return None;
        }
        let mut answer = error(
            StatusCode::UNAUTHORIZED,
            "send the token the server printed at start as 'Authorization: Bearer TOKEN'",
        );
        answer
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Some(answer)
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
        if let Some(refused) = self.refusal(&request) {
            return refused;
        }
        let path = request.uri().path().to_string();
        match (request.method(), path.as_str()) {
            (&Method::GET, "/health") => answer(StatusCode::OK, "text/plain", "ok"),
            (&Method::POST, "/classify") => match self.read_body(request).await {
                Ok((body, _held)) => self.classify(body).await,
                Err(answer) => answer,
            },
            (&Method::POST, "/sql") if !self.access.sql => error(
                StatusCode::NOT_FOUND,
                "/sql is off: start the server with --sql to run SQL over HTTP",
            ),
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
        let body = Limited::new(request.into_body(), self.limits.max_body).collect();
        let Ok(read) = tokio::time::timeout(self.limits.body_timeout, body).await else {
            return Err(error(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body took over {} s to arrive", self.limits.body_timeout.as_secs()),
            ));
        };
        match read {
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
        // Decoding and ONNX Runtime are CPU work: off the I/O threads. The
        // decoded image and the model's input reserve in the session's pool.
        let memory = ImageMemory::new(Arc::clone(&self.ctx.runtime_env().memory_pool));
        // Read in place: cloning the session state per image is not needed.
        let max_pixels = rookery_image::memory::max_pixels(self.ctx.state_ref().read().config_options());
        let work = tokio::task::spawn_blocking(move || classify_image(&body, &classifier, &memory, max_pixels));
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
        // A session state of the request's own: its SET stays in it.
        let ctx = SessionContext::new_with_state(self.ctx.state());
        let (text, writes, max_result) = (text.to_string(), self.access.sql_writes, self.limits.max_result);
        let run = async move {
            let run = run_request_sql(&ctx, &text, writes, max_result);
            catching_panics(async { Ok(run.await) }).await
        };
        let result = match self.queries.run(run).await {
            Ok(result) => result.map_err(SqlFailure::Query),
            Err(e) => Err(SqlFailure::Query(e)),
        };
        let last = match result.and_then(|r| r) {
            Ok(last) => last,
            Err(SqlFailure::TooLarge(message)) => return error(StatusCode::PAYLOAD_TOO_LARGE, message),
            Err(SqlFailure::Query(e)) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let Some((schema, batches)) = last else {
            return error(StatusCode::BAD_REQUEST, "no statement in the body");
        };
        match format.write(&schema, &batches) {
            Ok(bytes) => answer(StatusCode::OK, format.content_type(), bytes),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

/// Why `/sql` gave no rows.
enum SqlFailure {
    Query(DataFusionError),
    TooLarge(String),
}

impl From<DataFusionError> for SqlFailure {
    fn from(e: DataFusionError) -> Self {
        Self::Query(e)
    }
}

/// Runs every statement of `text`, each checked as read-only unless
/// `writes`, and returns the last one's rows. No statement's rows may take
/// more than `max_result` bytes: the stream stops there.
async fn run_request_sql(
    ctx: &SessionContext,
    text: &str,
    writes: bool,
    max_result: usize,
) -> std::result::Result<Option<(SchemaRef, Vec<RecordBatch>)>, SqlFailure> {
    let statements = all_statements(text);
    let read_only = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let mut last = None;
    for (line, text) in statements {
        let statement = parse_statement(&text, line)?;
        let plan = ctx.state().statement_to_plan(statement.statement).await?;
        if !writes {
            read_only.verify_plan(&plan).map_err(|e| {
                SqlFailure::Query(DataFusionError::Plan(format!(
                    "{}; this server's /sql is read-only (start it with --sql-writes to allow more)",
                    e.strip_backtrace().trim_start_matches("Error during planning: ")
                )))
            })?;
        }
        let frame = ctx.execute_logical_plan(plan).await?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let mut stream = frame.execute_stream().await?;
        let (mut batches, mut size) = (Vec::new(), 0usize);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            size += batch.get_array_memory_size();
            if size > max_result {
                return Err(SqlFailure::TooLarge(format!(
                    "the result is over {max_result} bytes; add a LIMIT, or COPY it to a file"
                )));
            }
            if batch.num_rows() > 0 {
                batches.push(batch);
            }
        }
        last = Some((schema, batches));
    }
    Ok(last)
}

fn classify_image(body: &[u8], classifier: &Classifier, memory: &ImageMemory, max_pixels: u64) -> Answer {
    let unreadable = |e: &dyn std::fmt::Display| {
        error(
            StatusCode::BAD_REQUEST,
            format!("the body is not a readable image: {e}"),
        )
    };
    let mut reservation = memory.reserve("/classify", max_pixels);
    // The decoded pixels (up to 4 samples each) are reserved before decoding.
    let header = match read_header(body) {
        Ok(header) => header,
        Err(e) => return unreadable(&e),
    };
    if let Err(e) = reservation.image(header.width as u64, header.height as u64, 4) {
        return error(StatusCode::PAYLOAD_TOO_LARGE, message(&e));
    }
    let image = match decode(body, max_pixels) {
        Ok((_, image)) => image,
        Err(e) => return unreadable(&e),
    };
    let scores = match classifier.scores_within(&[image.view()], &mut PoolInputs::new(&mut reservation)) {
        Ok(mut s) if s.len() == 1 => s.remove(0),
        Ok(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "the model returned no scores"),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, message(&e)),
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
/// Ctrl-C or SIGTERM.
pub async fn serve_until_ctrl_c(app: Arc<App>, addr: &str, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let listener = TcpListener::bind(addr).await?;
    ready(listener.local_addr()?);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    serve(app, listener, async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
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
    fn hosts_that_name_this_server() {
        let allowed = vec!["rookery.lab".to_string()];
        for good in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:8080",
            "10.0.0.5",
            "rookery.lab:80",
        ] {
            assert!(host_allowed(Some(good), &allowed), "{good}");
        }
        for bad in ["evil.example:8080", "127.0.0.1.evil.example", "", "localhost.evil"] {
            assert!(!host_allowed(Some(bad), &allowed), "{bad}");
        }
        assert!(!host_allowed(None, &allowed));
    }

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (generate_token().unwrap(), generate_token().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(same_secret(a.as_bytes(), a.as_bytes()));
        assert!(!same_secret(a.as_bytes(), b.as_bytes()));
        assert!(!same_secret(&a.as_bytes()[..31], a.as_bytes()));
        let access = Access {
            token: Some(a.clone()),
            ..Access::default()
        };
        let shown = format!("{access:?}");
        assert!(shown.contains("<set>") && !shown.contains(&a), "{shown}");
    }

    #[test]
    fn body_memory_in_kib() {
        assert_eq!(kib(0), 1);
        assert_eq!(kib(1024), 1);
        assert_eq!(kib(1025), 2);
        assert_eq!(kib(usize::MAX), u32::MAX);
    }
}
