//! Builders shared by the fold tests.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iee_api::pb::common::{Channel, Event, LogRecord, PropertyValue};
use iee_api::pb::profile::{Profile, Signal, SignalKind};

use super::time::ms_ts;
use super::{Applied, Effects, FoldConfig, Folder, TimerKind};

/// A fixed start instant (2023-11-14), in milliseconds.
pub(crate) const T0: i64 = 1_700_000_000_000;
pub(crate) const MIN: i64 = 60_000;
pub(crate) const HOUR: i64 = 60 * MIN;
pub(crate) const DAY: i64 = 24 * HOUR;

pub(crate) fn at(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// One default-configured folder for all tests (loading the lexicon once).
pub(crate) fn folder() -> &'static Folder {
    static FOLDER: OnceLock<Folder> = OnceLock::new();
    FOLDER.get_or_init(|| Folder::new(FoldConfig::default()))
}

pub(crate) fn ev(id: &str, event_type: &str, at_ms: i64) -> Event {
    Event {
        event_id: id.into(),
        tenant_id: "acme".into(),
        customer_id: "c-1".into(),
        r#type: event_type.into(),
        channel: Channel::Web as i32,
        occurred_at: Some(ms_ts(at_ms)),
        ..Event::default()
    }
}

pub(crate) fn with(mut event: Event, key: &str, value: PropertyValue) -> Event {
    event.properties.insert(key.into(), value);
    event
}

pub(crate) fn rec(event: Event) -> LogRecord {
    LogRecord {
        event: Some(event),
        ..LogRecord::default()
    }
}

/// A profile being fed events at increasing offsets of shard 7.
pub(crate) struct Feed {
    pub folder: &'static Folder,
    pub profile: Profile,
    pub next: u64,
}

impl Feed {
    pub(crate) fn new() -> Self {
        Self::with_folder(folder())
    }

    pub(crate) fn with_folder(folder: &'static Folder) -> Self {
        Self {
            folder,
            profile: Profile::default(),
            next: 1,
        }
    }

    /// Applies `event` at the next offset; the profile is read at the event's time.
    pub(crate) fn apply(&mut self, event: Event) -> Effects {
        let offset = format!("0-{}", self.next);
        self.next += 1;
        let now = at(event.occurred_at.as_ref().map_or(T0, super::time::ts_ms));
        match self
            .folder
            .apply(&mut self.profile, &rec(event), 7, &offset, now)
        {
            Applied::Changed(effects) => effects,
            Applied::Skipped => Effects::default(),
        }
    }

    pub(crate) fn fire(&mut self, kind: TimerKind, due_ms: i64) -> Applied {
        self.folder
            .fire_timer(&mut self.profile, kind, due_ms, at(due_ms))
    }
}

pub(crate) fn kinds(signals: &[Signal]) -> Vec<SignalKind> {
    signals
        .iter()
        .map(|s| SignalKind::try_from(s.kind).unwrap_or_default())
        .collect()
}

pub(crate) fn due(effects: &Effects, kind: TimerKind) -> Option<Option<i64>> {
    effects
        .timers
        .iter()
        .find(|t| t.kind == kind)
        .map(|t| t.due_ms)
}
