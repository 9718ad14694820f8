//! Every validation rule reports an issue at the right path.

use super::*;

// --- YAML errors ------------------------------------------------------------------------------

#[test]
fn syntax_error_has_a_position() {
    let all = issues("actions:\n  - id: a\n    channels: [web\n");
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].line, all[0].column), (4, 1), "{all:?}");
    assert!(
        all[0]
            .message
            .starts_with("did not find expected ',' or ']', while parsing a flow sequence"),
        "{all:?}"
    );
}

#[test]
fn unknown_key_names_the_entry_and_line() {
    let all = issues(&action_with("colour: red"));
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].path, "actions[0]");
    assert!(all[0].message.contains("unknown field `colour`"), "{all:?}");
    assert_eq!(all[0].line, 5);
}

#[test]
fn unknown_top_level_key_is_refused() {
    let all = issues(&with("extras: 1\n"));
    assert!(all[0].message.contains("unknown field `extras`"), "{all:?}");
}

#[test]
fn missing_required_key_is_refused() {
    let all = issues("actions:\n  - id: a\n    channels: [web]\n");
    assert!(
        all[0].message.contains("missing field `direction`"),
        "{all:?}"
    );
    assert_eq!(all[0].path, "actions[0]");
    assert!(
        issues("defaults: {max_actions: 2}\n")[0]
            .message
            .contains("missing field `actions`")
    );
}

#[test]
fn wrong_type_names_the_field() {
    let all = issues(&with("defaults: {max_actions: many}\n"));
    assert_eq!(all[0].path, "defaults.max_actions");
    assert!(all[0].message.contains("invalid type"), "{all:?}");
    assert_eq!(all[0].line, 5);
}

// --- semantic validation ---------------------------------------------------------------------

#[test]
fn duplicate_action_ids_are_refused_with_their_line() {
    let yaml = format!("{BASE}  - id: a\n    channels: [app]\n    direction: inbound\n");
    let issue = issue_at(&yaml, "actions[1].id", "duplicate action id 'a'");
    assert_eq!((issue.line, issue.column), (5, 5));
    let display = issue.to_string();
    assert!(
        display.starts_with("actions[1].id (line 5, column 5): duplicate"),
        "{display}"
    );
}

#[test]
fn duplicate_policy_and_trigger_names_are_refused() {
    let policies = "contact_policies:\n  - {name: p, consent: m}\n  - {name: p, consent: n}\n";
    issue_at(
        &with(policies),
        "contact_policies[1].name",
        "duplicate contact policy name 'p'",
    );
    let yaml = format!(
        "{}triggers:\n  - {{name: t, signal: inactive, channel: email}}\n  \
         - {{name: t, signal: inactive, channel: email}}\n",
        outbound_email()
    );
    let issue = issue_at(&yaml, "triggers[1].name", "duplicate trigger name 't'");
    assert_eq!(issue.line, 10);
}

#[test]
fn unknown_names_are_refused() {
    let yaml = "actions:\n  - id: a\n    channels: [web, fax]\n    direction: sideways\n";
    let all = issues(yaml);
    let fax = all
        .iter()
        .find(|i| i.path == "actions[0].channels[1]")
        .expect("channel issue");
    assert!(fax.message.contains("unknown channel 'fax'") && fax.message.contains("email"));
    assert!(
        all.iter()
            .any(|i| i.path == "actions[0].direction" && i.message.contains("sideways"))
    );
    // A key given twice is a YAML error.
    issue_at(
        &action_with("direction: outbound"),
        "actions[0]",
        "duplicate field `direction`",
    );
}

#[test]
fn unknown_scope_and_signal_are_refused() {
    let policy = "contact_policies:\n  - {name: p, cap: {max: 1, window: 1d, scope: planet}}\n";
    issue_at(
        &with(policy),
        "contact_policies[0].cap.scope",
        "unknown cap scope 'planet'",
    );
    let trigger = "triggers:\n  - {name: t, signal: birthday, channel: email}\n";
    issue_at(
        &format!("{}{trigger}", outbound_email()),
        "triggers[0].signal",
        "unknown signal",
    );
}

#[test]
fn upper_case_channel_names_are_refused() {
    issue_at(
        "actions:\n  - {id: a, channels: [WEB], direction: inbound}\n",
        "actions[0].channels[0]",
        "unknown channel",
    );
}

#[test]
fn empty_channels_are_refused() {
    issue_at(
        "actions:\n  - {id: a, channels: [], direction: inbound}\n",
        "actions[0].channels",
        "at least one channel",
    );
    let policy = "contact_policies:\n  - {name: p, channels: [], consent: m}\n";
    issue_at(
        &with(policy),
        "contact_policies[0].channels",
        "at least one channel",
    );
}

#[test]
fn bad_numbers_are_refused() {
    issue_at(
        &action_with("value: -1"),
        "actions[0].value",
        "out of range",
    );
    issue_at(
        &action_with("value: .nan"),
        "actions[0].value",
        "out of range",
    );
    issue_at(
        &action_with("business_weight: .inf"),
        "actions[0].business_weight",
        "out of range",
    );
    issue_at(
        &action_with("control_share: 0.6"),
        "actions[0].control_share",
        "between 0 and 0.5",
    );
    issue_at(
        &with("holdouts: {global_share: -0.1}\n"),
        "holdouts.global_share",
        "out of range",
    );
    let weight = "context_weights:\n  - {name: w, when: 'true', weight: -2}\n";
    issue_at(&with(weight), "context_weights[0].weight", "out of range");
}

#[test]
fn cap_max_must_be_positive() {
    let policy = "contact_policies:\n  - name: p\n    cap: {max: 0, window: 1d}\n";
    let issue = issue_at(
        &with(policy),
        "contact_policies[0].cap.max",
        "between 1 and 10000",
    );
    assert_eq!((issue.line, issue.column), (7, 5));
}

#[test]
fn windows_must_be_valid_durations_in_range() {
    let cap = |window: &str| {
        with(&format!(
            "contact_policies:\n  - {{name: p, cap: {{max: 1, window: {window}}}}}\n"
        ))
    };
    issue_at(&cap("0s"), "contact_policies[0].cap.window", "at least 1");
    issue_at(
        &cap("401d"),
        "contact_policies[0].cap.window",
        "out of range 1s..400d",
    );
    issue_at(
        &cap("999ms"),
        "contact_policies[0].cap.window",
        "out of range",
    );
    issue_at(
        &cap("2w"),
        "contact_policies[0].cap.window",
        "invalid duration '2w'",
    );
    issue_at(
        &cap("1.5d"),
        "contact_policies[0].cap.window",
        "invalid duration",
    );
    assert!(compile("acme", &cap("400d")).is_ok());
    let suppress =
        "contact_policies:\n  - {name: s, suppress: {after_dismissals: 17, window: 7d}}\n";
    issue_at(
        &with(suppress),
        "contact_policies[0].suppress.after_dismissals",
        "between 1 and 16",
    );
}

#[test]
fn quiet_hours_must_be_distinct_clock_times() {
    let quiet = |start: &str, end: &str| {
        with(&format!(
            "contact_policies:\n  - {{name: q, quiet_hours: {{start: \"{start}\", end: \"{end}\"}}}}\n"
        ))
    };
    issue_at(
        &quiet("22:00", "22:00"),
        "contact_policies[0].quiet_hours.end",
        "must differ",
    );
    issue_at(
        &quiet("25:00", "07:00"),
        "contact_policies[0].quiet_hours.start",
        "HH:MM",
    );
    issue_at(
        &quiet("22:00", "7:00"),
        "contact_policies[0].quiet_hours.end",
        "HH:MM",
    );
    assert!(compile("acme", &quiet("23:59", "00:00")).is_ok());
}

#[test]
fn a_policy_needs_exactly_one_kind() {
    issue_at(
        &with("contact_policies:\n  - {name: p}\n"),
        "contact_policies[0]",
        "exactly one of",
    );
    let two = "contact_policies:\n  - {name: p, consent: m, cap: {max: 1, window: 1d}}\n";
    issue_at(&with(two), "contact_policies[0]", "exactly one of");
    issue_at(
        &with("contact_policies:\n  - {name: p, consent: Mark}\n"),
        "contact_policies[0].consent",
        "[a-z0-9_.-]",
    );
}

#[test]
fn policy_filters_must_name_known_actions_and_groups() {
    let policy = "contact_policies:\n  - {name: p, actions: [zz], groups: [vip], consent: m}\n";
    issue_at(
        &with(policy),
        "contact_policies[0].actions[0]",
        "unknown action 'zz'",
    );
    issue_at(
        &with(policy),
        "contact_policies[0].groups[0]",
        "no action has group 'vip'",
    );
}

#[test]
fn valid_from_must_precede_valid_until() {
    let keys = "valid_from: 2026-02-01T00:00:00Z\nvalid_until: 2026-01-01T00:00:00Z";
    issue_at(
        &action_with(keys),
        "actions[0].valid_until",
        "later than valid_from",
    );
    issue_at(
        &action_with("valid_from: 2026-02-30T00:00:00Z"),
        "actions[0].valid_from",
        "no such date",
    );
    issue_at(
        &action_with("valid_from: 2026-02-01"),
        "actions[0].valid_from",
        "RFC 3339",
    );
    issue_at(
        &action_with("valid_from: 2026-02-01T00:00:00"),
        "actions[0].valid_from",
        "time zone",
    );
}

#[test]
fn second_consent_quiet_hours_or_suppress_policy_is_refused_at_the_later_one() {
    let yaml = with(
        "contact_policies:\n  - {name: c1, consent: m}\n  - {name: ok, channels: [email], consent: n}\n  \
         - {name: c2, channels: [web], consent: n}\n  - {name: q1, quiet_hours: {start: \"21:00\", end: \"08:00\"}}\n  \
         - {name: q2, quiet_hours: {start: \"22:00\", end: \"08:00\"}}\n  - {name: s1, suppress: {after_dismissals: 1, window: 1d}}\n  \
         - {name: s2, suppress: {after_dismissals: 2, window: 1d}}\n",
    );
    let all = issues(&yaml);
    let paths: Vec<&str> = all.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "contact_policies[2]",
            "contact_policies[4]",
            "contact_policies[6]"
        ],
        "{all:#?}"
    );
    assert!(all[0].message.contains("second consent policy") && all[0].message.contains("'c1'"));
    assert_eq!(all[0].line, 8);
}

#[test]
fn more_than_sixteen_caps_on_one_pair_are_refused() {
    let caps: String = (0..17)
        .map(|i| format!("  - {{name: c{i}, cap: {{max: 5, window: {}d}}}}\n", i + 1))
        .collect();
    let all = issues(&with(&format!("contact_policies:\n{caps}")));
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].path, "contact_policies[16]");
    assert!(all[0].message.contains("more than 16 caps"));
    let sixteen: String = caps.lines().take(16).map(|l| format!("{l}\n")).collect();
    assert!(compile("acme", &with(&format!("contact_policies:\n{sixteen}"))).is_ok());
}

#[test]
fn trigger_channel_needs_an_outbound_action() {
    let trigger = "triggers:\n  - {name: t, signal: inactive, channel: web}\n";
    issue_at(&with(trigger), "triggers[0].channel", "no outbound action");
    let ok = format!(
        "{}triggers:\n  - {{name: t, signal: inactive, channel: email}}\n",
        outbound_email()
    );
    assert!(compile("acme", &ok).is_ok());
}

#[test]
fn trigger_fields_are_checked() {
    let trigger = "triggers:\n  - {name: t, signal: inactive, channel: email, max_actions: 11, context: {x: [1]}}\n";
    let yaml = format!("{}{trigger}", outbound_email());
    issue_at(&yaml, "triggers[0].max_actions", "between 1 and 10");
    issue_at(
        &yaml,
        "triggers[0].context.x",
        "string, a number or a boolean",
    );
}

#[test]
fn retention_must_cover_the_attribution_window() {
    let yaml = with("defaults: {attribution_window: 30d, decision_retention: 7d}\n");
    issue_at(&yaml, "defaults.attribution_window", "decision_retention");
    issue_at(
        &with("defaults: {reservation_ttl: 2d}\n"),
        "defaults.reservation_ttl",
        "1s..1d",
    );
}

#[test]
fn counts_must_be_in_range() {
    issue_at(
        &with("defaults: {max_actions: 0}\n"),
        "defaults.max_actions",
        "between 1 and 100",
    );
    issue_at(
        &with("defaults: {max_actions: 101}\n"),
        "defaults.max_actions",
        "between 1 and 100",
    );
    issue_at(
        &with("exploration: {samples: 5}\n"),
        "exploration.samples",
        "between 10 and 10000",
    );
    issue_at(
        &with("exploration: {samples: 20000}\n"),
        "exploration.samples",
        "between 10 and 10000",
    );
    issue_at(
        &with("exploration: {mode: random}\n"),
        "exploration.mode",
        "thompson or greedy",
    );
    issue_at("actions: []\n", "actions", "at least one action");
}

#[test]
fn every_issue_is_reported_not_just_the_first() {
    let yaml = "\
defaults: {max_actions: 0}
actions:
  - id: a
    channels: [web, fax]
    direction: inbound
    value: -3
    eligibility: 'profil.x == 1.0'
  - id: a
    channels: [email]
    direction: outbound
contact_policies:
  - {name: p, cap: {max: 0, window: 9y}}
";
    let all = issues(yaml);
    let paths: Vec<&str> = all.iter().map(|i| i.path.as_str()).collect();
    for expected in [
        "defaults.max_actions",
        "actions[0].channels[1]",
        "actions[0].value",
        "actions[0].eligibility",
        "actions[1].id",
        "contact_policies[0].cap.max",
        "contact_policies[0].cap.window",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {all:#?}"
        );
    }
    let rule = all
        .iter()
        .find(|i| i.path == "actions[0].eligibility")
        .expect("rule issue");
    assert_eq!((rule.line, rule.column), (7, 5));
    assert_eq!(
        rule.to_string(),
        "actions[0].eligibility (line 7, column 5): undeclared reference to 'profil'"
    );
}

#[test]
fn a_second_yaml_document_is_refused_at_its_marker() {
    let found = issues("actions:\n  - {id: a, channels: [web], direction: inbound}\n--- \nb: 1\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].line, 3, "{found:?}");
    assert!(found[0].message.contains("one YAML document"), "{found:?}");
    // A leading marker only opens the first document.
    let leading =
        issues("---\nactions:\n  - {id: a, channels: [web], direction: inbound}\n---\nx: 1\n");
    assert_eq!(leading[0].line, 4, "{leading:?}");
    // A document-end marker: whatever follows it is a second document (found by the fuzzer).
    let ended = issues("actions:\n...\nactions:");
    assert_eq!((ended[0].line, ended[0].column), (2, 1), "{ended:?}");
    assert!(ended[0].message.contains("remove this `...`"), "{ended:?}");
    // A directive after content opens a second document too (also found by the fuzzer).
    let directive = issues("actions:\n%YAML 1.2");
    assert_eq!(
        (directive[0].line, directive[0].column),
        (2, 1),
        "{directive:?}"
    );
    assert!(directive[0].message.contains("directive"), "{directive:?}");
}
