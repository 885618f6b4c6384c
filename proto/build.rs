//! Compiles `airlock/v1/*.proto` with protox (pure Rust; no `protoc` needed) and
//! generates prost messages and tonic services. Also writes the encoded descriptor
//! set for gRPC server reflection.

use prost::Message;
use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "airlock/v1/policy.proto",
    "airlock/v1/bundle.proto",
    "airlock/v1/node.proto",
    "airlock/v1/audit.proto",
    "airlock/v1/approval.proto",
    "airlock/v1/tool.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("airlock_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        // Archives are fanned out to every watcher: `Bytes` clones share one buffer.
        .bytes(".airlock.v1.BundleServiceWatchResponse.archive")
        .bytes(".airlock.v1.BundleServiceGetResponse.archive")
        .bytes(".airlock.v1.BundleServicePublishRequest.archive")
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
