//! Parser for the differential scripts in `tests/differential/*.txt`.
//!
//! Format, one etcdctl invocation per line (without the `etcdctl` word and without
//! `--endpoints`, which the runner adds):
//!
//! ```text
//! # A header paragraph: what this session proves (required).
//! put foo bar
//! get foo --prefix              # read-only commands run twice: as written and with -w json
//! put "" x                      # "..." and '...' quote; "" is an empty argument
//! txn -w json <<EOF             # stdin: the lines up to a line `EOF`, each ending in \n
//! value("foo") = "bar"
//!
//! put a 1
//!
//! EOF
//! put big <fill:x:1600000       # stdin: 1600000 bytes of `x`
//! watch --rev=2 k <lines:6       # a command that never ends: stopped after 6 stdout lines
//! ```
//!
//! Lines starting with `#` are comments; trailing `# ...` comments are not supported (a `#`
//! may be part of a key). Read-only commands (`get`, `member list`, `endpoint`) that do not pick
//! an output format are expanded into two steps, simple and `-w json`, so every read is
//! compared in both formats without doubling the scripts. Writes run once, exactly as
//! written (running them twice would change the revisions the rest of the script sees).

/// One etcdctl invocation.
#[derive(Clone, Debug)]
pub struct Step {
    /// 1-based line number in the script, for messages.
    pub line: usize,
    /// etcdctl arguments (without `--endpoints`).
    pub args: Vec<String>,
    /// Bytes fed to etcdctl's stdin.
    pub stdin: Vec<u8>,
    /// For commands that never end by themselves (`watch`): stop after this many stdout
    /// lines (or when the command exits first).
    pub lines: Option<usize>,
}

impl Step {
    /// The command as a shell-like line, for transcripts.
    pub fn display(&self) -> String {
        let args: Vec<String> = self.args.iter().map(|a| quote(a)).collect();
        let mut text = format!("etcdctl {}", args.join(" "));
        if !self.stdin.is_empty() {
            text.push_str(&format!("  (stdin: {} bytes)", self.stdin.len()));
        }
        text
    }
}

/// A parsed script.
#[derive(Clone, Debug)]
pub struct Script {
    /// File stem, e.g. `put_get`.
    pub name: String,
    /// The steps in order.
    pub steps: Vec<Step>,
}

/// Parses `text` (the contents of `<name>.txt`); errors name the line.
pub fn parse(name: &str, text: &str) -> Result<Script, String> {
    let lines: Vec<&str> = text.lines().collect();
    if !lines.first().is_some_and(|l| l.starts_with('#')) {
        return Err(format!(
            "{name}: must open with a # header saying what it proves"
        ));
    }
    let mut steps = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let line_no = at + 1;
        let line = lines[at].trim();
        at += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut args = split(line).map_err(|e| format!("{name}:{line_no}: {e}"))?;
        let mut stdin = Vec::new();
        let mut lines_max = None;
        if let Some(n) = args.last().and_then(|a| a.strip_prefix("<lines:")) {
            let n = n
                .parse()
                .map_err(|e| format!("{name}:{line_no}: <lines:N: {e}"))?;
            lines_max = Some(n);
            args.pop();
        }
        if args.last().is_some_and(|a| a == "<<EOF") {
            args.pop();
            let end = lines[at..].iter().position(|l| *l == "EOF");
            let end = end.ok_or(format!("{name}:{line_no}: <<EOF without a closing EOF"))?;
            for body in &lines[at..at + end] {
                stdin.extend_from_slice(body.as_bytes());
                stdin.push(b'\n');
            }
            at += end + 1;
        } else if let Some(fill) = args.last().and_then(|a| a.strip_prefix("<fill:")) {
            stdin = parse_fill(fill).map_err(|e| format!("{name}:{line_no}: {e}"))?;
            args.pop();
        }
        steps.extend(expand_formats(Step {
            line: line_no,
            args,
            stdin,
            lines: lines_max,
        }));
    }
    Ok(Script {
        name: name.to_string(),
        steps,
    })
}

/// `CHAR:COUNT` -> COUNT copies of the byte CHAR.
fn parse_fill(spec: &str) -> Result<Vec<u8>, String> {
    let (byte, count) = spec.split_once(':').ok_or("want <fill:CHAR:COUNT")?;
    let [byte] = byte.as_bytes() else {
        return Err("fill CHAR must be one byte".into());
    };
    let count: usize = count.parse().map_err(|e| format!("fill COUNT: {e}"))?;
    Ok(vec![*byte; count])
}

fn expand_formats(step: Step) -> Vec<Step> {
    let words: Vec<&str> = step.args.iter().take(2).map(String::as_str).collect();
    let read_only = matches!(
        words.as_slice(),
        ["get", ..] | ["endpoint", ..] | ["member", "list", ..]
    );
    let has_format = step
        .args
        .iter()
        .any(|a| a == "-w" || a.starts_with("--write-out"));
    if !read_only || has_format {
        return vec![step];
    }
    let mut json = step.clone();
    json.args.extend(["-w".to_string(), "json".to_string()]);
    vec![step, json]
}

/// Splits a line into arguments: whitespace separates; `'...'` is literal; `"..."` allows
/// `\"` and `\\`.
fn split(line: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut current: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => args.extend(current.take()),
            '\'' => {
                let arg = current.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => arg.push(c),
                        None => return Err("unclosed '".into()),
                    }
                }
            }
            '"' => {
                let arg = current.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => arg.push(chars.next().ok_or("trailing \\")?),
                        Some(c) => arg.push(c),
                        None => return Err("unclosed \"".into()),
                    }
                }
            }
            c => current.get_or_insert_with(String::new).push(c),
        }
    }
    args.extend(current);
    Ok(args)
}

fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./:,".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{arg}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quotes_heredocs_fills_and_read_expansion() {
        let text = "# header\nput \"\" 'a b'\nget k\ntxn <<EOF\nx\n\nEOF\nput big <fill:x:3\n";
        let script = parse("t", text).unwrap();
        let args: Vec<Vec<String>> = script.steps.iter().map(|s| s.args.clone()).collect();
        assert_eq!(args[0], vec!["put", "", "a b"]);
        assert_eq!(args[1], vec!["get", "k"]);
        assert_eq!(args[2], vec!["get", "k", "-w", "json"]);
        assert_eq!(args[3], vec!["txn"]);
        assert_eq!(script.steps[3].stdin, b"x\n\n");
        assert_eq!(script.steps[4].stdin, b"xxx");
        assert!(parse("t", "put a b\n").is_err(), "a header is required");
    }
}
