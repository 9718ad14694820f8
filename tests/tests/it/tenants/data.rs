//! Data one tenant wrote, read and changed with another tenant's token.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_cannot_read_or_change_another_tenants_data() {
    let engine = Engine::start("data", &[]).await;
    let channel = engine.channel().await;
    let mut ingest = TouchpointServiceClient::new(channel.clone());
    let mut profile = ProfileServiceClient::new(channel.clone());
    let mut decide = DecisionServiceClient::new(channel.clone());
    let alpha = Token::Bearer(ALPHA_TOKEN);
    let beta = Token::Bearer(BETA_TOKEN);

    // The same customer id in both tenants: alpha's buys, beta's only looks.
    let accepted = ingest
        .ingest(req(
            alpha,
            IngestRequest {
                events: vec![event(ALPHA, "a-1", "c1", "purchase")],
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .accepted;
    assert_eq!(accepted, 1);
    ingest
        .ingest(req(
            beta,
            IngestRequest {
                events: vec![event(BETA, "b-1", "c1", "page_view")],
            },
        ))
        .await
        .unwrap();
    // A batch smuggling an event of alpha's into beta's is refused whole: nothing of it lands.
    let smuggled = ingest
        .ingest(req(
            beta,
            IngestRequest {
                events: vec![
                    event(BETA, "b-2", "c1", "page_view"),
                    event(ALPHA, "b-3", "c1", "purchase"),
                ],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(smuggled.code(), Code::PermissionDenied);
    // A stream: the foreign batch is refused, the stream goes on with beta's own.
    let stream = ingest
        .ingest_stream(req(
            beta,
            tokio_stream::iter(vec![
                IngestStreamRequest {
                    batch_id: 1,
                    events: vec![event(ALPHA, "b-4", "c1", "purchase")],
                },
                IngestStreamRequest {
                    batch_id: 2,
                    events: vec![event(BETA, "b-5", "c1", "page_view")],
                },
            ]),
        ))
        .await
        .unwrap();
    let mut acks = stream.into_inner();
    let first = acks.message().await.unwrap().unwrap();
    assert_eq!(
        first.error.map(|e| e.code),
        Some(Code::PermissionDenied as i32)
    );
    let second = acks.message().await.unwrap().unwrap();
    assert!(second.error.is_none(), "{second:?}");
    assert_eq!(second.accepted, 1);

    let alpha_profile = wait_until(
        Duration::from_secs(10),
        "alpha's purchase in its profile",
        || {
            let mut profile = profile.clone();
            async move {
                let p = profile
                    .get_profile(req(
                        alpha,
                        GetProfileRequest {
                            customer: customer(ALPHA, "c1"),
                            ..Default::default()
                        },
                    ))
                    .await
                    .ok()?
                    .into_inner();
                let p = p.profile?;
                p.event_type_counters.contains_key("purchase").then_some(p)
            }
        },
    )
    .await;
    assert!(!alpha_profile.event_type_counters.contains_key("page_view"));
    let beta_profile = wait_until(Duration::from_secs(10), "beta's two page views", || {
        let mut profile = profile.clone();
        async move {
            let p = profile
                .get_profile(req(
                    beta,
                    GetProfileRequest {
                        customer: customer(BETA, "c1"),
                        ..Default::default()
                    },
                ))
                .await
                .ok()?
                .into_inner()
                .profile?;
            let views = p.event_type_counters.get("page_view")?.total;
            (views >= 2).then_some(p)
        }
    })
    .await;
    assert!(
        !beta_profile.event_type_counters.contains_key("purchase"),
        "none of alpha's purchases (direct, smuggled or streamed) reached beta's customer: {:?}",
        beta_profile.event_type_counters.keys().collect::<Vec<_>>()
    );

    // Alpha's decision: beta can neither explain, replay nor report on it, even by its id.
    let put = decide
        .put_config(req(
            alpha,
            PutConfigRequest {
                tenant_id: ALPHA.into(),
                yaml: CONFIG.replace("TENANT", ALPHA),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(put.errors.is_empty(), "{:?}", put.errors);
    let decision = wait_until(Duration::from_secs(10), "alpha's decision", || {
        let mut decide = decide.clone();
        async move {
            let d = decide
                .decide(req(alpha, web_decision(ALPHA, "c1")))
                .await
                .ok()?
                .into_inner();
            (!d.actions.is_empty()).then_some(d)
        }
    })
    .await;
    let id = decision.decision_id.clone();
    let explained = decide
        .explain_decision(req(
            beta,
            ExplainDecisionRequest {
                tenant_id: BETA.into(),
                decision_id: id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(explained.code(), Code::NotFound, "{explained:?}");
    let replayed = decide
        .replay_decision(req(
            beta,
            ReplayDecisionRequest {
                tenant_id: BETA.into(),
                decision_id: id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(replayed.code(), Code::NotFound, "{replayed:?}");
    let reported = decide
        .report_outcome(req(
            beta,
            ReportOutcomeRequest {
                tenant_id: BETA.into(),
                decision_id: id.clone(),
                action_id: "welcome".into(),
                kind: OutcomeKind::Click as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(reported.code(), Code::NotFound, "{reported:?}");
    // Beta sees no configuration of alpha's; alpha still explains its own decision.
    let beta_config = decide
        .get_config(req(
            beta,
            GetConfigRequest {
                tenant_id: BETA.into(),
                ..Default::default()
            },
        ))
        .await;
    match beta_config {
        Ok(config) => assert!(!config.into_inner().yaml.contains("tenant: alpha")),
        Err(status) => assert_eq!(status.code(), Code::NotFound),
    }
    decide
        .explain_decision(req(
            alpha,
            ExplainDecisionRequest {
                tenant_id: ALPHA.into(),
                decision_id: id,
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    // Beta cannot erase alpha's customer.
    let erase = profile
        .erase_customer(req(
            beta,
            EraseCustomerRequest {
                customer: customer(ALPHA, "c1"),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(erase.code(), Code::PermissionDenied);
    let still = profile
        .get_profile(req(
            alpha,
            GetProfileRequest {
                customer: customer(ALPHA, "c1"),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(still.found, "alpha's customer is still there");
}
