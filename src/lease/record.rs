//! The persisted form of a lease: one mvcc app meta record per lease, written in the same
//! batch as the Raft entry that granted, checkpointed or revoked it, so leases survive
//! restarts and travel inside snapshot images. Used by the server's apply and recovery.

/// App meta names of lease records start with this.
pub const PREFIX: &[u8] = b"lease/";

/// The record name of lease `id`.
pub fn name(id: i64) -> Vec<u8> {
    let mut n = PREFIX.to_vec();
    n.extend_from_slice(&id.to_be_bytes());
    n
}

/// Encodes (granted TTL, checkpointed remaining TTL; 0 = none) in seconds.
pub fn encode(ttl_secs: i64, remaining_secs: i64) -> Vec<u8> {
    let mut v = ttl_secs.to_be_bytes().to_vec();
    v.extend_from_slice(&remaining_secs.to_be_bytes());
    v
}

/// Decodes a record: `(id, ttl_secs, remaining_secs)`; `None` if it is not one of ours.
pub fn decode(name: &[u8], value: &[u8]) -> Option<(i64, i64, i64)> {
    let id = name.strip_prefix(PREFIX)?;
    let id = i64::from_be_bytes(id.try_into().ok()?);
    if value.len() != 16 {
        return None;
    }
    let ttl = i64::from_be_bytes(value[..8].try_into().ok()?);
    let remaining = i64::from_be_bytes(value[8..].try_into().ok()?);
    Some((id, ttl, remaining))
}

#[cfg(test)]
mod tests {
    #[test]
    fn records_round_trip() {
        let n = super::name(7);
        assert_eq!(super::decode(&n, &super::encode(10, 4)), Some((7, 10, 4)));
        assert_eq!(super::decode(b"member/1", &super::encode(1, 0)), None);
    }
}
