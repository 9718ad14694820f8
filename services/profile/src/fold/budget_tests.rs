//! Contact budgets through the [`Folder`]: reserve, commit, release, expiry, caps under load.

use iee_api::pb::common::{Channel, CustomerRef};
use iee_api::pb::profile::{
    CapScope, CommitContactRequest, ContactCap, ContactDenial, ContactReservation, DenialReason,
    DismissalSuppression, Profile, QuietHours, ReservationState, ReserveContactRequest,
    ReserveContactResponse, reserve_contact_response::Verdict,
};

use super::props::build::s;
use super::test_support::*;
use super::time::{opt_ms, ts_ms};
use super::{ContactError, Folder};

fn secs(n: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: n,
        nanos: 0,
    })
}

fn request(channel: Channel, action: &str) -> ReserveContactRequest {
    ReserveContactRequest {
        customer: Some(CustomerRef {
            tenant_id: "acme".into(),
            customer_id: "c-1".into(),
            anonymous_id: String::new(),
        }),
        channel: channel as i32,
        action_id: action.into(),
        decision_id: "d-1".into(),
        ..ReserveContactRequest::default()
    }
}

fn cap(name: &str, scope: CapScope, max_count: u32, window_secs: i64) -> ContactCap {
    ContactCap {
        name: name.into(),
        scope: scope as i32,
        window: secs(window_secs),
        max_count,
    }
}

fn granted(response: &ReserveContactResponse) -> Option<ContactReservation> {
    match response.verdict.clone() {
        Some(Verdict::Reservation(r)) => Some(r),
        _ => None,
    }
}

fn denied(response: &ReserveContactResponse) -> Option<ContactDenial> {
    match response.verdict.clone() {
        Some(Verdict::Denial(d)) => Some(d),
        _ => None,
    }
}

fn reserve(
    f: &Folder,
    p: &mut Profile,
    r: &ReserveContactRequest,
    id: &str,
    t: i64,
) -> ReserveContactResponse {
    match f.reserve(p, r, id, at(t)) {
        Ok(response) => response,
        Err(e) => panic!("reserve failed: {e}"),
    }
}

fn commit(id: &str) -> CommitContactRequest {
    CommitContactRequest {
        customer: None,
        reservation_id: id.into(),
        contacted_at: None,
    }
}

#[test]
fn reserve_commit_release_sequence() {
    let f = folder();
    let mut p = Profile::default();
    let r = request(Channel::Email, "welcome");
    let granted_r = granted(&reserve(f, &mut p, &r, "r1", T0)).unwrap_or_default();
    assert_eq!(granted_r.reservation_id, "r1");
    assert_eq!(opt_ms(granted_r.expires_at.as_ref()), Some(T0 + 300_000));
    assert_eq!(p.version, 1);
    let record = f.commit(&mut p, &commit("r1"), at(T0 + 1_000));
    let record = record.unwrap_or_default();
    assert_eq!(
        (record.action_id.as_str(), record.decision_id.as_str()),
        ("welcome", "d-1")
    );
    assert_eq!(record.contacted_at.as_ref().map(ts_ms), Some(T0 + 1_000));
    let email = &p.contacts[0];
    assert_eq!(
        (email.total, email.recent.len(), email.pending.len()),
        (1, 1, 0)
    );
    assert_eq!(opt_ms(email.last_contact_at.as_ref()), Some(T0 + 1_000));
    // Committing again returns the same contact and changes nothing.
    let version = p.version;
    assert_eq!(
        f.commit(&mut p, &commit("r1"), at(T0 + 2_000)).ok(),
        Some(record)
    );
    assert_eq!((p.version, p.contacts[0].total), (version, 1));
    assert_eq!(
        f.release(&mut p, "r1", at(T0 + 3_000)),
        ReservationState::Committed
    );

    reserve(f, &mut p, &r, "r2", T0 + 4_000);
    assert_eq!(
        f.release(&mut p, "r2", at(T0 + 5_000)),
        ReservationState::Pending
    );
    assert_eq!(
        f.release(&mut p, "r2", at(T0 + 6_000)),
        ReservationState::Released
    );
    assert!(matches!(
        f.commit(&mut p, &commit("r2"), at(T0 + 7_000)),
        Err(ContactError::NotFound(m)) if m.contains("released")
    ));

    reserve(f, &mut p, &r, "r3", T0 + 8_000);
    let after_expiry = T0 + 8_000 + 300_000;
    assert!(matches!(
        f.commit(&mut p, &commit("r3"), at(after_expiry)),
        Err(ContactError::NotFound(m)) if m.contains("expired")
    ));
    assert_eq!(
        f.release(&mut p, "r3", at(after_expiry)),
        ReservationState::Expired
    );
    assert_eq!(
        f.release(&mut p, "nope", at(after_expiry)),
        ReservationState::Unknown
    );
    assert!(matches!(
        f.commit(&mut p, &commit("nope"), at(after_expiry)),
        Err(ContactError::NotFound(_))
    ));
    assert!(matches!(
        f.commit(&mut p, &commit(""), at(after_expiry)),
        Err(ContactError::Invalid { field, .. }) if field == "reservation_id"
    ));
}

#[test]
fn expire_reservations_reports_changes_and_remembers_them() {
    let f = folder();
    let mut p = Profile::default();
    let mut r = request(Channel::Sms, "promo");
    r.ttl = secs(10);
    reserve(f, &mut p, &r, "r1", T0);
    assert!(!f.expire_reservations(&mut p, at(T0 + 9_999)));
    let version = p.version;
    assert!(f.expire_reservations(&mut p, at(T0 + 10_000)));
    assert_eq!(p.version, version + 1);
    assert!(p.contacts[0].pending.is_empty());
    assert_eq!(
        p.closed_reservations[0].state,
        ReservationState::Expired as i32
    );
    assert!(!f.expire_reservations(&mut p, at(T0 + 20_000)));
}

#[test]
fn repeated_request_id_returns_the_pending_reservation() {
    let f = folder();
    let mut p = Profile::default();
    let mut r = request(Channel::Push, "nudge");
    r.request_id = "req-1".into();
    r.caps = vec![cap("push-daily", CapScope::Channel, 1, 86_400)];
    let first = granted(&reserve(f, &mut p, &r, "r1", T0));
    let retry = granted(&reserve(f, &mut p, &r, "r2", T0 + 1_000));
    assert_eq!(
        first.as_ref().map(|x| x.reservation_id.as_str()),
        Some("r1")
    );
    assert_eq!(first, retry);
    assert_eq!(p.contacts[0].pending.len(), 1);
    assert_eq!(first.map(|x| x.request_id), Some("req-1".to_owned()));
}

#[test]
fn two_hundred_reservations_never_exceed_a_cap_of_three() {
    let f = folder();
    let mut p = Profile::default();
    let mut r = request(Channel::Email, "offer");
    r.caps = vec![cap("email-hourly", CapScope::Channel, 3, 3_600)];
    r.ttl = secs(120);
    let mut committed: Vec<i64> = vec![];
    let (mut grants, mut denials) = (0, 0);
    for i in 0..200_i64 {
        let now = T0 + i * 47_000;
        let id = format!("r{i}");
        let response = reserve(f, &mut p, &r, &id, now);
        if granted(&response).is_some() {
            grants += 1;
            // Commit two of three grants, release the rest or let them expire.
            match i % 3 {
                0 | 1 => {
                    assert!(f.commit(&mut p, &commit(&id), at(now)).is_ok());
                    committed.push(now);
                }
                _ if i % 2 == 0 => {
                    f.release(&mut p, &id, at(now));
                }
                _ => {}
            }
        } else {
            denials += 1;
            let d = denied(&response).unwrap_or_default();
            assert_eq!(d.reason, DenialReason::CapReached as i32);
            assert!(d.retry_at.as_ref().is_some_and(|t| ts_ms(t) > now));
        }
        let pending = p.contacts.iter().map(|c| c.pending.len()).sum::<usize>();
        let in_window = committed.iter().filter(|t| **t > now - 3_600_000).count();
        assert!(
            in_window + pending <= 3,
            "step {i}: {in_window} committed + {pending} pending"
        );
    }
    assert!(
        grants > 10 && denials > 10,
        "{grants} granted, {denials} denied"
    );
}

#[test]
fn cap_denial_names_the_cap_and_when_to_retry() {
    let f = folder();
    let mut p = Profile::default();
    let mut r = request(Channel::Email, "newsletter");
    r.caps = vec![
        cap("email-daily", CapScope::Channel, 5, 86_400),
        cap("email-weekly", CapScope::Channel, 3, 7 * 86_400),
    ];
    for i in 0..3 {
        let id = format!("r{i}");
        reserve(f, &mut p, &r, &id, T0 + i * HOUR);
        assert!(f.commit(&mut p, &commit(&id), at(T0 + i * HOUR)).is_ok());
    }
    let d = denied(&reserve(f, &mut p, &r, "r9", T0 + 3 * HOUR)).unwrap_or_default();
    assert_eq!(d.reason, DenialReason::CapReached as i32);
    assert_eq!((d.cap_name.as_str(), d.cap_used), ("email-weekly", 3));
    assert_eq!(d.message, "cap \"email-weekly\" allows 3 per 7d, 3 used");
    assert_eq!(d.retry_at.as_ref().map(ts_ms), Some(T0 + 7 * DAY));
    // Once the oldest contact leaves the window the cap allows one again.
    assert!(granted(&reserve(f, &mut p, &r, "r10", T0 + 7 * DAY + 1)).is_some());
}

#[test]
fn cap_scopes_count_the_right_contacts() {
    let f = folder();
    let mut p = Profile::default();
    let email_a = request(Channel::Email, "a");
    reserve(f, &mut p, &email_a, "r1", T0);
    let _ = f.commit(&mut p, &commit("r1"), at(T0));
    // Pending reservations count too.
    reserve(f, &mut p, &request(Channel::Sms, "a"), "r2", T0);
    let mut email_b = request(Channel::Email, "b");
    email_b.caps = vec![cap("b-only", CapScope::Action, 1, 3_600)];
    assert!(granted(&reserve(f, &mut p, &email_b, "r3", T0)).is_some());
    let mut email_a2 = request(Channel::Email, "a");
    email_a2.caps = vec![cap("a-only", CapScope::Action, 1, 3_600)];
    assert!(denied(&reserve(f, &mut p, &email_a2, "r4", T0)).is_some());
    let mut sms = request(Channel::Sms, "c");
    sms.caps = vec![cap("sms", CapScope::Unspecified, 2, 3_600)];
    assert!(granted(&reserve(f, &mut p, &sms, "r5", T0)).is_some());
    let mut any = request(Channel::Push, "d");
    any.caps = vec![cap("all", CapScope::AllChannels, 4, 3_600)];
    let d = denied(&reserve(f, &mut p, &any, "r6", T0)).unwrap_or_default();
    assert_eq!(d.cap_used, 4);
}

#[test]
fn consent_quiet_hours_and_suppression_deny_in_that_order() {
    let f = folder();
    let mut feed = Feed::new();
    let mut r = request(Channel::Email, "winback");
    r.consent_purpose = "marketing_email".into();
    let d = denied(&reserve(f, &mut feed.profile, &r, "r1", T0)).unwrap_or_default();
    assert_eq!(d.reason, DenialReason::NoConsent as i32);
    let consent = with(
        ev("k", "consent_change", T0),
        "purpose",
        s("marketing_email"),
    );
    feed.apply(with(consent, "status", s("granted")));

    // T0 is 22:13 UTC; quiet 22:00-07:00 at UTC+0 denies until 07:00 the next day.
    r.quiet_hours = Some(QuietHours {
        start_minute: 22 * 60,
        end_minute: 7 * 60,
        utc_offset_minutes: 0,
    });
    let d = denied(&reserve(f, &mut feed.profile, &r, "r2", T0)).unwrap_or_default();
    assert_eq!(d.reason, DenialReason::QuietHours as i32);
    let day_start = T0 - T0.rem_euclid(DAY);
    assert_eq!(
        d.retry_at.as_ref().map(ts_ms),
        Some(day_start + DAY + 7 * HOUR)
    );
    // At UTC-3 it is 19:13 locally: not quiet.
    if let Some(q) = r.quiet_hours.as_mut() {
        q.utc_offset_minutes = -180;
    }
    assert!(granted(&reserve(f, &mut feed.profile, &r, "r3", T0)).is_some());

    for i in 0..2 {
        let mut e = ev(&format!("o{i}"), "decision_outcome", T0 + i * MIN);
        e = with(e, "kind", s("dismiss"));
        e = with(e, "action_id", s("winback"));
        feed.apply(e);
    }
    r.suppression = Some(DismissalSuppression {
        max_dismissals: 2,
        window: secs(86_400),
    });
    let d = denied(&reserve(f, &mut feed.profile, &r, "r4", T0 + 2 * MIN)).unwrap_or_default();
    assert_eq!(d.reason, DenialReason::Suppressed as i32);
    assert_eq!(d.retry_at.as_ref().map(ts_ms), Some(T0 + DAY));
}

#[test]
fn invalid_requests_name_the_field() {
    let f = folder();
    let mut p = Profile::default();
    let mut r = request(Channel::Email, "a");
    r.caps = vec![
        cap("x", CapScope::Channel, 3, 60),
        cap("y", CapScope::Channel, 3, 60),
        cap("z", CapScope::Channel, 0, 60),
    ];
    let err = f.reserve(&mut p, &r, "r1", at(T0)).err();
    assert!(
        matches!(err, Some(ContactError::Invalid { ref field, .. }) if field == "caps[2].max_count"),
        "{err:?}"
    );
    assert_eq!(p, Profile::default(), "an invalid request changes nothing");
    let r = request(Channel::Unspecified, "a");
    assert!(matches!(
        f.reserve(&mut p, &r, "r1", at(T0)),
        Err(ContactError::Invalid { field, .. }) if field == "channel"
    ));
    let r = request(Channel::Email, "");
    assert!(matches!(
        f.reserve(&mut p, &r, "r1", at(T0)),
        Err(ContactError::Invalid { field, .. }) if field == "action_id"
    ));
}
