//! Generates the gRPC code for `proto/accord/v1/*.proto` with tonic/prost, using the
//! protoc shipped in the `protoc-bin-vendored` crate so no system protoc is needed.
//! The file descriptor set is written too: server reflection serves it.

use std::{env, error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { env::set_var("PROTOC", protoc) };

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let protos = [
        "proto/accord/v1/types.proto",
        "proto/accord/v1/commands.proto",
        "proto/accord/v1/alignment.proto",
        "proto/accord/v1/audit.proto",
        "proto/accord/v1/webhooks.proto",
    ];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("accord_descriptor.bin"))
        .compile_protos(&protos, &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    // sqlx::migrate! embeds these; rebuild when one changes.
    println!("cargo:rerun-if-changed=migrations");
    Ok(())
}
