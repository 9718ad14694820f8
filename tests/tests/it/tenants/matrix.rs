//! Every RPC of the five services against every kind of caller.

use super::*;

fn ok<T>(result: Result<T, Status>) -> Result<(), Status> {
    result.map(drop)
}

/// The result of every RPC of the five services, each with a request naming `tenant` (24 RPCs;
/// for IngestStream, the first batch's result; for the server streams, opening them).
async fn every_rpc(
    channel: &GrpcChannel,
    token: Token,
    tenant: &str,
) -> Vec<(&'static str, Result<(), Status>)> {
    let mut ingest = TouchpointServiceClient::new(channel.clone());
    let mut profile = ProfileServiceClient::new(channel.clone());
    let mut predict = PredictionServiceClient::new(channel.clone());
    let mut decide = DecisionServiceClient::new(channel.clone());
    let mut kpi = KpiServiceClient::new(channel.clone());
    let t = || tenant.to_owned();
    let c = || customer(tenant, "matrix-1");
    let stream_first = {
        let batch = IngestStreamRequest {
            batch_id: 1,
            events: vec![event(tenant, "matrix-stream-1", "matrix-1", "page_view")],
        };
        match ingest
            .ingest_stream(req(token, tokio_stream::iter(vec![batch])))
            .await
        {
            Err(status) => Err(status),
            Ok(response) => {
                let mut acks = response.into_inner();
                match acks.message().await {
                    Err(status) => Err(status),
                    Ok(None) => Err(Status::internal("the stream ended without an answer")),
                    Ok(Some(ack)) => match ack.error {
                        Some(error) => Err(Status::new(Code::from(error.code), error.message)),
                        None => Ok(()),
                    },
                }
            }
        }
    };
    vec![
        (
            "ingest.Ingest",
            ok(ingest
                .ingest(req(
                    token,
                    IngestRequest {
                        events: vec![event(tenant, "matrix-e1", "matrix-1", "page_view")],
                    },
                ))
                .await),
        ),
        ("ingest.IngestStream", stream_first),
        (
            "ingest.Identify",
            ok(ingest
                .identify(req(
                    token,
                    IdentifyRequest {
                        tenant_id: t(),
                        anonymous_id: "anon-m".into(),
                        customer_id: "matrix-1".into(),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "ingest.ListRejected",
            ok(ingest
                .list_rejected(req(
                    token,
                    ListRejectedRequest {
                        tenant_id: t(),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "profile.GetProfile",
            ok(profile
                .get_profile(req(
                    token,
                    GetProfileRequest {
                        customer: c(),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "profile.EraseCustomer",
            ok(profile
                .erase_customer(req(
                    token,
                    EraseCustomerRequest {
                        customer: customer(tenant, "matrix-erased"),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "profile.ReserveContact",
            ok(profile
                .reserve_contact(req(
                    token,
                    ReserveContactRequest {
                        customer: c(),
                        channel: Channel::Email as i32,
                        action_id: "a".into(),
                        decision_id: "d".into(),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "profile.CommitContact",
            ok(profile
                .commit_contact(req(
                    token,
                    CommitContactRequest {
                        customer: c(),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "profile.ReleaseContact",
            ok(profile
                .release_contact(req(
                    token,
                    ReleaseContactRequest {
                        customer: c(),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "profile.WatchSignals",
            ok(profile
                .watch_signals(req(
                    token,
                    WatchSignalsRequest {
                        tenant_id: t(),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "predict.Score",
            ok(predict
                .score(req(
                    token,
                    ScoreRequest {
                        customer: c(),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "predict.ListModels",
            ok(predict
                .list_models(req(
                    token,
                    ListModelsRequest {
                        tenant_id: t(),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "predict.ActivateModel",
            ok(predict
                .activate_model(req(
                    token,
                    ActivateModelRequest {
                        tenant_id: t(),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "predict.RegisterModel",
            ok(predict
                .register_model(req(
                    token,
                    RegisterModelRequest {
                        tenant_id: t(),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "decide.Decide",
            ok(decide
                .decide(req(token, web_decision(tenant, "matrix-1")))
                .await),
        ),
        (
            "decide.ReportOutcome",
            ok(decide
                .report_outcome(req(
                    token,
                    ReportOutcomeRequest {
                        tenant_id: t(),
                        decision_id: "d-unknown".into(),
                        action_id: "welcome".into(),
                        kind: OutcomeKind::Click as i32,
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "decide.ExplainDecision",
            ok(decide
                .explain_decision(req(
                    token,
                    ExplainDecisionRequest {
                        tenant_id: t(),
                        decision_id: "d-unknown".into(),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "decide.ReplayDecision",
            ok(decide
                .replay_decision(req(
                    token,
                    ReplayDecisionRequest {
                        tenant_id: t(),
                        decision_id: "d-unknown".into(),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "decide.GetConfig",
            ok(decide
                .get_config(req(
                    token,
                    GetConfigRequest {
                        tenant_id: t(),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "decide.PutConfig",
            ok(decide
                .put_config(req(
                    token,
                    PutConfigRequest {
                        tenant_id: t(),
                        yaml: CONFIG.replace("TENANT", tenant),
                        validate_only: true,
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "decide.WatchOutbound",
            ok(decide
                .watch_outbound(req(
                    token,
                    WatchOutboundRequest {
                        tenant_id: t(),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "kpi.QueryMetrics",
            ok(kpi
                .query_metrics(req(
                    token,
                    QueryMetricsRequest {
                        tenant_id: t(),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "kpi.GetExperiment",
            ok(kpi
                .get_experiment(req(
                    token,
                    GetExperimentRequest {
                        tenant_id: t(),
                        ..Default::default()
                    },
                ))
                .await),
        ),
        (
            "kpi.ListMetrics",
            ok(kpi
                .list_metrics(req(token, ListMetricsRequest { tenant_id: t() }))
                .await),
        ),
    ]
}

/// Every RPC answered `code` (with a message) for this caller.
fn assert_every(results: &[(&str, Result<(), Status>)], code: Code, who: &str) {
    assert_eq!(results.len(), 24, "every RPC of the five services");
    for (rpc, result) in results {
        match result {
            Err(status) if status.code() == code => {}
            other => panic!("{who}: {rpc} answered {other:?}, expected {code:?}"),
        }
    }
}

/// No RPC was refused for who was calling (it may fail for other reasons: the requests of the
/// matrix are minimal, and INVALID_ARGUMENT or NOT_FOUND means the service looked at them).
fn assert_none_refused(results: &[(&str, Result<(), Status>)], who: &str) {
    assert_eq!(results.len(), 24, "every RPC of the five services");
    for (rpc, result) in results {
        if let Err(status) = result {
            assert!(
                !matches!(
                    status.code(),
                    Code::PermissionDenied | Code::Unauthenticated
                ),
                "{who}: {rpc} was refused: {status:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_token_reaches_its_own_tenant_through_every_rpc_and_no_other() {
    let engine = Engine::start("matrix", &[]).await;
    let channel = engine.channel().await;

    let foreign = every_rpc(&channel, Token::Bearer(BETA_TOKEN), ALPHA).await;
    assert_every(&foreign, Code::PermissionDenied, "beta's token on alpha");
    for (rpc, result) in &foreign {
        let message = result.as_ref().unwrap_err().message();
        assert_eq!(
            message, "the token of tenant `beta` cannot act on tenant `alpha`",
            "{rpc}"
        );
    }
    assert_every(
        &every_rpc(&channel, Token::None, ALPHA).await,
        Code::Unauthenticated,
        "no token",
    );
    assert_every(
        &every_rpc(&channel, Token::Bearer("not-a-configured-token"), ALPHA).await,
        Code::Unauthenticated,
        "an unknown token",
    );
    assert_every(
        &every_rpc(&channel, Token::Raw("Basic YWxwaGE6c2VjcmV0"), ALPHA).await,
        Code::Unauthenticated,
        "a basic credential",
    );
    assert_none_refused(
        &every_rpc(&channel, Token::Bearer(ALPHA_TOKEN), ALPHA).await,
        "alpha",
    );
    assert_none_refused(
        &every_rpc(&channel, Token::Bearer(BETA_TOKEN), BETA).await,
        "beta",
    );
    assert_none_refused(
        &every_rpc(&channel, Token::Bearer(SERVICE_TOKEN), ALPHA).await,
        "the service token",
    );

    // Requests acting on every tenant need the service token.
    let mut profile = ProfileServiceClient::new(channel.clone());
    let everyone = profile
        .watch_signals(req(
            Token::Bearer(ALPHA_TOKEN),
            WatchSignalsRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(everyone.code(), Code::PermissionDenied);
    profile
        .watch_signals(req(
            Token::Bearer(SERVICE_TOKEN),
            WatchSignalsRequest::default(),
        ))
        .await
        .unwrap();
}
