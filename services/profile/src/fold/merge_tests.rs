//! Stitching through [`super::Folder::apply`]: merging an anonymous profile carried by an
//! `identify` record, idempotently, and tombstoning the anonymous profile.

use iee_api::pb::profile::Profile;
use prost::Message;

use super::props::build::s;
use super::test_support::*;
use super::{Applied, TimerKind};

fn total(p: &Profile, event_type: &str) -> u64 {
    p.event_type_counters.get(event_type).map_or(0, |c| c.total)
}

/// An anonymous visitor's profile: two page views and a cart line.
fn anonymous_profile() -> Profile {
    let mut feed = Feed::new();
    for (i, t) in [T0, T0 + MIN].into_iter().enumerate() {
        let mut e = ev(&format!("anon-{i}"), "page_view", t);
        e.customer_id.clear();
        e.anonymous_id = "v-1".into();
        feed.apply(e);
    }
    let mut add = with(
        ev("anon-cart", "add_to_cart", T0 + 2 * MIN),
        "product_id",
        s("hat"),
    );
    add.customer_id.clear();
    add.anonymous_id = "v-1".into();
    feed.apply(add);
    feed.profile
}

fn identify(t: i64) -> iee_api::pb::common::Event {
    let mut e = with(ev("identify:v-1:c-1", "identify", t), "method", s("login"));
    e.anonymous_id = "v-1".into();
    e
}

#[test]
fn merging_the_same_identify_record_twice_changes_nothing_the_second_time() {
    let f = folder();
    let anon = anonymous_profile();
    let mut p = Profile::default();
    f.apply(
        &mut p,
        &rec(ev("k1", "login", T0 + 3 * MIN)),
        2,
        "0-1",
        at(T0),
    );
    let mut merge_record = rec(identify(T0 + 3 * MIN));
    merge_record.merged_profile = anon.encode_to_vec();
    assert!(matches!(
        f.apply(&mut p, &merge_record, 2, "0-2", at(T0)),
        Applied::Changed(_)
    ));
    let links = p.identity.clone().unwrap_or_default().anonymous_links;
    assert_eq!(links.len(), 1);
    assert_eq!(
        (links[0].anonymous_id.as_str(), links[0].method.as_str()),
        ("v-1", "login")
    );
    assert!(links[0].merged);
    assert_eq!(links[0].merged_events, 3);
    assert_eq!(total(&p, "page_view"), 2);
    assert_eq!(total(&p, "identify"), 1);
    assert_eq!(p.cart.as_ref().map(|c| c.items.len()), Some(1));
    // The anonymous and the logged-in browsing are one session.
    assert_eq!(p.sessions.as_ref().map(|s| s.count), Some(1));
    let once = p.clone();
    // The same record re-appended at a later offset.
    assert_eq!(
        f.apply(&mut p, &merge_record, 2, "0-3", at(T0)),
        Applied::Skipped
    );
    assert_eq!(p, once);
}

#[test]
fn identify_without_profile_links_then_merge_record_merges_without_recounting() {
    let f = folder();
    let mut p = Profile::default();
    f.apply(&mut p, &rec(identify(T0 + 3 * MIN)), 2, "0-1", at(T0));
    let links = p.identity.clone().unwrap_or_default().anonymous_links;
    assert_eq!(
        (links.len(), links[0].merged_events, links[0].merged),
        (1, 0, false)
    );
    let mut merge_record = rec(identify(T0 + 3 * MIN));
    merge_record.merged_profile = anonymous_profile().encode_to_vec();
    assert!(matches!(
        f.apply(&mut p, &merge_record, 2, "0-2", at(T0)),
        Applied::Changed(_)
    ));
    assert_eq!(total(&p, "identify"), 1, "the identify event counts once");
    assert_eq!(total(&p, "page_view"), 2);
    // A plain repeat of the identify event changes nothing either.
    assert_eq!(
        f.apply(&mut p, &rec(identify(T0 + 3 * MIN)), 2, "0-3", at(T0)),
        Applied::Skipped
    );
}

#[test]
fn merged_anonymous_profile_becomes_a_tombstone_once() {
    let f = folder();
    let mut anon = anonymous_profile();
    let version = anon.version;
    assert!(f.mark_merged(&mut anon, "c-1", 9, "0-40"));
    assert_eq!(
        (anon.merged_into_customer_id.as_str(), anon.version),
        ("c-1", version + 1)
    );
    assert_eq!(
        anon.applied_offsets.get(&9).map(String::as_str),
        Some("0-40")
    );
    assert!(!f.mark_merged(&mut anon, "c-1", 9, "0-41"));
    assert_eq!(anon.version, version + 1);
    let before = anon.clone();
    assert_eq!(
        f.apply(
            &mut anon,
            &rec(ev("late", "page_view", T0)),
            9,
            "0-50",
            at(T0)
        ),
        Applied::Skipped
    );
    assert_eq!(
        f.fire_timer(&mut anon, TimerKind::Inactive, T0, at(T0)),
        Applied::Skipped
    );
    assert_eq!(anon, before);
}
