//! The prediction service: built-in models until one is activated, registration checks,
//! activation reaching every running replica, a corrupt activation refused while the previous
//! model keeps serving, and online learning from outcome events.

use std::{collections::BTreeMap, time::Duration};

use iee_api::{
    ingest::{IngestRequest, TouchpointApi, TouchpointClient},
    pb::common::{Channel, CustomerRef, Event, Money, PropertyValue, property_value::Kind},
    predict::{
        ActivateModelRequest, ChurnQuery, FeatureVector, LifetimeValueQuery, ListModelsRequest,
        ModelKind as ProtoKind, ModelRef, ModelRole, PredictApi, PredictClient, PredictError,
        PropensityQuery, RegisterModelRequest, SatisfactionQuery, ScoreRequest,
    },
};
use iee_predict::model::{
    ARTIFACT_FORMAT, Kind as ModelKind, LogisticModel, ModelArtifact, ModelBody,
    encoder::{Encoder, NumericInput},
};
use iee_store::{ModelVersionMeta, RedisConfig, StoreConfig, Stores};
use iee_test_support::{RedisServer, ServerProcess, free_port, wait_until};
use iee_tests::{event, metric_value, scrape_metrics, spawn_standalone};

const SHARDS: &str = "16";

fn customer(id: &str) -> Option<CustomerRef> {
    Some(CustomerRef {
        tenant_id: "acme".into(),
        customer_id: id.into(),
        anonymous_id: String::new(),
    })
}

/// A churn model over two catalogue features with known weights.
fn churn_artifact(version: &str, w_recency: f64, intercept: f64) -> ModelArtifact {
    ModelArtifact {
        format: ARTIFACT_FORMAT,
        model_id: "churn-test".into(),
        version: version.into(),
        kind: ModelKind::Churn,
        description: "test model".into(),
        created_at_ms: 1,
        feature_names: vec![
            "recency.days_since_last_seen".into(),
            "frequency.purchases".into(),
        ],
        training_examples: 100,
        metrics: BTreeMap::from([("roc_auc".to_owned(), 0.8)]),
        training_data: BTreeMap::new(),
        body: ModelBody::Logistic(LogisticModel {
            encoder: Encoder {
                numeric: vec![
                    NumericInput {
                        name: "recency.days_since_last_seen".into(),
                        mean: 10.0,
                        scale: 5.0,
                    },
                    NumericInput {
                        name: "frequency.purchases".into(),
                        mean: 2.0,
                        scale: 1.0,
                    },
                ],
                categorical: Vec::new(),
            },
            weights: vec![w_recency, -0.5],
            intercept,
            horizon_days: 90.0,
        }),
    }
}

fn explicit(recency: f64, purchases: f64) -> FeatureVector {
    FeatureVector {
        numeric: [
            ("recency.days_since_last_seen".to_owned(), recency),
            ("frequency.purchases".to_owned(), purchases),
        ]
        .into_iter()
        .collect(),
        categorical: Default::default(),
    }
}

fn churn_request(features: FeatureVector) -> ScoreRequest {
    ScoreRequest {
        customer: customer("c-1"),
        features: Some(features),
        churn: Some(ChurnQuery {}),
        top_features: 2,
        ..ScoreRequest::default()
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

async fn predict_client(process: &ServerProcess) -> PredictClient {
    PredictClient::connect(process.endpoint()).await.unwrap()
}

fn field_of<T: std::fmt::Debug>(result: Result<T, PredictError>) -> String {
    match result {
        Err(PredictError::InvalidArgument { field, .. }) => field,
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_models_score_every_kind_from_the_profile() {
    let iee = spawn_standalone(&[("IEE_CLUSTER__SHARD_COUNT", SHARDS)]);
    let ingest = TouchpointClient::connect(iee.endpoint()).await.unwrap();
    let predict = predict_client(&iee).await;
    let purchase = |id: &str, amount: i64| Event {
        r#type: "purchase".into(),
        value: Some(Money {
            amount_minor: amount,
            currency: "EUR".into(),
        }),
        ..event(id, "c-1")
    };
    ingest
        .ingest(IngestRequest {
            events: vec![
                event("p-1", "c-1"),
                purchase("p-2", 1_500),
                purchase("p-3", 2_500),
            ],
        })
        .await
        .unwrap();
    let request = ScoreRequest {
        customer: customer("c-1"),
        churn: Some(ChurnQuery {}),
        satisfaction: Some(SatisfactionQuery {}),
        lifetime_value: Some(LifetimeValueQuery { horizon: None }),
        propensity: Some(PropensityQuery {
            action_ids: vec!["offer-a".into(), "offer-b".into()],
            channel: Channel::Web as i32,
            sample: true,
            seed: 42,
            ..PropensityQuery::default()
        }),
        return_features: true,
        ..ScoreRequest::default()
    };
    // The profile service applies the events asynchronously: wait for them to show.
    let scored = wait_until(Duration::from_secs(10), "the profile to be scored", || {
        let predict = predict.clone();
        let request = request.clone();
        async move {
            let r = predict.score(request).await.ok()?;
            (r.profile_version >= 3).then_some(r)
        }
    })
    .await;
    let features = scored.features.unwrap();
    assert_eq!(features.numeric["frequency.purchases"], 2.0);
    let churn = scored.churn.unwrap();
    assert_eq!(churn.model.unwrap().model_id, "builtin-churn");
    assert!((churn.probability - 0.5).abs() < 1e-12);
    let satisfaction = scored.satisfaction.unwrap();
    let total = satisfaction.promoter + satisfaction.passive + satisfaction.detractor;
    assert!((total - 1.0).abs() < 1e-9, "{satisfaction:?}");
    let clv = scored.lifetime_value.unwrap();
    assert!(clv.expected_purchases > 0.0 && clv.probability_alive > 0.0);
    assert_eq!(scored.propensities.len(), 2);
    for p in &scored.propensities {
        assert!(p.mean > 0.0 && p.mean < 1.0 && p.stddev > 0.0, "{p:?}");
    }
    assert_eq!(scored.seed, 42);
    // The same seed draws the same samples.
    let again = predict.score(request.clone()).await.unwrap();
    assert_eq!(
        again
            .propensities
            .iter()
            .map(|p| p.sample)
            .collect::<Vec<_>>(),
        scored
            .propensities
            .iter()
            .map(|p| p.sample)
            .collect::<Vec<_>>()
    );

    // Bad requests name their field.
    let none = ScoreRequest {
        customer: customer("c-1"),
        ..ScoreRequest::default()
    };
    assert_eq!(field_of(predict.score(none).await), "churn");
    let mut bad_action = request.clone();
    bad_action.propensity.as_mut().unwrap().action_ids = vec!["ok".into(), String::new()];
    assert_eq!(
        field_of(predict.score(bad_action).await),
        "propensity.action_ids[1]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_checks_the_artifact_and_activation_serves_it() {
    let iee = spawn_standalone(&[("IEE_CLUSTER__SHARD_COUNT", SHARDS)]);
    let predict = predict_client(&iee).await;
    let register = |bytes: Vec<u8>| RegisterModelRequest {
        tenant_id: "acme".into(),
        artifact: bytes,
    };
    assert_eq!(
        field_of(
            predict
                .register_model(register(b"{not json".to_vec()))
                .await
        ),
        "artifact"
    );
    let mut unknown = churn_artifact("v1", 1.0, 0.0);
    unknown.feature_names.push("no.such.feature".into());
    assert_eq!(
        field_of(predict.register_model(register(unknown.to_json())).await),
        "artifact.feature_names"
    );

    let v1 = churn_artifact("v1", 0.8, -0.2);
    let created = predict
        .register_model(register(v1.to_json()))
        .await
        .unwrap();
    assert!(created.created);
    let again = predict
        .register_model(register(v1.to_json()))
        .await
        .unwrap();
    assert!(
        !again.created,
        "registering the same version again changes nothing"
    );
    let changed = churn_artifact("v1", 0.1, 0.0);
    assert!(matches!(
        predict.register_model(register(changed.to_json())).await,
        Err(PredictError::AlreadyExists(_))
    ));

    let activated = predict
        .activate_model(ActivateModelRequest {
            tenant_id: "acme".into(),
            champion: Some(ModelRef {
                model_id: "churn-test".into(),
                version: "v1".into(),
            }),
            ..ActivateModelRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(activated.assignment.unwrap().revision, 1);
    let scored = predict
        .score(churn_request(explicit(20.0, 1.0)))
        .await
        .unwrap()
        .churn
        .unwrap();
    // By hand: standardised inputs (20-10)/5 = 2 and (1-2)/1 = -1.
    let (x_recency, x_purchases) = (2.0, -1.0);
    let expected = sigmoid(0.8 * x_recency - 0.5 * x_purchases - 0.2);
    assert!((scored.probability - expected).abs() < 1e-9, "{scored:?}");
    assert_eq!(scored.model.unwrap().version, "v1");
    assert_eq!(
        scored.top_features[0].feature,
        "recency.days_since_last_seen"
    );

    // A challenger serves its share of customers, each customer always the same model.
    predict
        .register_model(register(churn_artifact("v2", -0.8, 0.4).to_json()))
        .await
        .unwrap();
    let reference = |version: &str| {
        Some(ModelRef {
            model_id: "churn-test".into(),
            version: version.into(),
        })
    };
    let challenged = predict
        .activate_model(ActivateModelRequest {
            tenant_id: "acme".into(),
            champion: reference("v1"),
            challenger: reference("v2"),
            challenger_share: 0.3,
            expected_revision: 1,
        })
        .await
        .unwrap();
    assert_eq!(challenged.assignment.unwrap().revision, 2);
    let version_for = |customer_id: String| {
        let predict = predict.clone();
        async move {
            let mut request = churn_request(explicit(20.0, 1.0));
            request.customer = customer(&customer_id);
            predict
                .score(request)
                .await
                .unwrap()
                .churn
                .unwrap()
                .model
                .unwrap()
                .version
        }
    };
    let mut challenger_customers = 0;
    for i in 0..200 {
        let first = version_for(format!("c-{i}")).await;
        assert_eq!(
            first,
            version_for(format!("c-{i}")).await,
            "sticky per customer"
        );
        challenger_customers += usize::from(first == "v2");
    }
    assert!(
        (30..=90).contains(&challenger_customers),
        "about 30% of 200 customers on the challenger, got {challenger_customers}"
    );
    // Rollback: v1 alone again; the previous assignment is reported.
    let rolled_back = predict
        .activate_model(ActivateModelRequest {
            tenant_id: "acme".into(),
            champion: reference("v1"),
            ..ActivateModelRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(
        rolled_back.previous.unwrap().challenger.unwrap().version,
        "v2"
    );
    assert_eq!(version_for("c-1".into()).await, "v1");

    // ListModels: the built-in models and both versions, with their roles and metadata.
    let listed = predict
        .list_models(ListModelsRequest {
            tenant_id: "acme".into(),
            kind: ProtoKind::Churn as i32,
            ..ListModelsRequest::default()
        })
        .await
        .unwrap();
    let names: Vec<(String, String, bool)> = listed
        .models
        .iter()
        .map(|m| {
            let r = m.model.as_ref().unwrap();
            (r.model_id.clone(), r.version.clone(), m.builtin)
        })
        .collect();
    assert_eq!(
        names,
        [
            ("builtin-churn".into(), "builtin-1".into(), true),
            ("churn-test".into(), "v2".into(), false),
            ("churn-test".into(), "v1".into(), false),
        ]
    );
    let v1_info = &listed.models[2];
    assert_eq!(v1_info.role, ModelRole::Champion as i32);
    assert_eq!(v1_info.metrics["roc_auc"], 0.8);
    assert_eq!(listed.models[1].role, ModelRole::Unspecified as i32);
    let churn_assignment = listed
        .assignments
        .iter()
        .find(|a| a.kind == ProtoKind::Churn as i32)
        .unwrap();
    assert_eq!(churn_assignment.revision, 3);
    assert_eq!(listed.assignments.len(), 4, "one assignment per kind");

    // A stale expected revision is refused.
    let stale = predict
        .activate_model(ActivateModelRequest {
            tenant_id: "acme".into(),
            champion: Some(ModelRef {
                model_id: "churn-test".into(),
                version: "v1".into(),
            }),
            expected_revision: 7,
            ..ActivateModelRequest::default()
        })
        .await;
    assert!(matches!(stale, Err(PredictError::Aborted(_))), "{stale:?}");
}

fn spawn_predict(redis: &RedisServer, metrics_port: u16) -> ServerProcess {
    let metrics = format!("127.0.0.1:{metrics_port}");
    ServerProcess::spawn(
        "iee-predict",
        &[
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            &metrics,
            "--redis-url",
            &redis.url(),
        ],
        &[
            ("IEE_CLUSTER__SHARD_COUNT", SHARDS),
            // Scores here use explicit features: no profile is read.
            ("IEE_PREDICT__PROFILE_SEEDS", "[\"127.0.0.1:9\"]"),
            ("IEE_PREDICT__REFRESH_INTERVAL_MS", "200"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_reaches_every_replica_and_a_corrupt_model_is_refused() {
    let redis = RedisServer::start();
    let ports = [free_port(), free_port()];
    let replicas = [
        spawn_predict(&redis, ports[0]),
        spawn_predict(&redis, ports[1]),
    ];
    let first = predict_client(&replicas[0]).await;
    let second = predict_client(&replicas[1]).await;
    // The second replica serves (and caches) the built-in model first.
    let before = second
        .score(churn_request(explicit(20.0, 1.0)))
        .await
        .unwrap()
        .churn
        .unwrap();
    assert_eq!(before.model.unwrap().model_id, "builtin-churn");

    first
        .register_model(RegisterModelRequest {
            tenant_id: "acme".into(),
            artifact: churn_artifact("v1", 0.8, -0.2).to_json(),
        })
        .await
        .unwrap();
    let activated_at = std::time::Instant::now();
    first
        .activate_model(ActivateModelRequest {
            tenant_id: "acme".into(),
            champion: Some(ModelRef {
                model_id: "churn-test".into(),
                version: "v1".into(),
            }),
            ..ActivateModelRequest::default()
        })
        .await
        .unwrap();
    let version_served = |client: PredictClient| async move {
        client
            .score(churn_request(explicit(20.0, 1.0)))
            .await
            .ok()?
            .churn?
            .model
            .map(|m| (m.model_id, m.version))
    };
    assert_eq!(
        version_served(first.clone()).await,
        Some(("churn-test".into(), "v1".into())),
        "the replica that activated serves at once"
    );
    wait_until(
        Duration::from_secs(15),
        "the other replica to serve v1",
        || {
            let second = second.clone();
            async move {
                (version_served(second).await == Some(("churn-test".into(), "v1".into())))
                    .then_some(())
            }
        },
    )
    .await;
    eprintln!(
        "[record] activation reached the second replica after {} ms",
        activated_at.elapsed().as_millis()
    );

    // A corrupt version activated behind the service's back (e.g. by a newer release): every
    // replica refuses to load it and keeps serving v1.
    let stores = Stores::open(
        &StoreConfig {
            backend: iee_store::Backend::Redis,
            redis: RedisConfig {
                url: redis.url(),
                ..RedisConfig::default()
            },
        },
        16,
    )
    .unwrap();
    let meta = ModelVersionMeta {
        model_id: "churn-test".into(),
        version: "v2-corrupt".into(),
        kind: "churn".into(),
        created_at_ms: 2,
    };
    stores
        .models
        .put_version("acme", &meta, b"{\"format\": 1, \"truncated")
        .await
        .unwrap();
    stores
        .models
        .activate(
            "acme",
            "churn",
            ("churn-test", "v2-corrupt"),
            None,
            0.0,
            0,
            3,
        )
        .await
        .unwrap();
    let metrics = format!("127.0.0.1:{}", ports[1]);
    wait_until(Duration::from_secs(15), "the refusal to be counted", || {
        let metrics = metrics.clone();
        async move {
            let text = scrape_metrics(&metrics).await?;
            (metric_value(&text, "iee_predict_model_load_failures_total") > 0.0).then_some(())
        }
    })
    .await;
    for client in [first, second] {
        assert_eq!(
            version_served(client).await,
            Some(("churn-test".into(), "v1".into())),
            "the previous model keeps serving"
        );
    }
}

fn outcome(id: &str, customer_id: &str, action: &str, reward: bool) -> Event {
    let text = |s: &str| PropertyValue {
        kind: Some(Kind::StringValue(s.into())),
    };
    let mut e = event(id, customer_id);
    e.r#type = "decision_outcome".into();
    e.properties
        .insert("decision_id".into(), text(&format!("d-{id}")));
    e.properties.insert("action_id".into(), text(action));
    e.properties.insert(
        "kind".into(),
        text(if reward { "convert" } else { "dismiss" }),
    );
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propensities_learn_online_from_outcome_events() {
    let iee = spawn_standalone(&[
        ("IEE_CLUSTER__SHARD_COUNT", SHARDS),
        ("IEE_PREDICT__LEARN_SYNC_INTERVAL_MS", "200"),
    ]);
    let ingest = TouchpointClient::connect(iee.endpoint()).await.unwrap();
    let predict = predict_client(&iee).await;
    let query = ScoreRequest {
        customer: customer("c-5"),
        propensity: Some(PropensityQuery {
            action_ids: vec!["good".into(), "bad".into()],
            ..PropensityQuery::default()
        }),
        ..ScoreRequest::default()
    };
    // Score once so the learners' group exists before the outcomes arrive.
    predict.score(query.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut events = Vec::new();
    for i in 0..40 {
        let customer_id = format!("c-{}", i % 8);
        events.push(outcome(&format!("g-{i}"), &customer_id, "good", i % 5 != 0));
        events.push(outcome(&format!("b-{i}"), &customer_id, "bad", i % 5 == 0));
    }
    ingest.ingest(IngestRequest { events }).await.unwrap();
    let learned = wait_until(Duration::from_secs(15), "80 outcomes learned", || {
        let predict = predict.clone();
        let query = query.clone();
        async move {
            let scored = predict.score(query).await.ok()?;
            let total: u64 = scored.propensities.iter().map(|p| p.observations).sum();
            (total >= 80).then_some(scored)
        }
    })
    .await;
    let (good, bad) = (&learned.propensities[0], &learned.propensities[1]);
    assert_eq!((good.observations, bad.observations), (40, 40));
    assert!(good.mean > bad.mean, "good {good:?} bad {bad:?}");
}
