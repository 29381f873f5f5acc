//! Fuzz target: the JSON Lines import (`accord audit import`, `AuditService.ImportEvents`).
//!
//! The bytes are read as UTF-8, lossily (an import receives its lines as protobuf
//! strings, which are always UTF-8), and split into lines, numbered from 1. The lines go
//! - in order, to a fresh `Importer`, until it refuses one (an import stops at its first
//!   refused line), and then to its `finish`;
//! - each on its own to the line parser `ExportLine::parse`, and those that parse,
//!   "rechained", to a second `Importer`: each gets the `prev_hash` and `hash` that link
//!   it to the previous event of its stream. Mutated bytes never carry a valid SHA-256
//!   chain, so without this the fuzzer would stop at the hash check and never reach what
//!   an import does with the events: the fold (`evolve`) of arbitrary payloads, the
//!   idempotency records, and the projection `finish` builds.
//!
//! The property: none of it ever panics, whatever the bytes, and a finished import
//! counts the events it accepted.

#![no_main]

use std::collections::HashMap;

use accord::grpc::status::store_status;
use accord::store::audit::Importer;
use accord::store::{ExportLine, StoreError, ZERO_HASH, event_hash};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<(usize, &str)> = text.lines().enumerate().map(|(index, line)| (index + 1, line)).collect();

    import(lines.iter().map(|&(line_no, line)| (line_no, line.to_owned())));
    import(rechained(&lines).into_iter());
});

/// Feeds `lines` to a fresh importer the way `run_import` does, and finishes it.
fn import(lines: impl Iterator<Item = (usize, String)>) {
    let mut importer = Importer::new();
    let mut accepted = 0;
    for (line_no, line) in lines {
        match importer.accept(line_no, &line) {
            Ok(event) => accepted += u64::from(event.is_some()),
            Err(error) => return refuse(error),
        }
        // `run_import` takes the finished commands once per batch; a batch of one line
        // is the most demanding case.
        let _ = importer.take_commands();
    }
    match importer.finish() {
        Ok((_, _, report)) => assert_eq!(report.events, accepted, "the import's report miscounts its events"),
        Err(error) => refuse(error),
    }
}

/// Every line through the line parser (all of them, before an importer may stop at one);
/// those that parse, each given the hashes that chain it to the previous event of its
/// stream (as rechained here), re-encoded as an export writes them.
fn rechained(lines: &[(usize, &str)]) -> Vec<(usize, String)> {
    let mut heads: HashMap<_, Vec<u8>> = HashMap::new();
    lines
        .iter()
        .filter_map(|&(line_no, line)| {
            let mut event = ExportLine::parse(line_no, line).ok()?;
            let head = heads.entry(event.stream_id).or_insert_with(|| ZERO_HASH.to_vec());
            event.prev_hash.clone_from(head);
            event.hash = event_hash(&event.prev_hash, &event.content()).to_vec();
            head.clone_from(&event.hash);
            Some((line_no, ExportLine::from(&event).to_json().ok()?))
        })
        .collect()
}

/// What the service answers to a refused import: the error as a gRPC response.
fn refuse(error: StoreError) {
    let _response = store_status(error).into_http::<()>();
}
