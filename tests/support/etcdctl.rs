//! Running `etcdctl` (API v3) against a set of endpoints and capturing what it printed.
//!
//! The child gets a clean environment as far as etcdctl is concerned: every inherited
//! `ETCDCTL_*` variable is removed (a developer's `ETCDCTL_ENDPOINTS` must not redirect a
//! test) and `ETCDCTL_API=3` is set.

use std::io::Write;
use std::process::{Command, Stdio};

use super::binary::etcdctl_path;

/// What one etcdctl invocation produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtlOutput {
    /// Everything written to stdout, lossily decoded as UTF-8.
    pub stdout: String,
    /// Everything written to stderr, lossily decoded as UTF-8.
    pub stderr: String,
    /// Exit code; -1 if etcdctl died from a signal.
    pub code: i32,
}

impl CtlOutput {
    /// True when etcdctl exited with 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// The output after asserting success; the panic message shows the whole invocation.
    #[track_caller]
    pub fn ok(self, what: &str) -> CtlOutput {
        assert!(self.success(), "etcdctl {what} failed: {self:?}");
        self
    }

    /// stdout with the trailing newline removed.
    pub fn out(&self) -> &str {
        self.stdout.trim_end_matches('\n')
    }
}

/// Runs `etcdctl --endpoints=<endpoints> <args>` with `stdin` (empty when `None`) and waits
/// for it. `endpoints` is a comma-separated list of client URLs.
///
/// Panics if etcdctl is not installed: callers check with `binary::require_*` first.
pub fn run(endpoints: &str, args: &[&str], stdin: Option<&[u8]>) -> CtlOutput {
    let path = etcdctl_path().expect("etcdctl not installed (callers check require_* first)");
    let mut command = Command::new(path);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ETCDCTL_") {
            command.env_remove(key);
        }
    }
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn etcdctl");
    // Feed stdin on a thread: a large value could otherwise fill the pipe while etcdctl
    // waits for us to read its output.
    let input = stdin.unwrap_or_default().to_vec();
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let feeder = std::thread::spawn(move || {
        // etcdctl may exit before reading everything (e.g. on a usage error): not our error.
        let _ = pipe.write_all(&input);
    });
    let output = child.wait_with_output().expect("wait for etcdctl");
    feeder.join().expect("stdin feeder thread");
    CtlOutput {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        code: output.status.code().unwrap_or(-1),
    }
}

/// Runs `etcdctl --endpoints=<endpoints> <args>` for a command that may never end by itself
/// (`watch`): returns once `lines` stdout lines arrived (the process is then killed and
/// reported with code 0), or when it exits by itself, or after 5 s without a line (then the lines so far).
pub fn run_lines(endpoints: &str, args: &[&str], lines: usize) -> CtlOutput {
    use std::io::{BufRead, BufReader, Read};
    use std::sync::mpsc;
    let path = etcdctl_path().expect("etcdctl not installed (callers check require_* first)");
    let mut command = Command::new(path);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ETCDCTL_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etcdctl");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel::<Option<String>>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(Some(line)).is_err() {
                return;
            }
        }
        let _ = tx.send(None);
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut out = String::new();
    let mut got = 0;
    let mut ended = false;
    while got < lines {
        match rx.recv_timeout(std::time::Duration::from_secs(5)) {
            Ok(Some(line)) => {
                out.push_str(&line);
                out.push('\n');
                got += 1;
            }
            Ok(None) => {
                ended = true;
                break;
            }
            Err(_) => break,
        }
    }
    if !ended {
        let _ = child.kill();
    }
    let status = child.wait().expect("wait for etcdctl");
    let stderr = err_reader.join().expect("stderr reader");
    let code = if got >= lines {
        0
    } else {
        status.code().unwrap_or(-1)
    };
    CtlOutput {
        stdout: out,
        stderr,
        code,
    }
}
