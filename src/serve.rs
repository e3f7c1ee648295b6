//! `rookery serve`: an image classifier behind HTTP.
//!
//! `POST /classify` with an image file as the body answers
//! `{"label": "...", "scores": [{"label": "...", "score": 0.93}, ...]}`
//! (scores highest first); `GET /health` answers `ok`. A bad image is a 400
//! with `{"error": "..."}` and the server goes on. Requests are HTTP/1.1
//! with a `Content-Length` body (no chunked uploads); each connection
//! serves one request on its own thread.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;

use datafusion::common::Result;
use rookery_udfs::cnn::runtime::ranked;
use rookery_udfs::cnn::runtime::{best, threads_per_session, Classifier, ClassifyOptions};
use rookery_udfs::codec::{decode, DEFAULT_MAX_PIXELS};
use serde_json::json;

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 << 20;
const MAX_HEADER_LINES: usize = 100;

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn json(status: u16, reason: &'static str, value: serde_json::Value) -> Self {
        Self {
            status,
            reason,
            content_type: "application/json",
            body: value.to_string(),
        }
    }

    fn error(status: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self::json(status, reason, json!({ "error": message.into() }))
    }
}

/// Loads the model, binds `addr`, calls `ready` with the bound address, and
/// serves until the process ends.
pub fn serve(model: &Path, options: &str, addr: &str, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let options = ClassifyOptions::parse(options)?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    // Requests run side by side, one thread each: give each session one
    // ONNX Runtime thread per core it may use.
    let classifier = Classifier::cached(model, &options, threads_per_session(cores))?;
    let listener = TcpListener::bind(addr)?;
    ready(listener.local_addr()?);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let classifier = Arc::clone(&classifier);
        std::thread::spawn(move || {
            // A client that goes away mid-answer is not the server's problem.
            let _ = handle(stream, &classifier);
        });
    }
    Ok(())
}

fn handle(stream: TcpStream, classifier: &Classifier) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let response = match read_request(&mut reader) {
        Ok((method, path, body)) => route(&method, &path, &body, classifier),
        Err(response) => response,
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        response.status,
        response.reason,
        response.content_type,
        response.body.len(),
        response.body
    )?;
    stream.flush()
}

/// (method, path, body) of one request, or the error response to send.
fn read_request(reader: &mut impl BufRead) -> std::result::Result<(String, String, Vec<u8>), Response> {
    let bad = |m: &str| Response::error(400, "Bad Request", m);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|_| bad("unreadable request line"))?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(bad("malformed request line"));
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut length = None;
    for _ in 0..MAX_HEADER_LINES {
        let mut header = String::new();
        reader.read_line(&mut header).map_err(|_| bad("unreadable header"))?;
        let header = header.trim_end();
        if header.is_empty() {
            let body = match length {
                Some(n) if n > MAX_BODY => {
                    return Err(Response::error(
                        413,
                        "Payload Too Large",
                        format!("body over {MAX_BODY} bytes"),
                    ));
                }
                Some(n) => {
                    let mut body = vec![0u8; n];
                    reader
                        .read_exact(&mut body)
                        .map_err(|_| bad("body shorter than Content-Length"))?;
                    body
                }
                None if method == "POST" => {
                    return Err(Response::error(
                        411,
                        "Length Required",
                        "send the image with a Content-Length",
                    ));
                }
                None => Vec::new(),
            };
            return Ok((method, path, body));
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse::<usize>().map_err(|_| bad("bad Content-Length"))?);
            }
        }
    }
    Err(bad("too many headers"))
}

fn route(method: &str, path: &str, body: &[u8], classifier: &Classifier) -> Response {
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/health") => Response {
            status: 200,
            reason: "OK",
            content_type: "text/plain",
            body: "ok".into(),
        },
        ("POST", "/classify") => classify(body, classifier),
        (_, "/health" | "/classify") => {
            Response::error(405, "Method Not Allowed", format!("{method} is not allowed here"))
        }
        _ => Response::error(404, "Not Found", format!("no {path}; POST an image to /classify")),
    }
}

fn classify(body: &[u8], classifier: &Classifier) -> Response {
    let image = match decode(body, DEFAULT_MAX_PIXELS) {
        Ok((_, image)) => image,
        Err(e) => return Response::error(400, "Bad Request", format!("the body is not a readable image: {e}")),
    };
    let scores = match classifier.scores(&[image.view()]) {
        Ok(mut s) if s.len() == 1 => s.remove(0),
        Ok(_) => return Response::error(500, "Internal Server Error", "the model returned no scores"),
        Err(e) => return Response::error(500, "Internal Server Error", rookery_udfs::cnn::message(&e)),
    };
    let ranked = ranked(&scores);
    let entries: Vec<_> = ranked
        .iter()
        .map(|(i, s)| json!({ "label": classifier.label(*i), "score": s }))
        .collect();
    Response::json(
        200,
        "OK",
        json!({ "label": classifier.label(best(&scores)), "scores": entries }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_request_with_a_body() {
        let raw = b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcEXTRA";
        let (method, path, body) = read_request(&mut &raw[..]).ok().expect("request");
        assert_eq!(
            (method.as_str(), path.as_str(), body.as_slice()),
            ("POST", "/classify", &b"abc"[..])
        );
    }

    #[test]
    fn refuses_bodies_without_length_or_too_large() {
        let no_length = b"POST /classify HTTP/1.1\r\n\r\n";
        assert_eq!(read_request(&mut &no_length[..]).err().map(|r| r.status), Some(411));
        let huge = format!("POST /classify HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
        assert_eq!(read_request(&mut huge.as_bytes()).err().map(|r| r.status), Some(413));
        let short = b"POST /classify HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc";
        assert_eq!(read_request(&mut &short[..]).err().map(|r| r.status), Some(400));
    }
}
