//! `rookery serve` under load, in-process on loopback: 200 connections at
//! once, some of them slow or idle, every good request answered, and the
//! server's threads and memory bounded. Also keep-alive, the body limit,
//! the `/sql` formats and graceful shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rookery::{new_session, EngineOptions};
use rookery_cli::serve::{serve, Access, App, ServeLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one response: (status code, headers, body).
async fn read_response(stream: &mut TcpStream) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before the headers",
            ));
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((status, head, body))
}

/// The token the test servers take.
const TOKEN: &str = "test-token";

fn post(path: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n{extra_headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

async fn request(addr: std::net::SocketAddr, raw: &[u8]) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(raw).await?;
    read_response(&mut stream).await
}

fn process_threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<datafusion::error::Result<()>>,
}

async fn start(limits: ServeLimits) -> Server {
    let access = Access {
        token: Some(TOKEN.to_string()),
        sql: true,
        ..Access::default()
    };
    start_with(limits, access).await
}

async fn start_with(limits: ServeLimits, access: Access) -> Server {
    let ctx = new_session(&EngineOptions {
        partitions: Some(2),
        ..Default::default()
    })
    .expect("session");
    ctx.sql("CREATE TABLE counts AS SELECT * FROM (VALUES ('pups', 3), ('juveniles', 5)) AS t(class, n)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let app = Arc::new(App::new(ctx, None, limits, access).expect("app"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(serve(app, listener, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        stop: Some(stop),
        done,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_every_good_request_under_200_connections() {
    let limits = ServeLimits {
        max_requests: 2,
        max_body: 1 << 20,
        header_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(30),
        ..ServeLimits::default()
    };
    let server = start(limits).await;
    let addr = server.addr;
    // Warm up (the runtime's threads, the session's first plan).
    assert_eq!(request(addr, &post("/sql", "", b"SELECT 1")).await.unwrap().0, 200);
    let threads_before = process_threads();
    let rss_before = rss_kib();

    let started = Instant::now();
    let mut idle = Vec::new();
    // 30 idle connections (nothing sent) and 20 slow ones (half a header).
    for _ in 0..30 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    for _ in 0..20 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /sql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
            .await
            .unwrap();
        idle.push(stream);
    }
    // 150 good ones at once: SQL, health, and one keep-alive pair each.
    let mut good = Vec::new();
    for i in 0..150 {
        good.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await?;
            let sql = format!("SELECT class, n + {i} AS n FROM counts ORDER BY class");
            stream.write_all(&post("/sql", "", sql.as_bytes())).await?;
            let (status, _, body) = read_response(&mut stream).await?;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            assert_eq!(
                String::from_utf8_lossy(&body),
                format!("class,n\njuveniles,{}\npups,{}\n", 5 + i, 3 + i)
            );
            // The same connection again (keep-alive).
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .await?;
            let (status, _, body) = read_response(&mut stream).await?;
            assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
            std::io::Result::Ok(())
        }));
    }
    let mut answered = 0;
    for task in good {
        task.await.expect("client task").expect("a good request answered");
        answered += 1;
    }
    assert_eq!(answered, 150);
    let threads_during = process_threads();
    let rss_during = rss_kib();

    // Idle and slow connections are closed after the header timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for mut stream in idle {
        let mut byte = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await;
        let closed = match read {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            // Some hyper versions answer 408 before closing.
            Ok(Ok(n)) => String::from_utf8_lossy(&byte[..n]).contains("408"),
            Err(_) => false,
        };
        assert!(closed, "an idle or slow connection stays open");
    }
    eprintln!(
        "200 connections: {answered} good requests (x2) in {:.2} s; threads {threads_before} -> {threads_during}; RSS {} -> {} MiB",
        started.elapsed().as_secs_f64(),
        rss_before / 1024,
        rss_during / 1024
    );
    // No thread per connection: the runtime's workers plus its blocking pool.
    assert!(
        threads_during <= threads_before + 16,
        "threads {threads_before} -> {threads_during}"
    );
    assert!(
        rss_during < rss_before + 256 * 1024,
        "RSS {rss_before} -> {rss_during} KiB"
    );
    stop(server).await;
}

async fn stop(mut server: Server) {
    let _ = server.stop.take().expect("running").send(());
    tokio::time::timeout(Duration::from_secs(10), server.done)
        .await
        .expect("graceful shutdown in time")
        .expect("server task")
        .expect("server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_formats_and_errors() {
    let server = start(ServeLimits {
        max_body: 1024,
        ..ServeLimits::default()
    })
    .await;
    let addr = server.addr;
    let (status, _, body) = request(addr, &post("/sql", "", &vec![b' '; 2048])).await.unwrap();
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    // Chunked, so the limit is found while reading.
    let mut chunked = format!(
        "POST /sql HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..3 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b' '; 512]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(request(addr, &chunked).await.unwrap().0, 413);

    let (status, _, body) = request(addr, &post("/sql", "", b"SELEC nonsense")).await.unwrap();
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("\"error\""));

    let sql = b"SELECT class, n FROM counts ORDER BY n";
    let (status, head, body) = request(addr, &post("/sql", "Accept: application/json\r\n", sql))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("content-type: application/json"),
        "{head}"
    );
    let rows: serde_json::Value = serde_json::from_slice(&body).expect("JSON rows");
    assert_eq!(rows[0]["class"], "pups");

    let arrow = "Accept: application/vnd.apache.arrow.stream\r\n";
    let (status, _, body) = request(addr, &post("/sql", arrow, sql)).await.unwrap();
    assert_eq!(status, 200);
    let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None).expect("IPC");
    let rows: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(rows, 2);

    let (status, _, _) = request(addr, &post("/classify", "", b"x")).await.unwrap();
    assert_eq!(status, 404, "no model given");
    let delete = format!("DELETE /sql HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    let (status, _, _) = request(addr, delete.as_bytes()).await.unwrap();
    assert_eq!(status, 405);
    // Each request plans in a state of its own: a SET (refused here, as
    // the server is read-only) could not reach another client anyway.
    let (status, _, body) = request(addr, &post("/sql", "", b"SET datafusion.execution.batch_size = 1"))
        .await
        .unwrap();
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_has_its_own_settings() {
    let access = Access {
        token: Some(TOKEN.to_string()),
        sql: true,
        sql_writes: true,
        ..Access::default()
    };
    let server = start_with(ServeLimits::default(), access).await;
    let show = "SELECT value FROM information_schema.df_settings WHERE name = 'datafusion.execution.batch_size'";
    let both = format!("SET datafusion.execution.batch_size = 7; {show}");
    let (status, _, body) = request(server.addr, &post("/sql", "", both.as_bytes())).await.unwrap();
    assert_eq!((status, String::from_utf8_lossy(&body).as_ref()), (200, "value\n7\n"));
    // Another request does not see that SET.
    let (status, _, body) = request(server.addr, &post("/sql", "", show.as_bytes())).await.unwrap();
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (200, "value\n8192\n")
    );
    stop(server).await;
}
