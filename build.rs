//! Compiles `proto/*.proto` into Rust at build time (included by `src/proto.rs`).
//!
//! The `.proto` files are parsed by `protox`, a protobuf compiler written in Rust, so a
//! fresh machine needs nothing but cargo: no system `protoc`. `tonic-prost-build` then
//! generates the messages (prost) and the gRPC clients and servers (tonic) into `OUT_DIR`.
//! It also writes the compiled `FileDescriptorSet` (see `proto::FILE_DESCRIPTOR_SET`).
//! This script must not do anything else (no network, no files outside `OUT_DIR`).

use std::path::{Path, PathBuf};

use protox::prost::Message as _;

/// The files to compile; imports between them resolve against `PROTO_ROOT`.
const PROTO_FILES: &[&str] = &[
    "mvccpb/kv.proto",
    "authpb/auth.proto",
    "etcdserverpb/rpc.proto",
    "raftkv/raftpb.proto",
];

/// The include root the paths above (and the `import` lines) are relative to.
const PROTO_ROOT: &str = "proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files: Vec<_> = PROTO_FILES
        .iter()
        .map(|f| Path::new(PROTO_ROOT).join(f))
        .collect();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [PROTO_ROOT])?;
    // Kept for gRPC server reflection and for the test that checks service and method names.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("raftkv_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        // Keys, values and entry data become `bytes::Bytes`: decoding from a network
        // buffer then shares it instead of copying, and `raft::types` uses `Bytes` too.
        .bytes(".")
        .compile_fds(descriptors)?;
    Ok(())
}
