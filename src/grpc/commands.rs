//! `CommandService`: each RPC parses its request into a domain `Command` (naming the
//! bad field on failure), wraps it in an envelope with the caller, the idempotency key
//! and the trace ids, and hands it to the store. One generic `run` does the shared
//! part, so the handlers below are only the parsing that differs.

use std::time::Instant;

use prost::Message;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use tracing::{Instrument, info, info_span, warn};

use super::parse;
use super::status::{domain_status, store_status};
use crate::app::{App, CommandEnvelope, CommandId};
use crate::domain::{Authority, Command, DomainError};
use crate::live::Feed;
use crate::metrics;
use crate::proto::{self as pb, command_service_server::CommandService};
use crate::security::{Caller, Trace};
use crate::store::StoreError;

#[derive(Clone, Debug)]
pub struct Commands {
    app: App,
    /// Told after every append, so this server's watchers see it without waiting for
    /// the database's notification.
    feed: Feed,
}

impl Commands {
    pub fn new(app: App, feed: Feed) -> Self {
        Self { app, feed }
    }

    /// Parses, envelopes and executes one command.
    async fn run<R: Message + HasOptions>(
        &self,
        rpc: &'static str,
        request: Request<R>,
        parse: impl FnOnce(&R) -> parse::Parsed,
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
        match (&target, &command) {
            (Some(target), _) => super::record_initiative(target),
            (None, Command::CreateInitiative { key, .. }) => super::record_initiative(key),
            (None, _) => {}
        }
        let mut fingerprint = Sha256::new();
        fingerprint.update(rpc.as_bytes());
        // The caller is part of the command: the same request from someone else is a
        // different command, never a replay of theirs. (NUL cannot occur in a principal.)
        fingerprint.update([0]);
        fingerprint.update(caller.principal.as_str().as_bytes());
        fingerprint.update([0]);
        let request = message.encode_to_vec();
        fingerprint.update(&request);
        let envelope = CommandEnvelope {
            target,
            command,
            actor: caller.principal.clone(),
            authority: if caller.is_administrator() { Authority::Administrator } else { Authority::Member },
            teams: caller.teams.clone(),
            correlation_id: trace.correlation_id.unwrap_or_else(|| command_id.as_str().to_owned()),
            causation_id: trace.causation_id.unwrap_or_else(|| command_id.as_str().to_owned()),
            command_id,
            expected_version: options.expected_version,
            fingerprint: fingerprint.finalize().into(),
        };
        let span = info_span!("command", rpc, actor = %envelope.actor, command_id = envelope.command_id.as_str(),
            correlation_id = envelope.correlation_id.as_str());
        async {
            let started = Instant::now();
            let executed = self.app.execute_sized(envelope.clone(), request.len()).await;
            metrics::append_latency(started.elapsed());
            let outcome = match executed {
                Ok(outcome) => {
                    metrics::events_appended(outcome.events_appended);
                    if outcome.events_appended > 0 {
                        self.feed.acknowledged(outcome.initiative_id, outcome.global_position);
                    }
                    outcome
                }
                Err(error) => {
                    if let StoreError::Domain(DomainError::PermissionDenied(reason)) = &error {
                        warn!(target: "accord::security", event = "decision_right_denied", principal = %envelope.actor,
                            rpc, initiative = %envelope.target.as_ref().map(ToString::to_string).unwrap_or_default(), %reason, "command refused: decision right");
                    }
                    return Err(store_status(error));
                }
            };
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

#[tonic::async_trait]
impl CommandService for Commands {
    async fn create_initiative(&self, request: Request<pb::CreateInitiativeRequest>) -> Reply {
        self.run("CreateInitiative", request, parse::create_initiative).await
    }

    async fn update_initiative(&self, request: Request<pb::UpdateInitiativeRequest>) -> Reply {
        self.run("UpdateInitiative", request, parse::update_initiative).await
    }

    async fn change_stage(&self, request: Request<pb::ChangeStageRequest>) -> Reply {
        self.run("ChangeStage", request, parse::change_stage).await
    }

    async fn archive_initiative(&self, request: Request<pb::ArchiveInitiativeRequest>) -> Reply {
        self.run("ArchiveInitiative", request, parse::archive_initiative).await
    }

    async fn assign_stakeholder(&self, request: Request<pb::AssignStakeholderRequest>) -> Reply {
        self.run("AssignStakeholder", request, parse::assign_stakeholder).await
    }

    async fn remove_stakeholder(&self, request: Request<pb::RemoveStakeholderRequest>) -> Reply {
        self.run("RemoveStakeholder", request, parse::remove_stakeholder).await
    }

    async fn propose_decision(&self, request: Request<pb::ProposeDecisionRequest>) -> Reply {
        self.run("ProposeDecision", request, parse::propose_decision).await
    }

    async fn revise_decision(&self, request: Request<pb::ReviseDecisionRequest>) -> Reply {
        self.run("ReviseDecision", request, parse::revise_decision).await
    }

    async fn accept_decision(&self, request: Request<pb::AcceptDecisionRequest>) -> Reply {
        self.run("AcceptDecision", request, parse::accept_decision).await
    }

    async fn reject_decision(&self, request: Request<pb::RejectDecisionRequest>) -> Reply {
        self.run("RejectDecision", request, parse::reject_decision).await
    }

    async fn withdraw_decision(&self, request: Request<pb::WithdrawDecisionRequest>) -> Reply {
        self.run("WithdrawDecision", request, parse::withdraw_decision).await
    }

    async fn supersede_decision(&self, request: Request<pb::SupersedeDecisionRequest>) -> Reply {
        self.run("SupersedeDecision", request, parse::supersede_decision).await
    }

    async fn record_feedback(&self, request: Request<pb::RecordFeedbackRequest>) -> Reply {
        self.run("RecordFeedback", request, parse::record_feedback).await
    }

    async fn resolve_feedback(&self, request: Request<pb::ResolveFeedbackRequest>) -> Reply {
        self.run("ResolveFeedback", request, parse::resolve_feedback).await
    }

    async fn reopen_feedback(&self, request: Request<pb::ReopenFeedbackRequest>) -> Reply {
        self.run("ReopenFeedback", request, parse::reopen_feedback).await
    }

    async fn record_sign_off(&self, request: Request<pb::RecordSignOffRequest>) -> Reply {
        self.run("RecordSignOff", request, parse::record_sign_off).await
    }

    async fn revoke_sign_off(&self, request: Request<pb::RevokeSignOffRequest>) -> Reply {
        self.run("RevokeSignOff", request, parse::revoke_sign_off).await
    }
}
