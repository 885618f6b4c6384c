//! The Airlock gRPC API, package `airlock.v1`, generated from `proto/airlock/v1/*.proto`.
//!
//! Protobuf types stop at the crate borders: each plane converts them into its own
//! domain types with `TryFrom`, so the request path never touches prost types.

#![forbid(unsafe_code)]
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Package `airlock.v1`.
pub mod v1 {
    tonic::include_proto!("airlock.v1");
}

/// The encoded `FileDescriptorSet` of every Airlock proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/airlock_descriptor.bin"));
