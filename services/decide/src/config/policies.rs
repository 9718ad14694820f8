//! Compilation of `contact_policies:`, and the check that the policies applying to any one
//! (action, channel) fit one contact reservation: at most one consent, one quiet-hours and one
//! suppression policy, and at most 16 caps.

use std::collections::{BTreeMap, HashMap};

use super::{
    compile::Issues,
    model::{Action, ContactPolicy, PolicyKind},
    names,
    raw::{RawConfig, RawPolicy},
    sections::{channels, check_targets, unique_name, window},
    units::parse_clock,
};

/// The most caps one contact reservation carries.
const MAX_CAPS: usize = 16;

/// `contact_policies:`, checked against the compiled `actions`.
pub(super) fn compile(
    raw: &RawConfig,
    actions: &[Action],
    issues: &mut Issues,
) -> Vec<ContactPolicy> {
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    let mut paths = Vec::new();
    for (i, p) in raw.contact_policies.iter().enumerate() {
        let path = format!("contact_policies[{i}]");
        unique_name(
            issues,
            &path,
            &p.name,
            i,
            &mut seen,
            "contact policy",
            "contact_policies",
        );
        check_targets(issues, &path, raw, &p.actions, &p.groups);
        let channels = match &p.channels {
            None => Some(Vec::new()),
            Some(list) => channels(issues, &format!("{path}.channels"), list),
        };
        let kind = kind(p, &path, issues);
        if let (Some(channels), Some(kind)) = (channels, kind) {
            out.push(ContactPolicy {
                name: p.name.clone(),
                channels,
                actions: p.actions.clone(),
                groups: p.groups.clone(),
                kind,
            });
            paths.push(path);
        }
    }
    check_overlaps(&out, &paths, actions, issues);
    out
}

/// The one requirement of a policy.
fn kind(p: &RawPolicy, path: &str, issues: &mut Issues) -> Option<PolicyKind> {
    let given = [
        p.cap.is_some(),
        p.suppress.is_some(),
        p.quiet_hours.is_some(),
        p.consent.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        issues.push(
            path,
            "a contact policy needs exactly one of cap, suppress, quiet_hours, consent",
        );
        return None;
    }
    if let Some(cap) = &p.cap {
        let scope = cap.scope.as_deref().map_or(Ok(1), names::cap_scope);
        return Some(PolicyKind::Cap {
            max: issues.integer(format!("{path}.cap.max"), cap.max, 1, 10_000),
            window: window(issues, &format!("{path}.cap.window"), &cap.window),
            scope: issues.check(format!("{path}.cap.scope"), scope)?,
        });
    }
    if let Some(suppress) = &p.suppress {
        return Some(PolicyKind::Suppress {
            after: issues.integer(
                format!("{path}.suppress.after_dismissals"),
                suppress.after_dismissals,
                1,
                16,
            ),
            window: window(issues, &format!("{path}.suppress.window"), &suppress.window),
        });
    }
    if let Some(quiet) = &p.quiet_hours {
        let start = issues.check(
            format!("{path}.quiet_hours.start"),
            parse_clock(&quiet.start),
        );
        let end = issues.check(format!("{path}.quiet_hours.end"), parse_clock(&quiet.end));
        let (start_minute, end_minute) = (start?, end?);
        if start_minute == end_minute {
            issues.push(
                format!("{path}.quiet_hours.end"),
                "must differ from start (an empty or all-day span is ambiguous)",
            );
        }
        return Some(PolicyKind::QuietHours {
            start_minute,
            end_minute,
        });
    }
    let purpose = p.consent.clone().unwrap_or_default();
    let valid = (1..=64).contains(&purpose.len())
        && purpose.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-')
        });
    if !valid {
        issues.push(
            format!("{path}.consent"),
            format!("invalid consent purpose '{purpose}': 1-64 characters of [a-z0-9_.-]"),
        );
    }
    Some(PolicyKind::Consent { purpose })
}

/// Reports, at the later policy, every policy that would give one (action, channel) a second
/// consent, quiet-hours or suppression policy, or a 17th cap.
fn check_overlaps(
    policies: &[ContactPolicy],
    paths: &[String],
    actions: &[Action],
    issues: &mut Issues,
) {
    // Policy index -> message; one report per policy, the first found.
    let mut found: BTreeMap<usize, String> = BTreeMap::new();
    for action in actions {
        for &channel in &action.channels {
            let mut first: HashMap<&str, &str> = HashMap::new();
            let mut caps = 0;
            for (i, policy) in policies.iter().enumerate() {
                if !policy.applies_to(action, channel) {
                    continue;
                }
                let what = match policy.kind {
                    PolicyKind::Cap { .. } => {
                        caps += 1;
                        if caps > MAX_CAPS {
                            found.entry(i).or_insert_with(|| {
                                format!(
                                    "more than {MAX_CAPS} caps apply to action '{}' on channel '{}'",
                                    action.id,
                                    names::channel_name(channel)
                                )
                            });
                        }
                        continue;
                    }
                    PolicyKind::Suppress { .. } => "suppress",
                    PolicyKind::QuietHours { .. } => "quiet_hours",
                    PolicyKind::Consent { .. } => "consent",
                };
                if let Some(earlier) = first.get(what) {
                    found.entry(i).or_insert_with(|| {
                        format!(
                            "a second {what} policy applies to action '{}' on channel '{}' \
                             (already covered by '{earlier}'); at most one may apply",
                            action.id,
                            names::channel_name(channel)
                        )
                    });
                } else {
                    first.insert(what, &policy.name);
                }
            }
        }
    }
    for (i, message) in found {
        issues.push(paths[i].clone(), message);
    }
}
