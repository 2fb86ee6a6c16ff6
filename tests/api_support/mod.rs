//! Test support for the `api_*` black-box tests: run the real `raftkv` binary on free
//! loopback ports, talk to it with `etcdctl` (ETCDCTL_API=3) and a plain HTTP/1.1 client,
//! and wait on conditions with deadlines (never bare sleeps). The child is killed on drop.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a member gets to come up, answer, or stop.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `check` until it returns `Some`, failing the test after [`DEADLINE`].
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// One `raftkv` process with its own data dir and ports.
pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub metrics_port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl Member {
    /// Start a single-member cluster named `name` in a fresh temp dir, plus `extra` flags.
    pub fn start(name: &str, extra: &[&str]) -> Member {
        let mut m = Member::prepare(name);
        m.spawn(extra);
        m
    }

    /// Pick ports and a temp dir for member `name`, without starting it.
    pub fn prepare(name: &str) -> Member {
        let tmp = tempfile::tempdir().unwrap();
        Member {
            name: name.to_string(),
            client_port: free_port(),
            peer_port: free_port(),
            metrics_port: free_port(),
            dir: tmp.path().to_path_buf(),
            child: None,
            _tmp: Some(tmp),
        }
    }

    /// (Re)start the process with the same ports and data dir; `extra` flags come last, so
    /// they override the defaults set here (a later flag wins, as in Go).
    pub fn spawn(&mut self, extra: &[&str]) {
        assert!(
            self.child.is_none(),
            "member {} is already running",
            self.name
        );
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .arg(format!("--name={}", self.name))
            .arg(format!("--data-dir={}", self.dir.join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={}={peer}", self.name))
            .arg(format!(
                "--listen-metrics-urls=http://127.0.0.1:{}",
                self.metrics_port
            ))
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn raftkv");
        self.child = Some(child);
    }

    /// The process's log (stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("raftkv.log")
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `127.0.0.1:<client port>`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// Wait until `/health` on the client port answers 200.
    pub fn wait_healthy(&mut self) {
        let port = self.client_port;
        wait_for("/health = 200", || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "raftkv exited with {status} before becoming healthy:\n{}",
                    self.log()
                );
            }
            let ok = http_get(port, "/health")
                .map(|r| r.status == 200)
                .unwrap_or(false);
            ok.then_some(())
        })
    }

    /// Wait for the process to exit on its own.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("member is running");
        wait_for("raftkv to exit", || child.try_wait().unwrap())
    }

    /// Send SIGTERM and wait for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("member is running");
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        wait_for("raftkv to exit after SIGTERM", || child.try_wait().unwrap())
    }

    /// Run `etcdctl --endpoints=<this member> args...` with `stdin`.
    pub fn etcdctl(&self, args: &[&str], stdin: &str) -> Output {
        etcdctl(&self.endpoint(), args, stdin)
    }

    /// `etcdctl`, asserting success, returning stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.etcdctl(args, "");
        assert!(
            out.status.success(),
            "etcdctl {args:?} failed: {}\nraftkv log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Run etcdctl (v3 API) against `endpoint`.
pub fn etcdctl(endpoint: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl is installed (/usr/bin/etcdctl)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// One HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` over a fresh HTTP/1.1 connection with `Connection: close`.
pub fn http_get(port: u16, path: &str) -> std::io::Result<HttpResponse> {
    http_request(port, "GET", path)
}

/// `method path` over a fresh HTTP/1.1 connection; handles Content-Length and chunked bodies.
pub fn http_request(port: u16, method: &str, path: &str) -> std::io::Result<HttpResponse> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(DEADLINE))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    Ok(parse_response(&raw))
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("a complete HTTP response");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v == "chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}
