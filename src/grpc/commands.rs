//! `CommandService`: each RPC parses its request into a domain `Command` (naming the
//! bad field on failure), wraps it in an envelope with the caller, the idempotency key
//! and the trace ids, and hands it to the store. One generic `run` does the shared
//! part, so the handlers below are only the parsing that differs.

use prost::Message;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use tracing::{Instrument, info, info_span};

use super::convert::{self as c, optional_id};
use super::identity::{Caller, Trace};
use super::status::{domain_status, store_status};
use crate::domain::{Command, DomainError, values::*};
use crate::proto::{self as pb, command_service_server::CommandService};
use crate::store::{CommandEnvelope, CommandId, InitiativeRef, Store};

#[derive(Clone, Debug)]
pub struct Commands {
    store: Store,
}

impl Commands {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Parses, envelopes and executes one command.
    async fn run<R: Message + HasOptions>(
        &self,
        rpc: &'static str,
        request: Request<R>,
        parse: impl FnOnce(&R) -> Result<(Option<InitiativeRef>, Command), DomainError>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        let caller = request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("no authenticated caller"))?;
        let trace = request.extensions().get::<Trace>().cloned().unwrap_or_default();
        let message = request.into_inner();
        let options = message.options().cloned().unwrap_or_default();
        let command_id = if options.command_id.is_empty() {
            CommandId::generate()
        } else {
            CommandId::parse("options.command_id", &options.command_id).map_err(domain_status)?
        };
        let (target, command) = parse(&message).map_err(domain_status)?;
        let mut fingerprint = Sha256::new();
        fingerprint.update(rpc.as_bytes());
        // The caller is part of the command: the same request from someone else is a
        // different command, never a replay of theirs. (NUL cannot occur in a principal.)
        fingerprint.update([0]);
        fingerprint.update(caller.0.as_str().as_bytes());
        fingerprint.update([0]);
        fingerprint.update(message.encode_to_vec());
        let envelope = CommandEnvelope {
            target,
            command,
            actor: caller.0,
            correlation_id: trace.correlation_id.unwrap_or_else(|| command_id.as_str().to_owned()),
            causation_id: trace.causation_id.unwrap_or_else(|| command_id.as_str().to_owned()),
            command_id,
            expected_version: options.expected_version,
            fingerprint: fingerprint.finalize().into(),
        };
        let span = info_span!("command", rpc, actor = %envelope.actor, command_id = envelope.command_id.as_str(),
            correlation_id = envelope.correlation_id.as_str());
        async {
            let outcome = self.store.execute(&envelope).await.map_err(store_status)?;
            info!(initiative = %outcome.initiative_id, version = outcome.stream_version,
                position = outcome.global_position, replayed = outcome.replayed, "command done");
            Ok(Response::new(pb::CommandResponse {
                initiative_id: outcome.initiative_id.to_string(),
                stream_version: outcome.stream_version,
                global_position: outcome.global_position,
                created_id: outcome.created_id.map(|id| id.to_string()).unwrap_or_default(),
                replayed: outcome.replayed,
            }))
        }
        .instrument(span)
        .await
    }
}

/// Every command request carries `CommandOptions`.
pub trait HasOptions {
    fn options(&self) -> Option<&pb::CommandOptions>;
}

macro_rules! has_options {
    ($($request:ty),+ $(,)?) => {
        $(impl HasOptions for $request {
            fn options(&self) -> Option<&pb::CommandOptions> {
                self.options.as_ref()
            }
        })+
    };
}

has_options!(
    pb::CreateInitiativeRequest,
    pb::UpdateInitiativeRequest,
    pb::ChangeStageRequest,
    pb::ArchiveInitiativeRequest,
    pb::AssignStakeholderRequest,
    pb::RemoveStakeholderRequest,
    pb::ProposeDecisionRequest,
    pb::ReviseDecisionRequest,
    pb::AcceptDecisionRequest,
    pb::RejectDecisionRequest,
    pb::WithdrawDecisionRequest,
    pb::SupersedeDecisionRequest,
    pb::RecordFeedbackRequest,
    pb::ResolveFeedbackRequest,
    pb::ReopenFeedbackRequest,
    pb::RecordSignOffRequest,
    pb::RevokeSignOffRequest,
);

type Reply = Result<Response<pb::CommandResponse>, Status>;

fn target(value: &str) -> Result<Option<InitiativeRef>, DomainError> {
    InitiativeRef::parse("initiative", value).map(Some)
}

fn optional_text(
    field: &str,
    value: Option<&String>,
    parse: impl Fn(&str, &str) -> Result<String, DomainError>,
) -> Result<Option<String>, DomainError> {
    value.map(|v| parse(field, v)).transpose()
}

#[tonic::async_trait]
impl CommandService for Commands {
    async fn create_initiative(&self, request: Request<pb::CreateInitiativeRequest>) -> Reply {
        self.run("CreateInitiative", request, |r| {
            Ok((
                None,
                Command::CreateInitiative {
                    id: InitiativeId::new_v7(),
                    key: InitiativeKey::parse("key", &r.key)?,
                    title: c::title("title", &r.title)?,
                    summary: c::text("summary", &r.summary, false)?,
                    owner: optional_id("owner", &r.owner, Principal::parse)?,
                    stage: c::stage("stage", r.stage, false)?,
                    required_functions: Function::parse_set("required_functions", &r.required_functions)?,
                },
            ))
        })
        .await
    }

    async fn update_initiative(&self, request: Request<pb::UpdateInitiativeRequest>) -> Reply {
        self.run("UpdateInitiative", request, |r| {
            Ok((
                target(&r.initiative)?,
                Command::UpdateInitiative {
                    title: optional_text("title", r.title.as_ref(), c::title)?,
                    summary: optional_text("summary", r.summary.as_ref(), |f, v| c::text(f, v, false))?,
                    owner: r.owner.as_deref().map(|o| Principal::parse("owner", o)).transpose()?,
                    required_functions: Function::parse_set("required_functions", &r.required_functions)?,
                },
            ))
        })
        .await
    }

    async fn change_stage(&self, request: Request<pb::ChangeStageRequest>) -> Reply {
        self.run("ChangeStage", request, |r| {
            let stage =
                c::stage("stage", r.stage, true)?.ok_or_else(|| DomainError::invalid("stage", "is required"))?;
            Ok((target(&r.initiative)?, Command::ChangeStage { stage }))
        })
        .await
    }

    async fn archive_initiative(&self, request: Request<pb::ArchiveInitiativeRequest>) -> Reply {
        self.run("ArchiveInitiative", request, |r| {
            Ok((target(&r.initiative)?, Command::ArchiveInitiative { reason: c::reason("reason", &r.reason, false)? }))
        })
        .await
    }

    async fn assign_stakeholder(&self, request: Request<pb::AssignStakeholderRequest>) -> Reply {
        self.run("AssignStakeholder", request, |r| {
            Ok((
                target(&r.initiative)?,
                Command::AssignStakeholder {
                    principal: Principal::parse("principal", &r.principal)?,
                    function: Function::parse("function", &r.function)?,
                    role: c::role("role", r.role)?,
                },
            ))
        })
        .await
    }

    async fn remove_stakeholder(&self, request: Request<pb::RemoveStakeholderRequest>) -> Reply {
        self.run("RemoveStakeholder", request, |r| {
            Ok((
                target(&r.initiative)?,
                Command::RemoveStakeholder {
                    principal: Principal::parse("principal", &r.principal)?,
                    function: Function::parse("function", &r.function)?,
                    role: c::role("role", r.role)?,
                },
            ))
        })
        .await
    }

    async fn propose_decision(&self, request: Request<pb::ProposeDecisionRequest>) -> Reply {
        self.run("ProposeDecision", request, |r| {
            Ok((
                target(&r.initiative)?,
                Command::ProposeDecision {
                    decision_id: DecisionId::new_v7(),
                    content: c::decision_content("content", r.content.as_ref())?,
                    required_functions: Function::parse_set("required_functions", &r.required_functions)?,
                    supersedes: optional_id("supersedes", &r.supersedes, DecisionId::parse)?,
                },
            ))
        })
        .await
    }

    async fn revise_decision(&self, request: Request<pb::ReviseDecisionRequest>) -> Reply {
        self.run("ReviseDecision", request, |r| {
            Ok((
                target(&r.initiative)?,
                Command::ReviseDecision {
                    decision_id: DecisionId::parse("decision_id", &r.decision_id)?,
                    kind: c::revision_kind("kind", r.kind)?,
                    content: c::decision_content("content", r.content.as_ref())?,
                    required_functions: Function::parse_set("required_functions", &r.required_functions)?,
                    note: c::reason("note", &r.note, false)?,
                },
            ))
        })
        .await
    }

    async fn accept_decision(&self, request: Request<pb::AcceptDecisionRequest>) -> Reply {
        self.run("AcceptDecision", request, |r| {
            let reason = c::reason("override_reason", &r.override_reason, false)?;
            Ok((
                target(&r.initiative)?,
                Command::AcceptDecision {
                    decision_id: DecisionId::parse("decision_id", &r.decision_id)?,
                    override_reason: Some(reason).filter(|r| !r.trim().is_empty()),
                },
            ))
        })
        .await
    }

    async fn reject_decision(&self, request: Request<pb::RejectDecisionRequest>) -> Reply {
        self.run("RejectDecision", request, |r| {
            Ok((
                target(&r.initiative)?,
                Command::RejectDecision {
                    decision_id: DecisionId::parse("decision_id", &r.decision_id)?,
                    reason: c::reason("reason", &r.reason, true)?,
                },
            ))
        })
        .await
    }

    async fn withdraw_decision(&self, request: Request<pb::WithdrawDecisionRequest>) -> Reply {
        self.run("WithdrawDecision", request, |r| {
            Ok((
                target(&r.initiative)?,
                Command::WithdrawDecision {
                    decision_id: DecisionId::parse("decision_id", &r.decision_id)?,
                    reason: c::reason("reason", &r.reason, false)?,
                },
            ))
        })
        .await
    }

    async fn supersede_decision(&self, request: Request<pb::SupersedeDecisionRequest>) -> Reply {
        self.run("SupersedeDecision", request, |r| {
            Ok((
                target(&r.initiative)?,
                Command::SupersedeDecision {
                    decision_id: DecisionId::parse("decision_id", &r.decision_id)?,
                    superseded_by: DecisionId::parse("superseded_by", &r.superseded_by)?,
                },
            ))
        })
        .await
    }

    async fn record_feedback(&self, request: Request<pb::RecordFeedbackRequest>) -> Reply {
        self.run("RecordFeedback", request, |r| {
            Ok((
                target(&r.initiative)?,
                Command::RecordFeedback {
                    feedback_id: FeedbackId::new_v7(),
                    decision_id: optional_id("decision_id", &r.decision_id, DecisionId::parse)?,
                    function: Function::parse("function", &r.function)?,
                    kind: c::feedback_kind("kind", r.kind)?,
                    source: c::feedback_source("source", r.source)?,
                    body: c::text("body", &r.body, true)?,
                },
            ))
        })
        .await
    }

    async fn resolve_feedback(&self, request: Request<pb::ResolveFeedbackRequest>) -> Reply {
        self.run("ResolveFeedback", request, |r| {
            Ok((
                target(&r.initiative)?,
                Command::ResolveFeedback {
                    feedback_id: FeedbackId::parse("feedback_id", &r.feedback_id)?,
                    resolution: c::reason("resolution", &r.resolution, true)?,
                },
            ))
        })
        .await
    }

    async fn reopen_feedback(&self, request: Request<pb::ReopenFeedbackRequest>) -> Reply {
        self.run("ReopenFeedback", request, |r| {
            Ok((
                target(&r.initiative)?,
                Command::ReopenFeedback {
                    feedback_id: FeedbackId::parse("feedback_id", &r.feedback_id)?,
                    reason: c::reason("reason", &r.reason, false)?,
                },
            ))
        })
        .await
    }

    async fn record_sign_off(&self, request: Request<pb::RecordSignOffRequest>) -> Reply {
        self.run("RecordSignOff", request, |r| {
            Ok((
                target(&r.initiative)?,
                Command::RecordSignOff {
                    decision_id: DecisionId::parse("decision_id", &r.decision_id)?,
                    function: Function::parse("function", &r.function)?,
                    verdict: c::verdict("verdict", r.verdict)?,
                    reason: c::reason("reason", &r.reason, false)?,
                    comment: c::reason("comment", &r.comment, false)?,
                    revision: r.revision,
                },
            ))
        })
        .await
    }

    async fn revoke_sign_off(&self, request: Request<pb::RevokeSignOffRequest>) -> Reply {
        self.run("RevokeSignOff", request, |r| {
            Ok((
                target(&r.initiative)?,
                Command::RevokeSignOff {
                    decision_id: DecisionId::parse("decision_id", &r.decision_id)?,
                    function: Function::parse("function", &r.function)?,
                },
            ))
        })
        .await
    }
}
