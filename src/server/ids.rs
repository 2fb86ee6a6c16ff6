//! Member and cluster id derivation, shared by the server, the peer transport and the
//! binary so that every member computes the same ids from the same flags.
//!
//! etcd derives a member id from a SHA-1 of the member's sorted peer URLs and the cluster
//! token, and the cluster id from the SHA-1 of the sorted member ids; we do the same with
//! SHA-256 (first 8 bytes, big-endian). Ids are never 0 (0 means "none" in Raft).

use sha2::{Digest, Sha256};

fn first_u64(digest: &[u8]) -> u64 {
    let id = u64::from_be_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"));
    id.max(1)
}

/// The id of a member reached at `peer_urls` in the cluster named by `token`.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let mut h = Sha256::new();
    for u in urls {
        h.update(u.as_bytes());
    }
    h.update(token.as_bytes());
    first_u64(&h.finalize())
}

/// The id of the cluster whose initial members have `member_ids`.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    first_u64(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_ignore_url_and_member_order_but_not_the_token() {
        let a = vec!["http://a:2380".to_string(), "http://b:2380".to_string()];
        let b = vec!["http://b:2380".to_string(), "http://a:2380".to_string()];
        assert_eq!(member_id(&a, "t"), member_id(&b, "t"));
        assert_ne!(member_id(&a, "t"), member_id(&a, "u"));
        assert_eq!(cluster_id(&[1, 2, 3]), cluster_id(&[3, 1, 2]));
        assert_ne!(cluster_id(&[1, 2]), cluster_id(&[1, 2, 3]));
    }
}
