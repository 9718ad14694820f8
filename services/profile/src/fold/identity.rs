//! Identity and consent: anonymous links from `identify` events, declared traits from
//! `identify` and `signup` properties, consent per purpose from `consent_change` events.

use iee_api::pb::common::Event;
use iee_api::pb::profile::{AnonymousLink, Consent, ConsentStatus, Profile};

use super::props;
use super::time::{max_ts, ms_ts, opt_ms};

/// Property of `identify` events naming how the link was made (not a trait).
pub(crate) const METHOD_PROPERTY: &str = "method";

/// How an `identify` event relates to the links already recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// The anonymous id was not linked yet; the link at this index was just recorded.
    New(usize),
    /// The same `identify` event (same `event_id`) was seen before: a merge record following
    /// the original, or a re-append. Its event must not be counted again.
    SameEvent(usize),
    /// Another `identify` event for an id already linked (e.g. a later login on the same device).
    Existing(usize),
}

/// Records the anonymous link an `identify` event states, if it names an anonymous id.
pub(crate) fn link(profile: &mut Profile, event: &Event, at_ms: i64) -> Option<Link> {
    if event.anonymous_id.is_empty() || event.customer_id.is_empty() {
        return None;
    }
    let identity = profile.identity.get_or_insert_with(Default::default);
    if let Some(i) = identity
        .anonymous_links
        .iter()
        .position(|l| l.anonymous_id == event.anonymous_id)
    {
        return Some(if identity.anonymous_links[i].event_id == event.event_id {
            Link::SameEvent(i)
        } else {
            Link::Existing(i)
        });
    }
    identity.anonymous_links.push(AnonymousLink {
        anonymous_id: event.anonymous_id.clone(),
        linked_at: Some(ms_ts(at_ms)),
        method: props::string(event, METHOD_PROPERTY).unwrap_or_default(),
        channel: event.channel,
        event_id: event.event_id.clone(),
        merged_events: 0,
        merged: false,
    });
    Some(Link::New(identity.anonymous_links.len() - 1))
}

/// Takes declared traits from `identify` (all properties but `method`) and `signup` events.
/// The latest statement of a key wins: an event older than the last trait change only fills in
/// keys that are still absent. Returns whether a trait changed.
pub(crate) fn record_traits(profile: &mut Profile, event: &Event, at_ms: i64) -> bool {
    let skip = match event.r#type.as_str() {
        "identify" => Some(METHOD_PROPERTY),
        "signup" => None,
        _ => return false,
    };
    let identity = profile.identity.get_or_insert_with(Default::default);
    let newer = opt_ms(identity.traits_updated_at.as_ref()).is_none_or(|t| at_ms >= t);
    let mut changed = false;
    for (key, value) in &event.properties {
        if Some(key.as_str()) == skip || key.is_empty() || key.chars().count() > 64 {
            continue;
        }
        let differs = identity.traits.get(key) != Some(value);
        let allowed = newer || !identity.traits.contains_key(key);
        if differs && allowed {
            identity.traits.insert(key.clone(), value.clone());
            changed = true;
        }
    }
    if changed {
        max_ts(&mut identity.traits_updated_at, at_ms);
    }
    changed
}

/// Whether `purpose` is a well-formed consent purpose (1-64 characters of `[a-z0-9_.-]`).
pub(crate) fn valid_purpose(purpose: &str) -> bool {
    (1..=64).contains(&purpose.len())
        && purpose
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// The consent a `consent_change` event states: `purpose` and either a boolean `granted` or a
/// `status` of `granted`/`denied` (also `grant`, `deny`, `revoked`, `withdrawn`).
fn stated_consent(event: &Event) -> Option<(String, ConsentStatus)> {
    let purpose = props::string(event, "purpose")?;
    if !valid_purpose(&purpose) {
        return None;
    }
    let granted = match props::boolean(event, "granted") {
        Some(g) => g,
        None => match props::string(event, "status")?
            .to_ascii_lowercase()
            .as_str()
        {
            "granted" | "grant" | "opt_in" | "opted_in" => true,
            "denied" | "deny" | "revoked" | "withdrawn" | "opt_out" | "opted_out" => false,
            _ => return None,
        },
    };
    let status = if granted {
        ConsentStatus::Granted
    } else {
        ConsentStatus::Denied
    };
    Some((purpose, status))
}

/// Applies a `consent_change` event; a statement older than the recorded one is ignored.
/// Returns whether the consent changed.
pub(crate) fn record_consent(profile: &mut Profile, event: &Event, at_ms: i64) -> bool {
    if event.r#type != "consent_change" {
        return false;
    }
    let Some((purpose, status)) = stated_consent(event) else {
        return false;
    };
    if profile
        .consent
        .get(&purpose)
        .is_some_and(|c| opt_ms(c.updated_at.as_ref()) > Some(at_ms))
    {
        return false;
    }
    profile.consent.insert(
        purpose,
        Consent {
            status: status as i32,
            updated_at: Some(ms_ts(at_ms)),
            channel: event.channel,
            event_id: event.event_id.clone(),
        },
    );
    true
}

/// Merges an anonymous profile's consent (the later statement per purpose wins) and traits
/// (the side that changed traits last wins a key both have).
pub(crate) fn merge(profile: &mut Profile, other: &Profile) {
    for (purpose, theirs) in &other.consent {
        let keep_ours = profile.consent.get(purpose).is_some_and(|ours| {
            opt_ms(ours.updated_at.as_ref()) >= opt_ms(theirs.updated_at.as_ref())
        });
        if !keep_ours {
            profile.consent.insert(purpose.clone(), theirs.clone());
        }
    }
    let Some(theirs) = other.identity.as_ref() else {
        return;
    };
    let identity = profile.identity.get_or_insert_with(Default::default);
    let theirs_newer =
        opt_ms(theirs.traits_updated_at.as_ref()) > opt_ms(identity.traits_updated_at.as_ref());
    for (key, value) in &theirs.traits {
        if theirs_newer || !identity.traits.contains_key(key) {
            identity.traits.insert(key.clone(), value.clone());
        }
    }
    if let Some(t) = opt_ms(theirs.traits_updated_at.as_ref())
        && !theirs.traits.is_empty()
    {
        max_ts(&mut identity.traits_updated_at, t);
    }
    for l in &theirs.anonymous_links {
        if !identity
            .anonymous_links
            .iter()
            .any(|mine| mine.anonymous_id == l.anonymous_id)
        {
            identity.anonymous_links.push(l.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::props::build::{b, s};

    fn identify(event_id: &str, anon: &str) -> Event {
        let mut e = Event {
            event_id: event_id.into(),
            customer_id: "c-1".into(),
            anonymous_id: anon.into(),
            r#type: "identify".into(),
            ..Event::default()
        };
        e.properties.insert(METHOD_PROPERTY.into(), s("login"));
        e.properties.insert("plan".into(), s("pro"));
        e
    }

    #[test]
    fn links_are_recorded_once_per_anonymous_id() {
        let mut p = Profile::default();
        assert_eq!(link(&mut p, &identify("i1", "v1"), 5), Some(Link::New(0)));
        assert_eq!(
            link(&mut p, &identify("i1", "v1"), 6),
            Some(Link::SameEvent(0))
        );
        assert_eq!(
            link(&mut p, &identify("i2", "v1"), 7),
            Some(Link::Existing(0))
        );
        assert_eq!(link(&mut p, &identify("i3", "v2"), 8), Some(Link::New(1)));
        let links = p.identity.unwrap_or_default().anonymous_links;
        assert_eq!(links.len(), 2);
        assert_eq!(
            (links[0].method.as_str(), links[0].event_id.as_str()),
            ("login", "i1")
        );
    }

    #[test]
    fn traits_skip_method_and_latest_wins() {
        let mut p = Profile::default();
        assert!(record_traits(&mut p, &identify("i1", "v1"), 10));
        let mut older = Event {
            r#type: "signup".into(),
            ..Event::default()
        };
        older.properties.insert("plan".into(), s("free"));
        older.properties.insert("country".into(), s("NL"));
        assert!(record_traits(&mut p, &older, 5));
        let identity = p.identity.unwrap_or_default();
        assert_eq!(identity.traits.get("plan"), Some(&s("pro")));
        assert_eq!(identity.traits.get("country"), Some(&s("NL")));
        assert!(!identity.traits.contains_key(METHOD_PROPERTY));
        assert_eq!(opt_ms(identity.traits_updated_at.as_ref()), Some(10));
    }

    #[test]
    fn consent_latest_statement_wins() {
        let mut p = Profile::default();
        let consent = |id: &str, granted: Option<bool>, status: Option<&str>| {
            let mut e = Event {
                event_id: id.into(),
                r#type: "consent_change".into(),
                ..Event::default()
            };
            e.properties.insert("purpose".into(), s("marketing_email"));
            if let Some(g) = granted {
                e.properties.insert("granted".into(), b(g));
            }
            if let Some(st) = status {
                e.properties.insert("status".into(), s(st));
            }
            e
        };
        assert!(record_consent(&mut p, &consent("a", Some(true), None), 10));
        assert!(!record_consent(&mut p, &consent("b", Some(false), None), 5));
        assert_eq!(
            p.consent["marketing_email"].status,
            ConsentStatus::Granted as i32
        );
        assert!(record_consent(
            &mut p,
            &consent("c", None, Some("withdrawn")),
            20
        ));
        assert_eq!(
            p.consent["marketing_email"].status,
            ConsentStatus::Denied as i32
        );
        assert_eq!(p.consent["marketing_email"].event_id, "c");
        assert!(!record_consent(
            &mut p,
            &consent("d", None, Some("maybe")),
            30
        ));
        assert!(!valid_purpose("Marketing") && valid_purpose("marketing.sms-1"));
    }
}
