//! The caller's identity: the single seam where a request gets its principal. Today it
//! trusts the `x-accord-actor` metadata entry (development identity); authentication
//! replaces this interceptor and nothing else. Handlers read the `Caller` extension and
//! never take the actor from a request field.
//!
//! The correlation and causation ids of the stored events come from the
//! `x-correlation-id` and `x-causation-id` entries when a caller sends them.

use tonic::{Request, Status};

use crate::domain::{DomainError, values::Principal};
use crate::grpc::status::domain_status;
use crate::store::parse_token;

pub const ACTOR_HEADER: &str = "x-accord-actor";
pub const CORRELATION_HEADER: &str = "x-correlation-id";
pub const CAUSATION_HEADER: &str = "x-causation-id";

/// The authenticated principal of a request.
#[derive(Clone, Debug)]
pub struct Caller(pub Principal);

/// Ids that tie the events of a request to the conversation it belongs to.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
}

/// Interceptor: attaches `Caller` and `Trace`, or refuses the call.
pub fn identify(mut request: Request<()>) -> Result<Request<()>, Status> {
    let metadata = request.metadata();
    let actor = match metadata.get(ACTOR_HEADER) {
        None => return Err(Status::unauthenticated(format!("no caller: send the {ACTOR_HEADER} metadata entry"))),
        Some(value) => value
            .to_str()
            .map_err(|_| DomainError::invalid(ACTOR_HEADER, "is not valid ASCII"))
            .and_then(|v| Principal::parse(ACTOR_HEADER, v))
            .map_err(|e| Status::unauthenticated(e.to_string()))?,
    };
    let token = |header: &str| -> Result<Option<String>, Status> {
        match metadata.get(header) {
            None => Ok(None),
            Some(value) => value
                .to_str()
                .map_err(|_| DomainError::invalid(header, "is not valid ASCII"))
                .and_then(|v| parse_token(header, v))
                .map(Some)
                .map_err(domain_status),
        }
    };
    let trace = Trace { correlation_id: token(CORRELATION_HEADER)?, causation_id: token(CAUSATION_HEADER)? };
    request.extensions_mut().insert(Caller(actor));
    request.extensions_mut().insert(trace);
    Ok(request)
}
