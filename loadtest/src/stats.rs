//! The open-loop schedule (when request `i` is due) and the recorder that turns outcomes into
//! counts and a latency histogram measured from each request's scheduled time.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

pub use iee_api::metadata::code_name;

use hdrhistogram::Histogram;

use crate::scenario::Scenario;

/// Highest latency the histogram tracks exactly, in µs (one hour); longer ones saturate.
const MAX_TRACKED_US: u64 = 3_600_000_000;

/// How early a request may be sent. Timers fire on the first millisecond tick at or after
/// their deadline, so waking this much before the due time keeps the timer's overshoot out of
/// the latency; an early request's latency runs from its actual send time instead.
pub const TIMER_SLACK: Duration = Duration::from_millis(1);

/// Label of requests still unanswered when the drain timeout ran out.
pub const DRAIN_TIMEOUT: &str = "DRAIN_TIMEOUT";
/// Label of stream batches whose stream ended before they were acknowledged.
pub const STREAM_CLOSED: &str = "STREAM_CLOSED";
/// Label of stream batches skipped by the acknowledgements (acks must come in order).
pub const ACK_MISSING: &str = "ACK_MISSING";

/// Fixed arrival times: request `i` is due at `start + i / rate`, whatever happened to the
/// requests before it.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// When request 0 is due.
    pub start: Instant,
    rate: f64,
    /// Number of requests in the schedule.
    pub count: u64,
    /// Index of the first request counted in the statistics (the warm-up ends there).
    pub first_measured: u64,
}

impl Schedule {
    /// The schedule of a validated scenario, starting at `start`.
    pub fn new(scenario: &Scenario, start: Instant) -> Self {
        let count = scenario.scheduled_requests();
        // At most MAX_RATE * MAX_DURATION_SECS: the conversion cannot overflow.
        let first_measured = ((scenario.warmup_secs * scenario.rate).ceil() as u64).min(count);
        Self {
            start,
            rate: scenario.rate,
            count,
            first_measured,
        }
    }

    /// The slot of request `index`.
    pub fn slot(&self, index: u64) -> Slot {
        Slot {
            due: self.due(index),
            measured: index >= self.first_measured,
        }
    }

    /// When request `index` is due; `due(count)` is the end of the schedule.
    pub fn due(&self, index: u64) -> Instant {
        self.start + Duration::from_secs_f64(index as f64 / self.rate)
    }
}

/// One scheduled request: its due time and whether it counts.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// The scheduled send time; latency is measured from here (or from the actual send time
    /// when that was earlier, see [`Recorder::sent`]).
    pub due: Instant,
    /// False during the warm-up.
    pub measured: bool,
}

impl Slot {
    /// When the sender should wake up to send this request.
    pub fn wake_at(&self) -> Instant {
        self.due.checked_sub(TIMER_SLACK).unwrap_or(self.due)
    }
}

/// What the run observed, warm-up excluded.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency of successful requests from their scheduled time, µs.
    pub latency_us: Histogram<u64>,
    /// How late each request was sent after its scheduled time, µs: the load generator's own
    /// lag (timer resolution, event generation, a saturated client), part of the latency.
    pub send_lag_us: Histogram<u64>,
    /// Requests scheduled after the warm-up.
    pub scheduled: u64,
    /// Requests scheduled during the warm-up (sent, but in no other count).
    pub warmup: u64,
    /// Requests actually sent.
    pub sent: u64,
    /// Requests answered successfully.
    pub ok: u64,
    /// Failed requests by gRPC code name (or a loadtest label such as `DRAIN_TIMEOUT`).
    pub errors: BTreeMap<String, u64>,
    /// Requests not sent because `max_in_flight` requests were outstanding at their due time.
    pub dropped: u64,
    /// Stream acknowledgements that matched no outstanding batch.
    pub unmatched_acks: u64,
    /// Events in sent requests.
    pub events_sent: u64,
    /// Events the service appended.
    pub accepted: u64,
    /// Events the service already had.
    pub duplicates: u64,
    /// Events the service rejected.
    pub rejected: u64,
    /// Sent and not yet answered.
    pub outstanding: u64,
    /// When the last counted answer arrived.
    pub last_answer: Option<Instant>,
}

impl Stats {
    fn new() -> Self {
        Self {
            latency_us: histogram(),
            send_lag_us: histogram(),
            scheduled: 0,
            warmup: 0,
            sent: 0,
            ok: 0,
            errors: BTreeMap::new(),
            dropped: 0,
            unmatched_acks: 0,
            events_sent: 0,
            accepted: 0,
            duplicates: 0,
            rejected: 0,
            outstanding: 0,
            last_answer: None,
        }
    }

    /// Failed requests, all codes together.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A latency histogram in microseconds, 1 µs up to the tracked maximum, 3 digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3)
        .expect("constant histogram bounds are valid (1 <= low, high >= 2 * low, 3 digits)")
}

/// Microseconds from `from` to `to`, at least 1 (the histogram's lowest value).
fn micros_between(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Shared, cloneable handle the request tasks report to.
#[derive(Debug, Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Stats>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Stats::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Stats> {
        // A panic elsewhere cannot leave the counters half-updated in a way that matters more
        // than losing the whole report, so a poisoned lock is used as is.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Request `slot` reached its due time (counted once per scheduled request).
    pub fn due(&self, slot: Slot) {
        let mut s = self.lock();
        if slot.measured {
            s.scheduled += 1;
        } else {
            s.warmup += 1;
        }
    }

    /// Request `slot` was not sent because the in-flight cap was reached.
    pub fn dropped(&self, slot: Slot) {
        if slot.measured {
            self.lock().dropped += 1;
        }
    }

    /// Request `slot` with `events` events is being sent now. Returns the slot to report its
    /// outcome with: latency runs from the due time, or from now if the request goes out early
    /// (by at most [`TIMER_SLACK`]); a late request's lag stays part of its latency.
    #[must_use]
    pub fn sent(&self, slot: Slot, events: usize) -> Slot {
        let now = Instant::now();
        let sent = Slot {
            due: slot.due.min(now),
            ..slot
        };
        if slot.measured {
            let lag = micros_between(slot.due, now);
            let mut s = self.lock();
            s.send_lag_us.saturating_record(lag);
            s.sent += 1;
            s.outstanding += 1;
            s.events_sent += events as u64;
        }
        sent
    }

    /// Request `slot` succeeded now, with these per-event outcomes.
    pub fn ok(&self, slot: Slot, accepted: u32, duplicates: u32, rejected: u32) {
        if !slot.measured {
            return;
        }
        let now = Instant::now();
        let micros = micros_between(slot.due, now);
        let mut s = self.lock();
        s.latency_us.saturating_record(micros);
        s.ok += 1;
        s.outstanding = s.outstanding.saturating_sub(1);
        s.accepted += u64::from(accepted);
        s.duplicates += u64::from(duplicates);
        s.rejected += u64::from(rejected);
        s.last_answer = Some(now);
    }

    /// Request `slot` failed with `code`. `was_sent` is false for stream batches failed
    /// without being sent because their stream had already ended.
    pub fn error(&self, slot: Slot, code: &str, was_sent: bool) {
        if !slot.measured {
            return;
        }
        let mut s = self.lock();
        *s.errors.entry(code.to_owned()).or_default() += 1;
        if was_sent {
            s.outstanding = s.outstanding.saturating_sub(1);
            s.last_answer = Some(Instant::now());
        }
    }

    /// An acknowledgement arrived for no outstanding batch.
    pub fn unmatched_ack(&self) {
        self.lock().unmatched_acks += 1;
    }

    /// Counts every request still outstanding as failed with `code` (after the drain timeout).
    pub fn abandon_outstanding(&self, code: &str) {
        let mut s = self.lock();
        let n = std::mem::take(&mut s.outstanding);
        if n > 0 {
            *s.errors.entry(code.to_owned()).or_default() += n;
        }
    }

    /// A copy of the statistics so far.
    pub fn snapshot(&self) -> Stats {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(measured: bool) -> Slot {
        Slot {
            due: Instant::now(),
            measured,
        }
    }

    #[test]
    fn warmup_requests_are_left_out() {
        let r = Recorder::new();
        let warm = slot(false);
        r.due(warm);
        let warm = r.sent(warm, 10);
        r.ok(warm, 10, 0, 0);
        r.error(warm, "UNAVAILABLE", true);
        r.dropped(warm);
        let s = r.snapshot();
        assert_eq!(
            (s.warmup, s.scheduled, s.sent, s.ok, s.dropped),
            (1, 0, 0, 0, 0)
        );
        assert_eq!(s.latency_us.len(), 0);
        assert!(s.errors.is_empty());
    }

    #[test]
    fn outcomes_are_counted() {
        let r = Recorder::new();
        for _ in 0..4 {
            r.due(slot(true));
        }
        let a = r.sent(slot(true), 3);
        r.ok(a, 2, 1, 0);
        let b = r.sent(slot(true), 3);
        r.error(b, "UNAVAILABLE", true);
        r.dropped(slot(true));
        let _ = r.sent(slot(true), 3);
        r.abandon_outstanding(DRAIN_TIMEOUT);
        let s = r.snapshot();
        assert_eq!((s.scheduled, s.sent, s.ok, s.dropped), (4, 3, 1, 1));
        assert_eq!((s.accepted, s.duplicates, s.events_sent), (2, 1, 9));
        assert_eq!(s.errors.get("UNAVAILABLE"), Some(&1));
        assert_eq!(s.errors.get(DRAIN_TIMEOUT), Some(&1));
        assert_eq!(s.error_count(), 2);
        assert_eq!(s.outstanding, 0);
        assert_eq!(s.latency_us.len(), 1);
    }

    #[test]
    fn latency_runs_from_the_due_time() {
        let r = Recorder::new();
        let late = Slot {
            due: Instant::now() - Duration::from_millis(250),
            measured: true,
        };
        let late = r.sent(late, 1);
        r.ok(late, 1, 0, 0);
        let s = r.snapshot();
        assert!(s.latency_us.max() >= 250_000, "{}", s.latency_us.max());
        assert!(s.send_lag_us.max() >= 250_000, "the lag is recorded too");
    }

    #[test]
    fn early_request_is_measured_from_its_send_time() {
        let r = Recorder::new();
        let due = Instant::now() + TIMER_SLACK;
        let sent = r.sent(
            Slot {
                due,
                measured: true,
            },
            1,
        );
        assert!(sent.due < due);
        let on_time = Instant::now() - Duration::from_millis(5);
        let sent = r.sent(
            Slot {
                due: on_time,
                measured: true,
            },
            1,
        );
        assert_eq!(sent.due, on_time, "a late request keeps its due time");
    }

    #[test]
    fn schedule_is_fixed_rate_with_warmup() {
        let scenario = Scenario::from_toml(
            r#"
            name = "s"
            description = "schedule"
            seed = 1
            rpc = "unary"
            batch_size = 1
            rate = 100.0
            duration_secs = 2
            warmup_secs = 0.5
            max_requests = 1000
            max_in_flight = 1
            tenants = ["t"]
            customers = 1
            "#,
        )
        .unwrap();
        let start = Instant::now();
        let s = Schedule::new(&scenario, start);
        assert_eq!(s.count, 200);
        assert_eq!(s.first_measured, 50);
        assert!(!s.slot(49).measured && s.slot(50).measured);
        assert_eq!(s.due(100) - start, Duration::from_secs(1));
    }
}
