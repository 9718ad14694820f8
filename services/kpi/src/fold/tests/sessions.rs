//! Sessions: bounces, engagement, late events.

use super::support::{HOUR, Harness, MIN, T0, f, map, purchase, timed, view};

#[test]
fn lone_interaction_stays_a_bounce() {
    let mut h = Harness::new();
    h.feed(&[view(T0)]);
    // 31 minutes later: a new session, the first one stays a bounce.
    h.feed(&[view(T0 + 31 * MIN)]);
    assert_eq!(
        timed(&h.take(), &["ses."]),
        map([
            ((T0, f("ses.b", "", "")), 1.0),
            ((T0, f("ses.n", "", "")), 1.0),
            ((T0 + 31 * MIN, f("ses.b", "", "")), 1.0),
            ((T0 + 31 * MIN, f("ses.n", "", "")), 1.0),
        ])
    );
}

#[test]
fn second_interaction_takes_back_the_bounce_and_engages() {
    let mut h = Harness::new();
    h.feed(&[view(T0)]);
    assert_eq!(
        timed(&h.take(), &["ses."]),
        map([
            ((T0, f("ses.b", "", "")), 1.0),
            ((T0, f("ses.n", "", "")), 1.0)
        ])
    );
    h.feed(&[view(T0 + 30)]);
    assert_eq!(
        timed(&h.take(), &["ses."]),
        map([
            ((T0, f("ses.b", "", "")), -1.0),
            ((T0, f("ses.e", "", "")), 1.0)
        ])
    );
    h.feed(&[view(T0 + 60)]);
    assert_eq!(timed(&h.take(), &["ses."]), map([]));
}

#[test]
fn engagement_waits_for_the_minimum_span() {
    let mut h = Harness::new();
    h.feed(&[view(T0), view(T0 + 5)]);
    assert_eq!(
        timed(&h.take(), &["ses."]),
        map([((T0, f("ses.n", "", "")), 1.0)])
    );
    h.feed(&[view(T0 + 12)]);
    assert_eq!(
        timed(&h.take(), &["ses."]),
        map([((T0, f("ses.e", "", "")), 1.0)])
    );
}

#[test]
fn conversion_alone_makes_an_engaged_session_without_bounce() {
    let mut h = Harness::new();
    h.feed(&[purchase(None, T0)]);
    assert_eq!(
        timed(&h.take(), &["ses."]),
        map([
            ((T0, f("ses.e", "", "")), 1.0),
            ((T0, f("ses.n", "", "")), 1.0)
        ])
    );
}

#[test]
fn late_interactions_never_count_a_session_twice() {
    let mut h = Harness::new();
    h.feed(&[view(T0 + 2 * HOUR)]);
    h.take();
    // Two hours earlier: a session that has ended; only the interaction counts.
    h.feed(&[view(T0)]);
    let got = h.take();
    assert_eq!(timed(&got, &["ses."]), map([]));
    assert_eq!(timed(&got, &["ev"]), map([((T0, f("ev", "", "")), 1.0)]));
    // Ten minutes before the session's start: it joins the session, whose bucket stays.
    h.feed(&[view(T0 + 2 * HOUR - 10 * MIN)]);
    assert_eq!(
        timed(&h.take(), &["ses."]),
        map([
            ((T0 + 2 * HOUR, f("ses.b", "", "")), -1.0),
            ((T0 + 2 * HOUR, f("ses.e", "", "")), 1.0),
        ])
    );
}
