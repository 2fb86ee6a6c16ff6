//! Damage on purpose, for rehearsals: `raftkvctl debug rot-value` flips bits in every
//! stored version of one key's value in a STOPPED member's store, in place, without a new
//! revision and without the log knowing. That is what bit rot on one disk looks like to
//! raftkv, and what the corruption checks (`--experimental-initial-corrupt-check`, the
//! periodic check) exist to catch; `docs/operations.md` section 6 has the drill.
//!
//! Never use it on a member you want to keep: the damage is permanent until the member is
//! rebuilt (remove it, wipe its data dir, add it again). Offline only: a running member
//! holds the store's lock, and the open waits for it, then fails. Called by `src/ctl/`.

use std::path::Path;

use super::storage::db_dir;
use super::ServerError;
use crate::mvcc::backend::WriteBatch;
use crate::mvcc::{decode_key_value, encode_key_value, Backend, Bucket, SledBackend, SledConfig};

/// Key-bucket entries read per scan page.
const PAGE_ENTRIES: usize = 10_000;

/// Flips bit 5 of every byte of every stored value of `key` in the store of `data_dir`
/// (an empty value gets one byte instead) and makes it durable. Returns how many versions
/// were changed; errors if the key has none.
pub fn rot_value(data_dir: &Path, key: &[u8]) -> Result<usize, ServerError> {
    let db = db_dir(data_dir);
    if !db.exists() {
        return Err(ServerError::Config(format!("no store at {}", db.display())));
    }
    let storage = |what: &str, e: &dyn std::fmt::Display| {
        ServerError::Storage(format!("{what} {}: {e}", db.display()))
    };
    let backend =
        SledBackend::open(&db, SledConfig::default()).map_err(|e| storage("opening", &e))?;
    let mut batch = WriteBatch::default();
    let mut from = Vec::new();
    loop {
        let page = backend
            .scan(Bucket::Key, &from, None, PAGE_ENTRIES)
            .map_err(|e| storage("reading", &e))?;
        let Some((last, _)) = page.last() else {
            break;
        };
        from = crate::mvcc::backend::key_after(last);
        for (raw_key, raw_value) in page {
            let mut kv = decode_key_value(&raw_value).map_err(|e| storage("decoding", &e))?;
            if kv.key != key {
                continue;
            }
            if kv.value.is_empty() {
                kv.value.push(b'!');
            } else {
                kv.value.iter_mut().for_each(|b| *b ^= 0x20);
            }
            batch.put(Bucket::Key, raw_key, encode_key_value(&kv));
        }
    }
    let changed = batch.ops.len();
    if changed == 0 {
        return Err(ServerError::Config(format!(
            "key {:?} has no stored version in {}",
            String::from_utf8_lossy(key),
            db.display()
        )));
    }
    backend.write(batch).map_err(|e| storage("writing", &e))?;
    backend.sync_durable().map_err(|e| storage("syncing", &e))?;
    Ok(changed)
}
