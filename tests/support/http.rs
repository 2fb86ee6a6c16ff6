//! Plain HTTP/1.1 GETs against a member's client URL (`/health`, `/readyz`, `/metrics`), for
//! tests that check what etcd serves beside gRPC. No client library: one request per
//! connection (`Connection: close`), the whole response (status line, headers, body) back.

use std::io::{Read, Write};

/// `GET path` on `client_url` (`http://host:port`); the raw response text.
pub fn get(client_url: &str, path: &str) -> String {
    let addr = client_url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).expect("send the request");
    let mut out = String::new();
    stream.read_to_string(&mut out).expect("read the response");
    out
}

/// `GET path` as HTTP/1.0, so that no server answers chunked (a long body such as
/// `/metrics` then arrives unsplit); the body, or None if the member does not answer.
pub fn body_http10(client_url: &str, path: &str) -> Option<String> {
    let addr = client_url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    stream.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_string())
}
