//! Fuzz target: decoding and validation of every `CommandService` request.
//!
//! The first byte picks one of the 17 request types (in the order of the `match` below,
//! which is the service's order in `proto/accord/v1/commands.proto`); the rest is decoded
//! as that protobuf message, as tonic decodes it off the wire. A message that decodes then
//! goes through everything the service does with it before the store sees it: the
//! idempotency key (`options.command_id`), the request's parse function in
//! `accord::grpc::parse`, the re-encoding its fingerprint hashes, and, for a refused
//! request, the mapping of the error to a gRPC response. The property: none of it ever
//! panics, whatever the bytes, and a refusal's message stays within `MAX_ERROR_BYTES`.

#![no_main]

use std::fmt::Debug;

use accord::app::CommandId;
use accord::domain::{Command, DomainError, values::MAX_ERROR_BYTES};
use accord::grpc::commands::HasOptions;
use accord::grpc::parse::{self, Parsed};
use accord::grpc::status::domain_status;
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// The number of `CommandService` RPCs, one request type each.
const RPC_COUNT: u8 = 17;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, message)) = data.split_first() else { return };
    match selector % RPC_COUNT {
        0 => check(message, parse::create_initiative),
        1 => check(message, parse::update_initiative),
        2 => check(message, parse::change_stage),
        3 => check(message, parse::archive_initiative),
        4 => check(message, parse::assign_stakeholder),
        5 => check(message, parse::remove_stakeholder),
        6 => check(message, parse::propose_decision),
        7 => check(message, parse::revise_decision),
        8 => check(message, parse::accept_decision),
        9 => check(message, parse::reject_decision),
        10 => check(message, parse::withdraw_decision),
        11 => check(message, parse::supersede_decision),
        12 => check(message, parse::record_feedback),
        13 => check(message, parse::resolve_feedback),
        14 => check(message, parse::reopen_feedback),
        15 => check(message, parse::record_sign_off),
        _ => check(message, parse::revoke_sign_off),
    }
});

/// Decodes `bytes` as a request `R` and, if it decodes, runs the service's input handling
/// on it. Unlike the service, which stops at the first refusal, both the command id and
/// the command are parsed every time, so that one input exercises both.
fn check<R: Message + Default + PartialEq + Debug + HasOptions>(bytes: &[u8], parse: fn(&R) -> Parsed) {
    let Ok(request) = R::decode(bytes) else { return };

    // A command's fingerprint hashes the request re-encoded, so that a retry with the same
    // command id is recognised: re-encoding must give back exactly the request decoded.
    let encoded = request.encode_to_vec();
    assert_eq!(R::decode(encoded.as_slice()).ok().as_ref(), Some(&request), "re-encoding changed the request");

    // An empty command id means "generate one"; any other is parsed.
    if let Some(options) = request.options()
        && !options.command_id.is_empty()
        && let Err(error) = CommandId::parse("options.command_id", &options.command_id)
    {
        refuse(error);
    }

    match parse(&request) {
        // Only a creation starts a stream; every other command must name its initiative.
        Ok((target, command)) => {
            let creates = matches!(command, Command::CreateInitiative { .. });
            assert_eq!(target.is_none(), creates, "a command without a target must be a creation: {command:?}");
        }
        Err(error) => refuse(error),
    }
}

/// What the service answers to a refused request: a status with a `BadRequest` detail,
/// as the HTTP response tonic sends (the message and details become header values).
fn refuse(error: DomainError) {
    let status = domain_status(error);
    assert!(status.message().len() <= MAX_ERROR_BYTES, "a {}-byte message", status.message().len());
    let _response = status.into_http::<()>();
}
