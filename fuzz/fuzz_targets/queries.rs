//! Fuzz target: the input parsing of `AlignmentService.ListAlignments` and
//! `WatchAlignments`, the queries with more than an id to parse.
//!
//! The same bytes are decoded as a `WatchAlignmentsRequest`; one that decodes goes
//! through its filter's parsing (`watch_filter`), and a filter it gives must keep every
//! initiative the request named. They are also decoded as a `ListAlignmentsRequest`;
//! one that decodes goes through the filters' validation (`list_filter`) and, with the
//! filters it gives, the page token's decoding (`decode_token`: base64, UTF-8, and the fingerprint of the filters it was
//! issued for). A refusal is mapped to the gRPC response the service sends. The
//! property: none of it ever panics, whatever the bytes.

#![no_main]

use accord::grpc::queries::{decode_token, list_filter, watch_filter};
use accord::grpc::status::domain_status;
use accord::proto as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = pb::WatchAlignmentsRequest::decode(data) {
        match watch_filter(&request) {
            Ok(filter) => assert_eq!(filter.initiatives.len(), request.initiatives.len()),
            Err(error) => {
                let _response = domain_status(error).into_http::<()>();
            }
        }
    }
    let Ok(request) = pb::ListAlignmentsRequest::decode(data) else { return };
    let refusal = match list_filter(&request) {
        Ok(filter) => match decode_token(&filter, &request.page_token) {
            // An empty token starts at the beginning; only a non-empty one resumes.
            Ok(after) => {
                assert_eq!(after.is_none(), request.page_token.is_empty(), "a non-empty token must resume somewhere");
                None
            }
            Err(error) => Some(error),
        },
        Err(error) => Some(error),
    };
    if let Some(error) = refusal {
        let _response = domain_status(error).into_http::<()>();
    }
});
