//! Memory and disk footprint of the MVCC store on sled, to compare with etcd (which holds
//! 100k keys of 256-byte values in a 36 MiB file and 141 MiB RSS on the reference machine).
//!
//! ```text
//! mvcc_footprint load <dir> <keys> <value_bytes> <cache_mib>   # fresh store, load, sync
//! mvcc_footprint open <dir> <cache_mib>                        # a restart: reopen only
//! mvcc_footprint defrag <dir> <cache_mib>                      # reopen, then defrag
//! ```
//! Prints the bytes on disk (apparent and allocated) after `sync_durable`, the store's
//! `db_size`, and this process's RSS (VmRSS, VmHWM from /proc/self/status), in total and
//! per key. Keys are `key/00000000`..; values are `value_bytes` bytes; puts go 1,000 per
//! apply batch. Run it in release mode, one measurement per process.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use raftkv::mvcc::*;

/// (apparent bytes, allocated bytes) of every file under `dir`.
fn disk_bytes(dir: &Path) -> (u64, u64) {
    let mut total = (0, 0);
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let meta = entry.as_ref().expect("entry").metadata().expect("metadata");
        let (apparent, allocated) = if meta.is_dir() {
            disk_bytes(&entry.expect("entry").path())
        } else {
            (meta.len(), meta.blocks() * 512)
        };
        total = (total.0 + apparent, total.1 + allocated);
    }
    total
}

/// A field of /proc/self/status in KiB, as bytes.
fn proc_status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("KiB");
    kib * 1024
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn load(store: &mut Store<SledBackend>, keys: u64, value_bytes: usize) {
    let value = vec![b'v'; value_bytes];
    for first in (0..keys).step_by(1000) {
        let applied = store.applied_index() + 1;
        let mut b = store.begin_apply().expect("begin_apply");
        for i in first..(first + 1000).min(keys) {
            let req = PutRequest {
                key: format!("key/{i:08}").into_bytes(),
                value: value.clone(),
                ..Default::default()
            };
            b.put(&req).expect("put");
        }
        b.commit(applied).expect("commit");
    }
}

fn report(what: &str, dir: &Path, store: &Store<SledBackend>, rss_before: u64) {
    let keys = store.current_revision().max(2) as u64 - 1;
    let (apparent, allocated) = disk_bytes(dir);
    let rss = proc_status_bytes("VmRSS:");
    let hwm = proc_status_bytes("VmHWM:");
    let db = store.db_size().expect("db_size");
    println!("{what}: {keys} keys");
    println!(
        "  disk: {:.1} MiB apparent, {:.1} MiB allocated ({:.0} B/key); db_size {:.1} MiB, in use {:.1} MiB",
        mib(apparent),
        mib(allocated),
        allocated as f64 / keys as f64,
        mib(db.db_size_bytes),
        mib(db.db_size_in_use_bytes)
    );
    println!(
        "  rss: {:.1} MiB (peak {:.1} MiB; {:.1} MiB before the store; {:.0} B/key over that)",
        mib(rss),
        mib(hwm),
        mib(rss_before),
        (rss.saturating_sub(rss_before)) as f64 / keys as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: mvcc_footprint load <dir> <keys> <value_bytes> <cache_mib> \
                 | open <dir> <cache_mib> | defrag <dir> <cache_mib>";
    let arg = |i: usize| args.get(i).unwrap_or_else(|| panic!("{usage}"));
    let num = |i: usize| arg(i).parse::<u64>().unwrap_or_else(|_| panic!("{usage}"));
    let dir = Path::new(arg(2));
    let rss_before = proc_status_bytes("VmRSS:");
    let cache_mib = if arg(1) == "load" { num(5) } else { num(3) };
    let config = SledConfig {
        cache_capacity_bytes: cache_mib << 20,
    };
    let started = Instant::now();
    let mut store = Store::open(SledBackend::open(dir, config).expect("open")).expect("open");
    match arg(1).as_str() {
        "load" => {
            load(&mut store, num(3), num(4) as usize);
            store.sync_durable().expect("sync_durable");
        }
        "open" => {}
        "defrag" => {
            let defrag = store.defrag().expect("defrag");
            println!("defrag: {defrag:?}");
        }
        _ => panic!("{usage}"),
    }
    let what = format!(
        "{} with a {cache_mib} MiB sled cache, {:.1} s",
        arg(1),
        started.elapsed().as_secs_f64()
    );
    report(&what, dir, &store, rss_before);
}
