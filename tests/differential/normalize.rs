//! Normalisation of etcdctl output before two servers' transcripts are compared.
//!
//! Only what legitimately differs between two correct servers is rewritten; everything
//! else, revisions in particular, must match byte for byte. Found by running every script
//! against two fresh etcd 3.4 instances (`etcd_agrees_with_itself`) and reading the diffs:
//!
//! Everywhere:
//! - the member's client and peer addresses (`127.0.0.1:<port>`: free ports differ per run)
//!   -> `<client>` / `<peer>`;
//! - cluster and member ids, decimal (JSON) and hex (simple format) -> `<cluster-id>` /
//!   `<member-id>` (etcd derives them from the peer URLs, raftkv from its own hash);
//! - raft terms (`"raft_term":N`, `"raftTerm":N`) -> `<term>` (when the first election ends
//!   is an implementation detail);
//! - etcdctl's own client log lines on stderr: the `"ts"` timestamp and the random
//!   `client-<uuid>` in `"target"` (client-side, not server output).
//!
//! `endpoint status` only: version (raftkv reports 3.5.x by design), db size and size in
//! use (different storage engines), raft index and applied index (etcd's log also holds
//! conf changes and member-attribute entries; raftkv's log layout is its own).
//!
//! `endpoint health` only: `took` (a wall-clock duration).
//!
//! Leases: ids are chosen by each server, so the runner (`differential.rs`) records the id
//! of every `lease grant` in order and [`normalize_leases`] rewrites the N-th one (hex in
//! simple output, decimal in JSON) to `<lease-N>`; scripts name it `$LEASEN`.
//! `lease timetolive` only: the remaining seconds (`remaining(Ns)`, `"ttl":N`), which
//! depend on how much wall-clock time passed since the grant; granted TTLs stay exact.

/// What identifies one server instance in its output.
#[derive(Clone, Debug)]
pub struct Identity {
    /// header.cluster_id.
    pub cluster_id: u64,
    /// The single member's id.
    pub member_id: u64,
    /// `127.0.0.1:<client port>`.
    pub client_addr: String,
    /// `127.0.0.1:<peer port>`.
    pub peer_addr: String,
}

/// Normalises the output (stdout or stderr) of the etcdctl command `args`.
pub fn normalize(args: &[String], text: &str, id: &Identity) -> String {
    let mut text = replace_word(text, &id.client_addr, "<client>");
    text = replace_word(&text, &id.peer_addr, "<peer>");
    text = replace_word(&text, &id.cluster_id.to_string(), "<cluster-id>");
    text = replace_word(&text, &format!("{:x}", id.cluster_id), "<cluster-id>");
    text = replace_word(&text, &id.member_id.to_string(), "<member-id>");
    text = replace_word(&text, &format!("{:x}", id.member_id), "<member-id>");
    text = replace_json_value(&text, "raft_term", "<term>");
    text = replace_json_value(&text, "raftTerm", "<term>");
    text = replace_json_value(&text, "ts", "<ts>");
    text = replace_between(&text, "endpoint://client-", "/", "<uuid>");
    let words: Vec<&str> = args.iter().map(String::as_str).take(2).collect();
    match words.as_slice() {
        ["endpoint", "status"] => normalize_status(&text),
        ["lease", "timetolive"] => {
            let text = replace_json_value(&text, "ttl", "<remaining>");
            replace_between(&text, "remaining(", ")", "<remaining>")
        }
        ["endpoint", "health"] => {
            let text = replace_json_value(&text, "took", "<duration>");
            replace_between(&text, "took = ", "\n", "<duration>")
        }
        _ => text,
    }
}

/// Rewrites the ids of the leases a script granted (in grant order) to `<lease-N>`,
/// 1-based, in hex (`%016x`, as etcdctl prints ids) and in decimal (JSON).
pub fn normalize_leases(text: &str, leases: &[u64]) -> String {
    let mut text = text.to_string();
    for (n, id) in leases.iter().enumerate() {
        let name = format!("<lease-{}>", n + 1);
        text = replace_word(&text, &format!("{id:016x}"), &name);
        text = replace_word(&text, &id.to_string(), &name);
    }
    text
}

/// Rewrites the ids of the members a script added (in order) to `<new-member-N>`, hex and
/// decimal, and, for `member` commands, takes out what only the ids decide: the order of
/// members (etcd lists them by id: `member list` lines, the `members` array of JSON
/// answers and the entries of `ETCD_INITIAL_CLUSTER` are sorted here) and etcdctl's
/// `%16x` padding of a short id.
pub fn normalize_members(args: &[String], text: &str, added: &[u64]) -> String {
    let mut text = text.to_string();
    for (n, id) in added.iter().enumerate() {
        let name = format!("<new-member-{}>", n + 1);
        text = replace_word(&text, &format!("{id:x}"), &name);
        text = replace_word(&text, &id.to_string(), &name);
    }
    if args.first().is_none_or(|a| a != "member") {
        return text;
    }
    while text.contains("Member  ") || text.contains("cluster  ") {
        text = text
            .replace("Member  ", "Member ")
            .replace("cluster  ", "cluster ");
    }
    let lines: Vec<String> = text.lines().map(sort_members_in_line).collect();
    let mut lines = lines;
    if args.get(1).is_some_and(|a| a == "list") && !text.starts_with('{') {
        lines.sort();
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// One output line with its list of members in a fixed order: the `"members":[...]`
/// objects of a JSON answer (they hold no nested objects) or the comma-separated
/// entries of `ETCD_INITIAL_CLUSTER="..."`.
fn sort_members_in_line(line: &str) -> String {
    if let Some(value) = line
        .strip_prefix("ETCD_INITIAL_CLUSTER=\"")
        .and_then(|v| v.strip_suffix('"'))
    {
        let mut entries: Vec<&str> = value.split(',').collect();
        entries.sort_unstable();
        return format!("ETCD_INITIAL_CLUSTER=\"{}\"", entries.join(","));
    }
    let start = "\"members\":[{";
    let Some(at) = line.find(start) else {
        return line.to_string();
    };
    let body_start = at + start.len();
    let Some(len) = line[body_start..].find("}]") else {
        return line.to_string();
    };
    let mut objects: Vec<&str> = line[body_start..body_start + len].split("},{").collect();
    objects.sort_unstable();
    format!(
        "{}{}{}",
        &line[..body_start],
        objects.join("},{"),
        &line[body_start + len..]
    )
}

/// `endpoint status`: JSON fields and the columns of the simple format
/// (`endpoint, id, version, db size, is leader, is learner, term, index, applied, errors`).
fn normalize_status(text: &str) -> String {
    let mut text = text.to_string();
    for key in [
        "version",
        "dbSize",
        "dbSizeInUse",
        "raftIndex",
        "raftAppliedIndex",
    ] {
        text = replace_json_value(&text, key, &format!("<{key}>"));
    }
    if text.starts_with('[') {
        return text;
    }
    let normalized: Vec<String> = text
        .lines()
        .map(|line| {
            let mut columns: Vec<String> = line.split(", ").map(String::from).collect();
            for (column, placeholder) in [
                (2, "<version>"),
                (3, "<dbSize>"),
                (6, "<term>"),
                (7, "<raftIndex>"),
                (8, "<raftAppliedIndex>"),
            ] {
                if let Some(value) = columns.get_mut(column) {
                    *value = placeholder.to_string();
                }
            }
            columns.join(", ")
        })
        .collect();
    let mut out = normalized.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Replaces `word` where it is not part of a longer run of letters and digits.
fn replace_word(text: &str, word: &str, with: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let before = rest[..at].chars().next_back().or(out.chars().next_back());
        let after = rest[at + word.len()..].chars().next();
        let bounded = |c: Option<char>| !c.is_some_and(|c| c.is_ascii_alphanumeric());
        out.push_str(&rest[..at]);
        if bounded(before) && bounded(after) {
            out.push_str(with);
        } else {
            out.push_str(word);
        }
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

/// Replaces the value after `"key":` (a number, or a string with its quotes kept).
fn replace_json_value(text: &str, key: &str, with: &str) -> String {
    let pattern = format!("\"{key}\":");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&pattern) {
        out.push_str(&rest[..at + pattern.len()]);
        rest = &rest[at + pattern.len()..];
        let end = if let Some(string) = rest.strip_prefix('"') {
            out.push_str(&format!("\"{with}\""));
            1 + string.find('"').map_or(string.len(), |e| e + 1)
        } else {
            out.push_str(with);
            rest.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len())
        };
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Replaces whatever lies between `start` and the next `end` (both kept).
fn replace_between(text: &str, start: &str, end: &str, with: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(start) {
        out.push_str(&rest[..at + start.len()]);
        rest = &rest[at + start.len()..];
        let stop = rest.find(end).unwrap_or(rest.len());
        out.push_str(with);
        rest = &rest[stop..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity {
            cluster_id: 255,
            member_id: 4096,
            client_addr: "127.0.0.1:2379".into(),
            peer_addr: "127.0.0.1:2380".into(),
        }
    }

    #[test]
    fn member_order_and_padding_do_not_matter() {
        let args = vec!["member".to_string(), "list".to_string()];
        let a = normalize_members(&args, "ff, x\n10, y\n", &[0xff]);
        let b = normalize_members(&args, "10, y\nfe, x\n", &[0xfe]);
        assert_eq!(a, b);
        let json = r#"{"members":[{"ID":2},{"ID":1}]}"#;
        let sorted = normalize_members(&args, json, &[]);
        assert_eq!(sorted, r#"{"members":[{"ID":1},{"ID":2}]}"#);
        let add = vec!["member".to_string(), "add".to_string()];
        let text = "Member  ab added\nETCD_INITIAL_CLUSTER=\"b=u,a=v\"\n";
        assert_eq!(
            normalize_members(&add, text, &[0xab]),
            "Member <new-member-1> added\nETCD_INITIAL_CLUSTER=\"a=v,b=u\"\n"
        );
    }

    #[test]
    fn rewrites_ids_terms_and_addresses_but_not_revisions() {
        let args = vec!["get".to_string(), "a".to_string()];
        let text = r#"{"header":{"cluster_id":255,"member_id":4096,"revision":7,"raft_term":2}}"#;
        let out = normalize(&args, text, &id());
        let want = r#"{"header":{"cluster_id":<cluster-id>,"member_id":<member-id>,"revision":7,"raft_term":<term>}}"#;
        assert_eq!(out, want);
        let simple = normalize(&args, "ff, started, m0, http://127.0.0.1:2380, x\n", &id());
        assert_eq!(simple, "<cluster-id>, started, m0, http://<peer>, x\n");
        assert_eq!(
            normalize(&args, "127.0.0.1:23791", &id()),
            "127.0.0.1:23791"
        );
    }

    #[test]
    fn status_columns() {
        let args = vec!["endpoint".to_string(), "status".to_string()];
        let line = "127.0.0.1:2379, 1000, 3.4.23, 20 kB, true, false, 2, 4, 4, \n";
        let out = normalize(&args, line, &id());
        assert_eq!(
            out,
            "<client>, <member-id>, <version>, <dbSize>, true, false, <term>, <raftIndex>, \
             <raftAppliedIndex>, \n"
        );
    }
}
