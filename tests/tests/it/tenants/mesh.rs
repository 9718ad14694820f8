//! Service tokens between the processes of the loop.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_present_their_service_token_to_each_other() {
    let dir = std::env::temp_dir().join(format!("iee-tenants-mesh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = write_tokens(&dir);
    let service_token = dir.join("service-token");
    std::fs::write(&service_token, format!("{SERVICE_TOKEN}\n")).unwrap();
    // Every process authenticates its callers and presents the service token to the others.
    let common = vec![
        ("IEE_SERVER__AUTH__ENABLED".to_owned(), "true".to_owned()),
        (
            "IEE_SERVER__AUTH__TOKENS_FILE".to_owned(),
            tokens.display().to_string(),
        ),
        (
            "IEE_CLIENT__TOKEN_FILE".to_owned(),
            service_token.display().to_string(),
        ),
    ];
    let services = iee_tests::LoopServices::start_with_envs(2, &[], &[], &common).await;
    let decide_at = services.decide.as_ref().unwrap().endpoint();
    let channel = iee_tests::connect_retrying(|| {
        let endpoint = tonic::transport::Endpoint::from_shared(decide_at.clone()).unwrap();
        async move { endpoint.connect().await }
    })
    .await;
    let mut decide = DecisionServiceClient::new(channel);
    let alpha = Token::Bearer(ALPHA_TOKEN);
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
    // Decide reads the profile (routed across two profile nodes), reserves the contact and
    // scores with predict, each with the service token: nothing is degraded.
    let decision = wait_until(Duration::from_secs(20), "a full decision", || {
        let mut decide = decide.clone();
        async move {
            let d = decide
                .decide(req(alpha, web_decision(ALPHA, "mesh-1")))
                .await
                .ok()?
                .into_inner();
            (!d.actions.is_empty() && d.degraded.is_empty()).then_some(d)
        }
    })
    .await;
    assert!(
        !decision.models.is_empty(),
        "scored by predict: {decision:?}"
    );
    // The profile nodes themselves refuse a tenant token naming another tenant, and a call
    // without a token.
    let profile_at = services.profiles.node(0).addr.clone();
    let profile_channel = tonic::transport::Endpoint::from_shared(format!("http://{profile_at}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut profile = ProfileServiceClient::new(profile_channel);
    let denied = profile
        .get_profile(req(
            Token::Bearer(BETA_TOKEN),
            GetProfileRequest {
                customer: customer(ALPHA, "mesh-1"),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let anonymous = profile
        .get_profile(req(
            Token::None,
            GetProfileRequest {
                customer: customer(ALPHA, "mesh-1"),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    drop(services);
    let _ = std::fs::remove_dir_all(&dir);
}
