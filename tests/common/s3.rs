//! A local S3-compatible server for the object store tests: moto's
//! `moto_server` (installed by `scripts/setup-moto.sh`, which the README's
//! test command runs), started on a port of 127.0.0.1 it picks itself and stopped when
//! the test ends, panicking or not.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The credentials the tests sign with; moto accepts any.
pub const KEY_ID: &str = "rookery-test";
pub const SECRET: &str = "rookery-secret";
pub const REGION: &str = "us-east-1";

pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

/// `$ROOKERY_MOTO_SERVER`, else the one `scripts/setup-moto.sh` installs.
fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("ROOKERY_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME");
    cache.join("rookery/moto/bin/moto_server")
}

impl S3Server {
    pub fn start() -> Self {
        let program = moto_server();
        assert!(
            program.is_file(),
            "{} is missing: run scripts/setup-moto.sh (scripts/test.sh does) or set ROOKERY_MOTO_SERVER",
            program.display()
        );
        // Port 0: the server binds a free port itself and says which, so two
        // tests never race for one.
        let mut child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stderr = child.stderr.take().expect("moto_server's stderr");
        let (found, port) = std::sync::mpsc::channel();
        // The thread reads the port, then drains the request log so the
        // server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines().map_while(std::result::Result::ok) {
                if let Some(port) = line
                    .split("Running on http://127.0.0.1:")
                    .nth(1)
                    .and_then(|rest| rest.trim().parse::<u16>().ok())
                {
                    if let Some(found) = found.take() {
                        let _ = found.send(port);
                    }
                }
            }
        });
        let port = port
            .recv_timeout(Duration::from_secs(60))
            .expect("moto_server did not say its port in 60 s");
        let server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto_server did not start in 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// Creates a bucket (moto takes an unsigned `PUT /bucket`).
    pub fn create_bucket(&self, bucket: &str) {
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).expect("connect to moto");
        write!(
            stream,
            "PUT /{bucket} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "create bucket {bucket}: {answer}");
    }

    /// Puts one object (moto takes an unsigned `PUT /bucket/key`).
    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8]) {
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).expect("connect to moto");
        write!(
            stream,
            "PUT /{bucket}/{key} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .expect("send");
        stream.write_all(body).expect("send body");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "put {bucket}/{key}: {answer}");
    }

    /// The store options (object_store's keys) that point an `s3://`
    /// store at this server.
    pub fn store_options(&self) -> std::collections::HashMap<String, String> {
        [
            ("endpoint", self.endpoint.clone()),
            ("allow_http", "true".to_string()),
            ("access_key_id", KEY_ID.to_string()),
            ("secret_access_key", SECRET.to_string()),
            ("region", REGION.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The table options that point an `s3://` table at this server.
    pub fn table_options(&self) -> String {
        format!(
            "'aws.endpoint' '{}', 'aws.allow_http' 'true', 'aws.access_key_id' '{KEY_ID}', \
             'aws.secret_access_key' '{SECRET}', 'aws.region' '{REGION}'",
            self.endpoint
        )
    }

    /// The environment that points every `s3://` location at this server.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
            ("AWS_REGION", REGION.into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
