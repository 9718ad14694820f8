//! Bring-your-own ONNX models: an artifact carrying `tests/data/logistic.onnx` (written by
//! `make_logistic_onnx.py`) scores like the logistic function, and broken ones are refused.
//! Most of it needs `--features onnx`; without it, the one test checks the refusal says why.

#[cfg(feature = "onnx")]
mod with_feature {
    use std::collections::HashMap;

    use iee_api::pb::predict::FeatureVector;
    use iee_predict::{
        features::is_known,
        model::{
            ArtifactError, Kind, ModelArtifact, ModelBody,
            onnx::{OnnxModel, encode_base64},
        },
    };
    use serde_json::{Value, json};

    /// The fixture's weights and intercept (`make_logistic_onnx.py`).
    const WEIGHTS: [f64; 3] = [0.8, -1.5, 0.25];
    const INTERCEPT: f64 = -0.3;
    const FIXTURE: &[u8] = include_bytes!("data/logistic.onnx");

    const RECENCY: &str = "recency.days_since_last_purchase";
    const PURCHASES: &str = "frequency.purchases";
    const CHANNEL: &str = "ctx.channel";
    /// Default of the purchases column when the feature is missing.
    const PURCHASES_DEFAULT: f64 = 2.0;

    fn artifact_json(onnx: &[u8]) -> Value {
        json!({
            "format": 1,
            "model_id": "churn-onnx",
            "version": "v1",
            "kind": "churn",
            "description": "logistic regression exported to ONNX",
            "created_at_ms": 0,
            "feature_names": [RECENCY, PURCHASES, CHANNEL],
            "training_examples": 0,
            "metrics": {},
            "training_data": {},
            "body": {
                "type": "onnx",
                "serves": "churn",
                "onnx_base64": encode_base64(onnx),
                "input": {
                    "name": "features",
                    "columns": [
                        { "feature": RECENCY, "default": 0.0 },
                        { "feature": PURCHASES, "default": PURCHASES_DEFAULT },
                        { "feature": CHANNEL, "default": 0.0, "one_hot": "CHANNEL_WEB" },
                    ],
                },
                "output": { "name": "churn_probability" },
            },
        })
    }

    fn parse(json: &Value) -> Result<ModelArtifact, ArtifactError> {
        ModelArtifact::from_json(json.to_string().as_bytes(), is_known)
    }

    fn onnx_body(artifact: &ModelArtifact) -> &OnnxModel {
        match &artifact.body {
            ModelBody::Onnx(m) => m,
            other => panic!("expected an onnx body, got {other:?}"),
        }
    }

    fn features(numeric: &[(&str, f64)], categorical: &[(&str, &str)]) -> FeatureVector {
        FeatureVector {
            numeric: numeric
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect::<HashMap<_, _>>(),
            categorical: categorical
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
        }
    }

    fn logistic(x: [f64; 3]) -> f64 {
        let z: f64 = INTERCEPT + x.iter().zip(WEIGHTS).map(|(x, w)| x * w).sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }

    fn invalid_reason(result: Result<ModelArtifact, ArtifactError>) -> (String, String) {
        match result {
            Err(ArtifactError::Invalid { field, reason }) => (field, reason),
            other => panic!("expected an invalid artifact, got {other:?}"),
        }
    }

    #[test]
    fn onnx_model_scores_like_the_logistic_function() {
        let artifact = parse(&artifact_json(FIXTURE)).expect("the fixture artifact loads");
        assert_eq!(artifact.body.kind(), Kind::Churn);
        let model = onnx_body(&artifact)
            .load()
            .expect("the fixture graph loads");

        let cases = [
            // Every feature present; the channel matches the one-hot category.
            (
                features(
                    &[(RECENCY, 1.5), (PURCHASES, 0.5)],
                    &[(CHANNEL, "CHANNEL_WEB")],
                ),
                [1.5, 0.5, 1.0],
            ),
            // Another channel: the one-hot column is 0.
            (
                features(
                    &[(RECENCY, -2.0), (PURCHASES, 3.0)],
                    &[(CHANNEL, "CHANNEL_EMAIL")],
                ),
                [-2.0, 3.0, 0.0],
            ),
            // Missing features take their declared defaults.
            (
                features(&[(RECENCY, 0.25)], &[]),
                [0.25, PURCHASES_DEFAULT, 0.0],
            ),
            (features(&[], &[]), [0.0, PURCHASES_DEFAULT, 0.0]),
        ];
        for (vector, x) in cases {
            let scores = model.score(&vector).expect("scores");
            assert_eq!(scores.len(), 1, "one churn probability");
            let want = logistic(x);
            assert!(
                (f64::from(scores[0]) - want).abs() < 1e-5,
                "input {x:?}: onnx {} vs logistic {want}",
                scores[0]
            );
        }
    }

    #[test]
    fn onnx_artifact_round_trips_through_json() {
        let artifact = parse(&artifact_json(FIXTURE)).expect("loads");
        let again = ModelArtifact::from_json(&artifact.to_json(), is_known).expect("reloads");
        assert_eq!(artifact, again);
        assert_eq!(onnx_body(&again).onnx, FIXTURE);
    }

    #[test]
    fn corrupt_onnx_bytes_are_refused_with_a_clear_error() {
        for corrupt in [
            &b"this is not an onnx model"[..],
            &FIXTURE[..FIXTURE.len() / 2],
        ] {
            let (field, reason) = invalid_reason(parse(&artifact_json(corrupt)));
            assert_eq!(field, "body.onnx_base64");
            assert!(
                reason.starts_with("the ONNX model does not parse"),
                "unclear error: {reason}"
            );
        }
        let mut json = artifact_json(FIXTURE);
        json["body"]["onnx_base64"] = json!("not base64!");
        match parse(&json) {
            Err(ArtifactError::Malformed(message)) => {
                assert!(
                    message.contains("onnx_base64 is not valid base64"),
                    "{message}"
                );
            }
            other => panic!("expected a malformed artifact, got {other:?}"),
        }
    }

    #[test]
    fn input_shape_that_does_not_match_the_mapping_is_refused() {
        let mut json = artifact_json(FIXTURE);
        json["feature_names"] = json!([RECENCY, PURCHASES]);
        json["body"]["input"]["columns"] = json!([
            { "feature": RECENCY, "default": 0.0 },
            { "feature": PURCHASES, "default": 0.0 },
        ]);
        let (field, reason) = invalid_reason(parse(&json));
        assert_eq!(field, "body.onnx_base64");
        assert!(
            reason.contains("input has shape") && reason.contains("[1, 2]"),
            "unclear error: {reason}"
        );
    }

    #[test]
    fn mapping_mistakes_are_refused_naming_the_field() {
        let cases: [(&[&str], Value, &str, &str); 5] = [
            (
                &["body", "input", "name"],
                json!("x"),
                "body.onnx_base64",
                "input is \"features\"",
            ),
            (
                &["body", "output", "name"],
                json!("probability"),
                "body.onnx_base64",
                "no output \"probability\"",
            ),
            (
                &["body", "output", "index"],
                json!(1),
                "body.onnx_base64",
                "has 1 element(s)",
            ),
            (
                &["body", "serves"],
                json!("lifetime_value"),
                "kind",
                "does not match",
            ),
            (
                &["feature_names"],
                json!([RECENCY, PURCHASES, CHANNEL, "tenure.days"]),
                "body.input.columns",
                "feature_names",
            ),
        ];
        for (path, value, want_field, want_reason) in cases {
            let mut json = artifact_json(FIXTURE);
            *path.iter().fold(&mut json, |v, key| &mut v[*key]) = value;
            let (field, reason) = invalid_reason(parse(&json));
            assert_eq!(field, want_field, "{path:?}: {reason}");
            assert!(
                reason.contains(want_reason),
                "{path:?}: unclear error: {reason}"
            );
        }
    }

    #[test]
    fn unknown_mapping_fields_are_refused() {
        let mut json = artifact_json(FIXTURE);
        json["body"]["output"]["indx"] = json!(0);
        assert!(
            matches!(parse(&json), Err(ArtifactError::Malformed(m)) if m.contains("indx")),
            "a misspelt field must not be ignored"
        );
    }
}

#[cfg(not(feature = "onnx"))]
#[test]
fn onnx_artifact_without_the_feature_says_how_to_enable_it() {
    let json = serde_json::json!({
        "format": 1, "model_id": "churn-onnx", "version": "v1", "kind": "churn",
        "description": "", "created_at_ms": 0, "feature_names": [], "training_examples": 0,
        "metrics": {}, "training_data": {},
        "body": { "type": "onnx", "serves": "churn" },
    });
    let err = iee_predict::model::ModelArtifact::from_json(json.to_string().as_bytes(), |_| true)
        .expect_err("no onnx support in this build");
    let message = err.to_string();
    assert!(
        message.contains("unknown variant `onnx`") && message.contains("--features onnx"),
        "{message}"
    );
}
