//! Parsers for the values of etcd's flags: URL lists, listen URLs, `--initial-cluster`,
//! Go durations (`5s`, `2h`, `100ms`), Go bools and `--feature-gates`.
//!
//! Pure functions over strings, so `config.rs` stays about which flag means what and the
//! tests can check every parser directly. Errors are messages for the operator, in etcd's
//! words where etcd has them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// A comma-separated list of URLs (`http://a:1,http://b:2`), blanks dropped.
pub fn split_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect()
}

/// Where to bind for one `--listen-*-urls` entry. `localhost` binds the IPv4 loopback
/// (raftkv does not resolve names for binding, as etcd does not); an `https` URL returns
/// `tls = true` so the caller can warn that TLS is not implemented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenUrl {
    /// The socket address to bind.
    pub addr: SocketAddr,
    /// The URL asked for TLS (`https`), which raftkv does not implement yet.
    pub tls: bool,
}

/// Parse `http://127.0.0.1:2379`, `http://localhost:2379`, `http://[::1]:2379` or
/// `http://0.0.0.0:2379`.
pub fn parse_listen_url(url: &str) -> Result<ListenUrl, String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err(format!("URL scheme must be http or https: {url}"));
    };
    let host_port = rest.trim_end_matches('/');
    let (host, port) = host_port
        .rsplit_once(':')
        .ok_or_else(|| format!("URL address does not have the form \"host:port\": {url}"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("invalid port in URL: {url}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if host == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse()
            .map_err(|_| format!("expected IP in URL for binding ({url})"))?
    };
    Ok(ListenUrl {
        addr: SocketAddr::new(ip, port),
        tls,
    })
}

/// Parse a comma-separated list of listen URLs.
pub fn parse_listen_urls(list: &str) -> Result<Vec<ListenUrl>, String> {
    split_urls(list)
        .iter()
        .map(|u| parse_listen_url(u))
        .collect()
}

/// Parse `--initial-cluster` (`a=http://h1:2380,b=http://h2:2380,a=http://h1:2381`) into
/// (name, peer URLs) in order of first appearance; a name given twice collects both URLs.
pub fn parse_initial_cluster(value: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut members: Vec<(String, Vec<String>)> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, url) = entry
            .split_once('=')
            .ok_or_else(|| format!("--initial-cluster entry is not name=url: {entry:?}"))?;
        if name.is_empty() || url.is_empty() {
            return Err(format!(
                "--initial-cluster entry is not name=url: {entry:?}"
            ));
        }
        match members.iter_mut().find(|(n, _)| n == name) {
            Some((_, urls)) => urls.push(url.to_string()),
            None => members.push((name.to_string(), vec![url.to_string()])),
        }
    }
    if members.is_empty() {
        return Err("--initial-cluster is empty".to_string());
    }
    Ok(members)
}

/// Parse a Go duration: a sequence of decimal numbers with units `ns`, `us`, `ms`, `s`, `m`,
/// `h` (`1h30m`, `2.5s`, `100ms`); a bare `0` is zero.
pub fn parse_go_duration(value: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {value:?}");
    if value == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = value;
    let mut total_seconds = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total_seconds += number * unit_seconds;
        rest = &rest[unit_len..];
    }
    if value.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total_seconds))
}

/// Parse a bool as Go's `strconv.ParseBool` does (`1`, `t`, `true`, `TRUE`, `True`, and
/// their false twins).
pub fn parse_go_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err("parse error".to_string()),
    }
}

/// Parse `--feature-gates` (`InitialCorruptCheck=true,StopGRPCServiceOnDefrag=false`) into
/// (gate, enabled) pairs, with the messages of the Kubernetes feature-gate parser etcd 3.6
/// uses. Which gates exist is the caller's business.
pub fn parse_feature_gates(value: &str) -> Result<Vec<(String, bool)>, String> {
    let mut gates = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, enabled)) = entry.split_once('=') else {
            return Err(format!("missing bool value for {entry}"));
        };
        let (name, enabled) = (name.trim(), enabled.trim());
        let enabled = parse_go_bool(enabled).map_err(|_| {
            let why = format!("strconv.ParseBool: parsing {enabled:?}: invalid syntax");
            format!("invalid value of {name}={enabled}, err: {why}")
        })?;
        gates.push((name.to_string(), enabled));
    }
    Ok(gates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_urls_bind_ips_and_localhost() {
        let u = parse_listen_url("http://localhost:2379").unwrap();
        assert_eq!(
            u,
            ListenUrl {
                addr: "127.0.0.1:2379".parse().unwrap(),
                tls: false
            }
        );
        assert_eq!(
            parse_listen_url("http://[::1]:1/").unwrap().addr,
            "[::1]:1".parse().unwrap()
        );
        assert!(parse_listen_url("https://0.0.0.0:2379").unwrap().tls);
        assert!(parse_listen_url("http://example.com:2379")
            .unwrap_err()
            .contains("expected IP"));
        assert!(parse_listen_url("unix://x").is_err());
        assert!(parse_listen_url("http://127.0.0.1").is_err());
    }

    #[test]
    fn initial_cluster_groups_urls_by_name() {
        let c = parse_initial_cluster("a=http://h:1,b=http://h:2,a=http://h:3").unwrap();
        assert_eq!(
            c[0],
            (
                "a".to_string(),
                vec!["http://h:1".into(), "http://h:3".into()]
            )
        );
        assert_eq!(c[1], ("b".to_string(), vec!["http://h:2".into()]));
        assert!(parse_initial_cluster("a").is_err());
        assert!(parse_initial_cluster("").is_err());
    }

    #[test]
    fn go_bools_and_feature_gates() {
        assert_eq!(parse_go_bool("true"), Ok(true));
        assert_eq!(parse_go_bool("F"), Ok(false));
        assert!(parse_go_bool("yes").is_err());
        let gates = parse_feature_gates("InitialCorruptCheck=true, Other=false").unwrap();
        assert_eq!(
            gates,
            vec![
                ("InitialCorruptCheck".to_string(), true),
                ("Other".to_string(), false)
            ]
        );
        assert_eq!(parse_feature_gates(""), Ok(vec![]));
        assert!(parse_feature_gates("InitialCorruptCheck")
            .unwrap_err()
            .starts_with("missing bool value"));
        assert!(parse_feature_gates("InitialCorruptCheck=maybe")
            .unwrap_err()
            .starts_with("invalid value of InitialCorruptCheck=maybe"));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_go_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("100ms").unwrap(),
            Duration::from_millis(100)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("5x").is_err());
    }
}
