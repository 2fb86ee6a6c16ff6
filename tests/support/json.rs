//! The few JSON lookups the harness needs from `etcdctl -w json` output, written by hand
//! because serde is not a dev-dependency of this crate.
//!
//! etcdctl prints compact JSON (`"key":value`, no spaces) with numbers unquoted, which is all
//! these helpers accept. They find keys by name anywhere in the text, so callers pick keys
//! that are unambiguous in the message they parse (e.g. `"raftTerm"`, not `"revision"` in a
//! txn whose nested responses carry their own headers).

/// Every unsigned number that follows `"key":` in `text`, in order of appearance.
pub fn u64_all(text: &str, key: &str) -> Vec<u64> {
    let pattern = format!("\"{key}\":");
    let mut values = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&pattern) {
        rest = &rest[at + pattern.len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(value) = digits.parse() {
            values.push(value);
        }
    }
    values
}

/// The first unsigned number that follows `"key":` in `text`.
pub fn u64_first(text: &str, key: &str) -> Option<u64> {
    u64_all(text, key).into_iter().next()
}

/// Every string that follows `"key":` in `text` (no escape handling: etcdctl's base64 keys
/// and values and URLs contain none).
pub fn str_all(text: &str, key: &str) -> Vec<String> {
    let pattern = format!("\"{key}\":\"");
    let mut values = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&pattern) {
        rest = &rest[at + pattern.len()..];
        let end = rest.find('"').unwrap_or(rest.len());
        values.push(rest[..end].to_string());
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_numbers_and_strings() {
        let text = r#"{"header":{"member_id":12,"revision":3},"kvs":[{"key":"Zm9v"}],"count":1}"#;
        assert_eq!(u64_first(text, "member_id"), Some(12));
        assert_eq!(u64_all(text, "revision"), vec![3]);
        assert_eq!(str_all(text, "key"), vec!["Zm9v".to_string()]);
        assert_eq!(u64_first(text, "missing"), None);
    }
}
