//! Rules: compile-time checks, the profile view and evaluation.

use super::*;

// --- CEL at compile time ---------------------------------------------------------------------

#[test]
fn rule_syntax_errors_are_issues() {
    issue_at(
        &action_with("eligibility: 'profile.x =='"),
        "actions[0].eligibility",
        "syntax error",
    );
}

#[test]
fn undeclared_variables_are_issues() {
    issue_at(
        &action_with("applicability: 'request.page == \"x\"'"),
        "actions[0].applicability",
        "undeclared reference to 'request'",
    );
    // Comprehension variables are not references.
    let ok = action_with(
        "eligibility: '[1.0, 2.0].exists(x, x > 1.5) && profile.tags.all(t, t != \"\")'",
    );
    assert!(compile("acme", &ok).is_ok());
}

#[test]
fn scores_are_refused_before_suitability() {
    issue_at(
        &action_with("eligibility: 'scores.churn > 0.5'"),
        "actions[0].eligibility",
        "'scores' is not known",
    );
    issue_at(
        &action_with("applicability: 'has(scores.clv)'"),
        "actions[0].applicability",
        "'scores' is not known",
    );
    let trigger =
        "triggers:\n  - {name: t, signal: inactive, channel: email, when: 'scores.churn > 0.1'}\n";
    issue_at(
        &format!("{}{trigger}", outbound_email()),
        "triggers[0].when",
        "'scores' is not known",
    );
    let weight = "context_weights:\n  - {name: w, when: 'action.value > 1.0', weight: 2}\n";
    issue_at(
        &with(weight),
        "context_weights[0].when",
        "'action' is not available",
    );
    issue_at(
        &action_with("suitability: 'scores.risk > 0.5'"),
        "actions[0].suitability",
        "unknown score 'scores.risk'",
    );
}

#[test]
fn score_needs_follow_the_rules() {
    let needs = |keys: &str| compile("acme", &action_with(keys)).expect("compiles").needs;
    assert_eq!(
        needs("suitability: 'scores.churn > 0.5'"),
        ScoreNeeds {
            churn: true,
            clv: false
        }
    );
    assert_eq!(
        needs("suitability: 'scores[\"clv\"] > 5.0'"),
        ScoreNeeds {
            churn: false,
            clv: true
        }
    );
    assert_eq!(
        needs("suitability: 'scores.propensity > 0.1'"),
        ScoreNeeds::default()
    );
    assert_eq!(
        needs("suitability: 'size(scores) > 0'"),
        ScoreNeeds {
            churn: true,
            clv: true
        }
    );
    let weight = "context_weights:\n  - {name: w, when: 'has(scores.clv)', weight: 2}\n";
    let config = compile("acme", &with(weight)).expect("compiles");
    assert_eq!(
        config.needs,
        ScoreNeeds {
            churn: false,
            clv: true
        }
    );
}

// --- profile view and evaluation ---------------------------------------------------------------

fn features() -> FeatureVector {
    FeatureVector {
        numeric: [
            ("identity.known", 1.0),
            ("cart.value", 42.5),
            ("cart.items", 3.0),
            ("activity.7d.purchase", 2.0),
            ("survey.nps.score", 4.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        categorical: [(
            "journey.stage".to_owned(),
            "JOURNEY_STAGE_PURCHASE".to_owned(),
        )]
        .into(),
    }
}

fn text(s: &str) -> PropertyValue {
    PropertyValue {
        kind: Some(property_value::Kind::StringValue(s.to_owned())),
    }
}

fn number(n: f64) -> PropertyValue {
    PropertyValue {
        kind: Some(property_value::Kind::NumberValue(n)),
    }
}

fn profile() -> Profile {
    Profile {
        identity: Some(Identity {
            traits: [
                ("plan".to_owned(), text("gold")),
                ("age".to_owned(), number(41.0)),
            ]
            .into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn bindings() -> Bindings {
    let view = profile_view(&features(), Some(&profile()));
    let context = [
        ("page".to_owned(), text("cart")),
        ("basket".to_owned(), number(2.0)),
        (
            "vip".to_owned(),
            PropertyValue {
                kind: Some(property_value::Kind::BoolValue(true)),
            },
        ),
        ("unset".to_owned(), PropertyValue { kind: None }),
    ]
    .into();
    let customer = CustomerRef {
        tenant_id: "acme".into(),
        customer_id: "c-1".into(),
        anonymous_id: String::new(),
    };
    Bindings::new(
        &view,
        &context,
        &customer,
        UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    )
}

fn rule(stage_key: &str, expression: &str) -> Rule {
    let yaml = action_with(&format!("{stage_key}: '{expression}'"));
    let mut config = compile("acme", &yaml).unwrap_or_else(|e| panic!("{e:#?}"));
    let action = config.actions.remove(0);
    match stage_key {
        "eligibility" => action.eligibility,
        "applicability" => action.applicability,
        _ => action.suitability,
    }
    .expect("rule")
}

fn sample_action() -> Action {
    let yaml = action_with("group: retention\nvalue: 12.5\nbusiness_weight: 2");
    compile("acme", &yaml).expect("compiles").actions.remove(0)
}

fn eval(stage_key: &str, expression: &str, scores: &Scores) -> Result<bool, String> {
    bindings().evaluate(&rule(stage_key, expression), Some(&sample_action()), scores)
}

#[test]
fn profile_view_nests_dotted_names() {
    let view = profile_view(&features(), None);
    let get = |s: &prost_types::Struct, k: &str| s.fields.get(k).and_then(|v| v.kind.clone());
    let Some(Kind::StructValue(cart)) = get(&view, "cart") else {
        panic!("{view:?}")
    };
    assert_eq!(get(&cart, "value"), Some(Kind::NumberValue(42.5)));
    let Some(Kind::StructValue(activity)) = get(&view, "activity") else {
        panic!()
    };
    let Some(Kind::StructValue(week)) = get(&activity, "7d") else {
        panic!()
    };
    assert_eq!(get(&week, "purchase"), Some(Kind::NumberValue(2.0)));
    let Some(Kind::StructValue(journey)) = get(&view, "journey") else {
        panic!()
    };
    assert_eq!(
        get(&journey, "stage"),
        Some(Kind::StringValue("JOURNEY_STAGE_PURCHASE".into()))
    );
    assert!(
        !view.fields.contains_key("traits"),
        "no traits without a profile"
    );
    let with_profile = profile_view(&features(), Some(&profile()));
    let Some(Kind::StructValue(traits)) = get(&with_profile, "traits") else {
        panic!()
    };
    assert_eq!(get(&traits, "plan"), Some(Kind::StringValue("gold".into())));
    assert_eq!(get(&traits, "age"), Some(Kind::NumberValue(41.0)));
}

#[test]
fn profile_view_keeps_the_leaf_when_a_name_is_also_a_prefix() {
    for order in [["a.b", "a.b.c"], ["a.b.c", "a.b"]] {
        let features = FeatureVector {
            numeric: order.iter().map(|k| ((*k).to_owned(), 1.0)).collect(),
            categorical: [
                ("a.b".to_owned(), "text".to_owned()),
                ("x..y".to_owned(), "z".to_owned()),
            ]
            .into(),
        };
        let view = profile_view(&features, None);
        let Some(Kind::StructValue(a)) = view.fields["a"].kind.clone() else {
            panic!()
        };
        assert_eq!(a.fields["b"].kind, Some(Kind::NumberValue(1.0)));
    }
}

#[test]
fn rules_read_profile_traits_context_customer_and_action() {
    let none = Scores::default();
    for expression in [
        "profile.cart.value > 40.0",
        "profile.activity[\"7d\"].purchase == 2.0",
        "profile.journey.stage == \"JOURNEY_STAGE_PURCHASE\"",
        "profile.traits.plan == \"gold\" && profile.traits.age > 40.0",
        "\"plan\" in profile.traits && !(\"tier\" in profile.traits)",
        "context.page == \"cart\" && context.basket == 2.0 && context.vip",
        "!(\"unset\" in context)",
        "customer.known && customer.tenant_id == \"acme\"",
        "action.id == \"a\" && action.group == \"retention\" && action.value == 12.5",
        "action.business_weight == 2.0",
        "now_unix == 1800000000.0",
        "has(profile.cart.value) && !has(profile.cart.abandoned)",
    ] {
        assert_eq!(
            eval("eligibility", expression, &none),
            Ok(true),
            "{expression}"
        );
    }
    assert_eq!(
        eval("eligibility", "profile.cart.value < 40.0", &none),
        Ok(false)
    );
    assert_eq!(
        eval("applicability", "context.page == \"home\"", &none),
        Ok(false)
    );
}

#[test]
fn rules_read_scores_only_when_known() {
    let known = Scores {
        churn: Some(0.7),
        clv: Some(120.0),
        propensity: Some(0.05),
    };
    assert_eq!(
        eval(
            "suitability",
            "scores.churn > 0.5 && scores.clv > 100.0",
            &known
        ),
        Ok(true)
    );
    assert_eq!(
        eval("suitability", "scores.propensity < 0.1", &known),
        Ok(true)
    );
    let none = Scores::default();
    assert_eq!(eval("suitability", "has(scores.churn)", &none), Ok(false));
    assert_eq!(
        eval(
            "suitability",
            "!has(scores.churn) || scores.churn > 0.5",
            &none
        ),
        Ok(true)
    );
    let missing = eval("suitability", "scores.churn > 0.5", &none).expect_err("missing score");
    assert!(missing.contains("churn"), "{missing}");
}

#[test]
fn a_missing_key_is_an_error() {
    let err = eval(
        "eligibility",
        "profile.sentiment.ewma < 0.0",
        &Scores::default(),
    )
    .expect_err("missing feature");
    assert!(
        err.contains("a.eligibility") && err.contains("sentiment"),
        "{err}"
    );
}

#[test]
fn a_result_that_is_not_a_bool_is_an_error() {
    let err = eval("eligibility", "profile.cart.value", &Scores::default()).expect_err("not bool");
    assert!(err.contains("returned double, not bool"), "{err}");
    let err = eval("eligibility", "context.page", &Scores::default()).expect_err("not bool");
    assert!(err.contains("returned string"), "{err}");
}

#[test]
fn trigger_rules_evaluate_without_an_action() {
    let yaml = format!(
        "{}triggers:\n  - {{name: t, signal: inactive, channel: email, when: 'profile.cart.items >= 3.0'}}\n",
        outbound_email()
    );
    let config = compile("acme", &yaml).expect("compiles");
    let when = config.triggers[0].when.as_ref().expect("when");
    assert_eq!(when.name, "t.when");
    assert_eq!(when.expression(), "profile.cart.items >= 3.0");
    assert_eq!(
        bindings().evaluate(when, None, &Scores::default()),
        Ok(true)
    );
}

#[test]
fn an_anonymous_customer_is_not_known() {
    let customer = CustomerRef {
        tenant_id: "acme".into(),
        anonymous_id: "v".into(),
        ..Default::default()
    };
    let b = Bindings::new(
        &prost_types::Struct::default(),
        &HashMap::new(),
        &customer,
        SystemTime::now(),
    );
    let known = rule("eligibility", "customer.known");
    assert_eq!(b.evaluate(&known, None, &Scores::default()), Ok(false));
}

#[test]
fn bindings_and_configs_can_cross_tasks() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Bindings>();
    send_sync::<Rule>();
    send_sync::<DecisionConfig>();
}

#[test]
fn every_retail_rule_evaluates_on_a_full_catalogue_profile() {
    use iee_predict::features::{FeatureKind, Source, catalogue};
    let mut features = FeatureVector::default();
    for spec in catalogue().iter().filter(|s| s.source == Source::Profile) {
        match spec.kind {
            FeatureKind::Categorical => {
                features
                    .categorical
                    .insert(spec.name.to_owned(), "x".to_owned());
            }
            _ => {
                features.numeric.insert(spec.name.to_owned(), 1.0);
            }
        }
    }
    let view = profile_view(&features, Some(&profile()));
    let context = [
        ("page".to_owned(), text("cart")),
        ("device".to_owned(), text("app")),
    ]
    .into();
    let customer = CustomerRef {
        tenant_id: "acme".into(),
        customer_id: "c".into(),
        ..Default::default()
    };
    let b = Bindings::new(&view, &context, &customer, SystemTime::now());
    let scores = Scores {
        churn: Some(0.5),
        clv: Some(80.0),
        propensity: Some(0.1),
    };
    let config = compile("acme", RETAIL).expect("compiles");
    let mut evaluated = 0;
    for action in &config.actions {
        for rule in [
            &action.eligibility,
            &action.applicability,
            &action.suitability,
        ]
        .into_iter()
        .flatten()
        {
            let result = b.evaluate(rule, Some(action), &scores);
            assert!(result.is_ok(), "{}: {result:?}", rule.name);
            evaluated += 1;
        }
    }
    for weight in &config.context_weights {
        let result = b.evaluate(&weight.when, None, &scores);
        assert!(result.is_ok(), "{}: {result:?}", weight.name);
        evaluated += 1;
    }
    for when in config.triggers.iter().filter_map(|t| t.when.as_ref()) {
        let result = b.evaluate(when, None, &Scores::default());
        assert!(result.is_ok(), "{}: {result:?}", when.name);
        evaluated += 1;
    }
    assert_eq!(evaluated, 17);
}
