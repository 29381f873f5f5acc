//! The test harness: a real Accord server on a loopback port over a fresh PostgreSQL
//! database (one per test, from `#[sqlx::test]`), with typed clients.

use std::net::SocketAddr;

use accord::proto::{
    self as pb, alignment_service_client::AlignmentServiceClient, command_service_client::CommandServiceClient,
};
use accord::store::PgStore;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tonic::{
    Request, Status,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

pub type Commands = CommandServiceClient<InterceptedService<Channel, As>>;

/// Sends every request as one principal (the development identity header).
#[derive(Clone)]
pub struct As(pub Option<String>);

impl Interceptor for As {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(actor) = &self.0 {
            let value = actor.parse().map_err(|_| Status::internal("bad test actor"))?;
            request.metadata_mut().insert("x-accord-actor", value);
        }
        Ok(request)
    }
}

pub struct TestApp {
    pub address: SocketAddr,
    pub store: PgStore,
    pub pool: PgPool,
    channel: Channel,
    stop: Option<oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn spawn(pool: PgPool) -> TestApp {
        let store = PgStore::new(pool.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let server_store = store.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            accord::server::serve(listener, server_store, shutdown).await.expect("server runs");
        });
        let channel = Channel::from_shared(format!("http://{address}")).expect("uri").connect_lazy();
        TestApp { address, store, pool, channel, stop: Some(stop) }
    }

    /// A command client acting as `actor`.
    pub fn as_(&self, actor: &str) -> Commands {
        CommandServiceClient::with_interceptor(self.channel.clone(), As(Some(actor.to_owned())))
    }

    /// A command client that sends no identity.
    pub fn anonymous(&self) -> Commands {
        CommandServiceClient::with_interceptor(self.channel.clone(), As(None))
    }

    pub fn queries(&self) -> AlignmentServiceClient<Channel> {
        AlignmentServiceClient::new(self.channel.clone())
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Every stored event as (position, stream, version, type, hash): to show a failed
    /// command left the log unchanged.
    pub async fn log(&self) -> Vec<(i64, uuid::Uuid, i64, String, Vec<u8>)> {
        sqlx::query_as("SELECT position, stream_id, stream_version, event_type, hash FROM events ORDER BY position")
            .fetch_all(&self.pool)
            .await
            .expect("read log")
    }

    pub async fn alignment(&self, initiative: &str) -> pb::InitiativeAlignment {
        self.queries()
            .get_alignment(pb::GetAlignmentRequest { initiative: initiative.to_owned() })
            .await
            .expect("get alignment")
            .into_inner()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn options(command_id: &str) -> Option<pb::CommandOptions> {
    Some(pb::CommandOptions { command_id: command_id.to_owned(), expected_version: None })
}

pub fn expecting(version: u64) -> Option<pb::CommandOptions> {
    Some(pb::CommandOptions { command_id: String::new(), expected_version: Some(version) })
}

pub fn content(title: &str, proposal: &str) -> Option<pb::DecisionContent> {
    Some(pb::DecisionContent {
        title: title.to_owned(),
        context: "Checkout needs a payment provider.".to_owned(),
        options: vec!["Stripe".to_owned(), "Adyen".to_owned(), "Build in-house".to_owned()],
        proposal: proposal.to_owned(),
        rationale: "Fastest to integrate; good API.".to_owned(),
    })
}

pub const OWNER: &str = "pm@example.com";
pub const DRIVER: &str = "dana@example.com";
pub const ENGINEER: &str = "eve@example.com";
pub const DESIGNER: &str = "dee@example.com";
pub const BUSINESS: &str = "bo@example.com";

/// The ids of the SPEC section 4 set-up.
pub struct Checkout {
    pub initiative_id: String,
    pub decision_id: String,
}

/// Creates CHECKOUT-42 with a driver and one approver per function, and proposes
/// "Use Stripe for payments" (scenario steps 2-3, without the concern).
pub async fn checkout(app: &TestApp) -> Checkout {
    let owner = app.as_(OWNER);
    let created = owner
        .clone()
        .create_initiative(pb::CreateInitiativeRequest {
            options: None,
            key: "CHECKOUT-42".into(),
            title: "New checkout".into(),
            summary: "Rebuild checkout around a payment provider.".into(),
            owner: String::new(),
            stage: pb::Stage::Definition.into(),
            required_functions: vec![],
        })
        .await
        .expect("create initiative")
        .into_inner();
    let people = [
        (DRIVER, "product", pb::Role::Driver),
        (ENGINEER, "engineering", pb::Role::Approver),
        (DESIGNER, "design", pb::Role::Approver),
        (BUSINESS, "business", pb::Role::Approver),
    ];
    for (principal, function, role) in people {
        owner
            .clone()
            .assign_stakeholder(pb::AssignStakeholderRequest {
                options: None,
                initiative: "CHECKOUT-42".into(),
                principal: principal.into(),
                function: function.into(),
                role: role.into(),
            })
            .await
            .expect("assign stakeholder");
    }
    let proposed = app
        .as_(DRIVER)
        .propose_decision(pb::ProposeDecisionRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            content: content("Use Stripe for payments", "Integrate Stripe Checkout."),
            required_functions: vec![],
            supersedes: String::new(),
        })
        .await
        .expect("propose decision")
        .into_inner();
    Checkout { initiative_id: created.initiative_id, decision_id: proposed.created_id }
}

pub async fn sign(
    app: &TestApp,
    who: &str,
    decision_id: &str,
    function: &str,
    verdict: pb::Verdict,
    reason: &str,
) -> Result<pb::CommandResponse, Status> {
    app.as_(who)
        .record_sign_off(pb::RecordSignOffRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            decision_id: decision_id.into(),
            function: function.into(),
            verdict: verdict.into(),
            reason: reason.into(),
            comment: String::new(),
            revision: None,
        })
        .await
        .map(|r| r.into_inner())
}

pub fn function_state(view: &pb::InitiativeAlignment, function: &str) -> pb::FunctionState {
    view.functions.iter().find(|f| f.function == function).map(|f| f.state()).unwrap_or(pb::FunctionState::Unspecified)
}
