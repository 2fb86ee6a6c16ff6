//! Workloads: concurrent clients issuing operations and recording them in the history.
//!
//! - `register`: `keys` registers (`jepsen/r0`...), `clients_per_key` clients on each. Ops:
//!   read (50%), write (25%), compare-and-swap (25%). Every value written is unique in the
//!   run; a cas expects the value its client last read (so it often succeeds). A read is a
//!   linearizable Range; a write a Put inside a Txn; a cas a Txn comparing the value (missing
//!   key or another value: the compare fails, recorded as `fail`).
//! - `append`: clients run transactions of 1..=3 micro-ops (append an integer or read the
//!   list) over `keys` lists (`jepsen/a0`...). A client reads the lists the txn touches, then
//!   commits a Txn guarded by every touched key's mod revision, so the reads it reports are
//!   the state its appends were applied to; a lost guard is retried, then recorded `fail`.
//!
//! Each client talks to one member (client i to member i mod n) with a per-op timeout and
//! paces itself to reach `rate` ops/s in total. After an `info` it continues as a fresh
//! process id (`process + clients`). This module records; it does not judge.

use std::sync::Arc;
use std::time::Duration;

use raftkv::proto::etcdserverpb::{
    compare, request_op, Compare, PutRequest, RequestOp, TxnRequest,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

use crate::client::{Client, OpError};
use crate::history::{MicroF, MicroOp, MicroValue, OpType, Recorder, Value, F};

/// Which workload, and its shape.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    /// `register` or `append`.
    pub kind: WorkloadKind,
    /// Registers or lists.
    pub keys: usize,
    /// Concurrent clients per key (register) or in total = keys * this (append).
    pub clients_per_key: usize,
    /// Total ops/s target over all clients.
    pub rate: f64,
    /// Per-op client timeout.
    pub op_timeout: Duration,
}

/// The workloads this harness knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Single-key read / write / cas.
    Register,
    /// Multi-key append transactions.
    Append,
}

/// One client's fixed inputs.
struct ClientCtx {
    recorder: Arc<Recorder>,
    client: Client,
    process: u64,
    clients: u64,
    think: Duration,
    rng: StdRng,
    /// Counter behind [`unique_value`].
    next_value: i64,
}

/// Runs every client until `stop` fires; returns when all have finished their last op.
pub async fn run(
    spec: &WorkloadSpec,
    channels: &[Channel],
    recorder: Arc<Recorder>,
    seed: u64,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let clients = spec.keys * spec.clients_per_key;
    let think = Duration::from_secs_f64(clients as f64 / spec.rate.max(1.0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let ctx = ClientCtx {
            recorder: recorder.clone(),
            client: Client::new(channels[c % channels.len()].clone(), spec.op_timeout),
            process: c as u64,
            clients: clients as u64,
            think,
            next_value: 0,
            rng: StdRng::seed_from_u64(seed ^ (c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        };
        let (kind, keys, stop) = (spec.kind, spec.keys, stop.clone());
        let key = c % spec.keys;
        tasks.push(tokio::spawn(async move {
            match kind {
                WorkloadKind::Register => register_client(ctx, key, stop).await,
                WorkloadKind::Append => append_client(ctx, keys, stop).await,
            }
        }));
    }
    for task in tasks {
        task.await.expect("workload client panicked");
    }
}

/// Process ids of the final reads: far above any client's, one per key.
pub const FINAL_READ_PROCESS_BASE: u64 = 1 << 40;

/// After the nemesis has healed everything: one read of every register, each by a fresh
/// process (Jepsen's final reads), so a write lost in the last fault still shows up. A
/// no-op for `append`.
pub async fn final_reads(spec: &WorkloadSpec, channels: &[Channel], recorder: &Recorder) {
    if spec.kind != WorkloadKind::Register {
        return;
    }
    for k in 0..spec.keys {
        let key = format!("jepsen/r{k}");
        let process = FINAL_READ_PROCESS_BASE + k as u64;
        let mut client = Client::new(channels[k % channels.len()].clone(), spec.op_timeout * 5);
        recorder.op(
            process,
            OpType::Invoke,
            F::Read,
            Some(key.clone()),
            Value::Null,
        );
        let (kind, value) = register_op(&mut client, &key, F::Read, &Value::Null).await;
        recorder.op(process, kind, F::Read, Some(key), value);
    }
}

/// Records the completion and moves to a fresh process after an `info`.
fn complete(ctx: &mut ClientCtx, kind: OpType, f: F, key: Option<String>, value: Value) {
    ctx.recorder.op(ctx.process, kind, f, key, value);
    if kind == OpType::Info {
        ctx.process += ctx.clients;
    }
}

/// Sleeps the think time with jitter, or returns false once the run is over.
async fn pace(ctx: &mut ClientCtx, stop: &tokio::sync::watch::Receiver<bool>) -> bool {
    let jitter = ctx.rng.gen_range(0.5..1.5);
    tokio::time::sleep(ctx.think.mul_f64(jitter)).await;
    !*stop.borrow()
}

async fn register_client(mut ctx: ClientCtx, key: usize, stop: tokio::sync::watch::Receiver<bool>) {
    let key = format!("jepsen/r{key}");
    // The value this client last read: a cas expects it, so cas succeeds often even though
    // every written value is unique (unique values are what give the checker its teeth:
    // a stale read cannot be explained by some other write of the same value).
    let mut last_read: Option<i64> = None;
    while pace(&mut ctx, &stop).await {
        let roll = ctx.rng.gen_range(0..4);
        let (f, value) = match roll {
            0 | 1 => (F::Read, Value::Null),
            2 => (F::Write, Value::Int(unique_value(&mut ctx))),
            _ => {
                let expected = last_read.unwrap_or(0);
                (F::Cas, Value::Cas([expected, unique_value(&mut ctx)]))
            }
        };
        ctx.recorder.op(
            ctx.process,
            OpType::Invoke,
            f,
            Some(key.clone()),
            value.clone(),
        );
        let (kind, result) = register_op(&mut ctx.client, &key, f, &value).await;
        if let (OpType::Ok, Value::Int(read)) = (kind, &result) {
            last_read = (f == F::Read).then_some(*read).or(last_read);
        }
        complete(&mut ctx, kind, f, Some(key.clone()), result);
    }
}

/// A value no other client and no earlier op of this client used: counter * clients +
/// client number (the client number survives process renumbering after an `info`).
fn unique_value(ctx: &mut ClientCtx) -> i64 {
    ctx.next_value += 1;
    ctx.next_value * ctx.clients as i64 + (ctx.process % ctx.clients) as i64
}

/// One register op: its completion type and the value to record.
async fn register_op(client: &mut Client, key: &str, f: F, value: &Value) -> (OpType, Value) {
    let outcome = match (f, value) {
        (F::Read, _) => match client.get(key).await {
            Ok(found) => return (OpType::Ok, read_value(found.map(|(v, _)| v))),
            // A read has no effect: whatever went wrong, it certainly did not happen.
            Err(_) => return (OpType::Fail, Value::Null),
        },
        (F::Write, Value::Int(v)) => client.txn(put_txn(key, *v, None)).await.map(|_| true),
        (F::Cas, Value::Cas([expected, new])) => client
            .txn(put_txn(key, *new, Some(*expected)))
            .await
            .map(|r| r.succeeded),
        _ => unreachable!("register op {f:?} with value {value:?}"),
    };
    match outcome {
        Ok(true) => (OpType::Ok, value.clone()),
        Ok(false) | Err(OpError::Fail(_)) => (OpType::Fail, value.clone()),
        Err(OpError::Info(_)) => (OpType::Info, value.clone()),
    }
}

fn read_value(bytes: Option<Vec<u8>>) -> Value {
    match bytes {
        None => Value::Null,
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            Value::Int(
                text.parse()
                    .unwrap_or_else(|_| panic!("register holds {text:?}")),
            )
        }
    }
}

fn put_op(key: &str, value: String) -> RequestOp {
    let put = PutRequest {
        key: key.as_bytes().to_vec().into(),
        value: value.into_bytes().into(),
        ..Default::default()
    };
    RequestOp {
        request: Some(request_op::Request::RequestPut(put)),
    }
}

/// A Txn writing `new` to `key`, guarded by `value == expected` when given.
fn put_txn(key: &str, new: i64, expected: Option<i64>) -> TxnRequest {
    let compare = expected.map(|e| Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Value as i32,
        key: key.as_bytes().to_vec().into(),
        target_union: Some(compare::TargetUnion::Value(
            e.to_string().into_bytes().into(),
        )),
        ..Default::default()
    });
    TxnRequest {
        compare: compare.into_iter().collect(),
        success: vec![put_op(key, new.to_string())],
        failure: vec![],
    }
}

async fn append_client(mut ctx: ClientCtx, keys: usize, stop: tokio::sync::watch::Receiver<bool>) {
    while pace(&mut ctx, &stop).await {
        let count = ctx.rng.gen_range(1..=3);
        let mut micro = Vec::new();
        for _ in 0..count {
            let key = format!("jepsen/a{}", ctx.rng.gen_range(0..keys));
            if ctx.rng.gen_bool(0.5) {
                let element = unique_value(&mut ctx);
                micro.push(MicroOp(MicroF::Append, key, MicroValue::Int(element)));
            } else {
                micro.push(MicroOp(MicroF::Read, key, MicroValue::Null));
            }
        }
        ctx.recorder.op(
            ctx.process,
            OpType::Invoke,
            F::Append,
            None,
            Value::Txn(micro.clone()),
        );
        let (kind, result) = match append_txn(&mut ctx.client, &micro).await {
            Ok(done) => (OpType::Ok, done),
            Err(OpError::Fail(_)) => (OpType::Fail, micro),
            Err(OpError::Info(_)) => (OpType::Info, micro),
        };
        complete(&mut ctx, kind, F::Append, None, Value::Txn(result));
    }
}

/// Reads the touched lists, then commits the appends guarded by their mod revisions; up to
/// three attempts when another client got there first.
async fn append_txn(client: &mut Client, micro: &[MicroOp]) -> Result<Vec<MicroOp>, OpError> {
    let mut keys: Vec<&str> = micro.iter().map(|m| m.1.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    for _ in 0..3 {
        let mut lists = std::collections::BTreeMap::new();
        let mut guards = Vec::new();
        for key in &keys {
            let found = client.get(key).await.map_err(|e| match e {
                // Nothing has been written yet: any error here is a certain failure.
                OpError::Fail(r) | OpError::Info(r) => OpError::Fail(r),
            })?;
            let (list, revision) = match found {
                Some((bytes, revision)) => (parse_list(&bytes), revision),
                None => (Vec::new(), 0),
            };
            lists.insert(key.to_string(), list);
            guards.push(Compare {
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Mod as i32,
                key: key.as_bytes().to_vec().into(),
                target_union: Some(compare::TargetUnion::ModRevision(revision)),
                ..Default::default()
            });
        }
        let done = apply_micro(micro, &mut lists);
        let appended: Vec<&str> = micro
            .iter()
            .filter(|m| m.0 == MicroF::Append)
            .map(|m| m.1.as_str())
            .collect();
        let puts = lists
            .iter()
            .filter(|(key, _)| appended.contains(&key.as_str()))
            .map(|(key, list)| put_op(key, format_list(list)))
            .collect();
        let request = TxnRequest {
            compare: guards,
            success: puts,
            failure: vec![],
        };
        if client.txn(request).await?.succeeded {
            return Ok(done);
        }
    }
    Err(OpError::Fail("mod revision guard kept failing".into()))
}

/// Applies the micro-ops in order to `lists`, filling in what each read sees.
fn apply_micro(
    micro: &[MicroOp],
    lists: &mut std::collections::BTreeMap<String, Vec<i64>>,
) -> Vec<MicroOp> {
    let mut done = Vec::new();
    for MicroOp(f, key, value) in micro {
        let list = lists.get_mut(key).expect("every touched key was read");
        match (f, value) {
            (MicroF::Append, MicroValue::Int(element)) => list.push(*element),
            (MicroF::Read, _) => {
                done.push(MicroOp(
                    MicroF::Read,
                    key.clone(),
                    MicroValue::List(list.clone()),
                ));
                continue;
            }
            _ => unreachable!("micro-op {f:?} {value:?}"),
        }
        done.push(MicroOp(*f, key.clone(), value.clone()));
    }
    done
}

fn parse_list(bytes: &[u8]) -> Vec<i64> {
    let text = String::from_utf8_lossy(bytes);
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("list element"))
        .collect()
}

fn format_list(list: &[i64]) -> String {
    list.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
