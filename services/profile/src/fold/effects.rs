//! What applying a record or firing a timer caused: signals to emit and durable timers to set
//! or cancel. Signal ids are deterministic so a replay re-emits the same ids.

use std::str::FromStr;

use iee_api::pb::profile::{Profile, Signal, SignalKind, signal::Details};
use iee_api::shard::customer_key;
use xxhash_rust::xxh3::Xxh3;

/// The result of [`crate::fold::Folder::apply`] and [`crate::fold::Folder::fire_timer`].
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Nothing was applied (replayed record, stale timer, tombstone); the profile is unchanged.
    Skipped,
    /// The profile changed (its version was bumped); these are the consequences.
    Changed(Effects),
}

/// Signals to emit and timer changes to persist, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// Signals, with kind, details, customer, signal id and profile version filled in; shard,
    /// cursor, emission time and trace context are the runtime's to fill.
    pub signals: Vec<Signal>,
    /// Durable timers to set (`due_ms`) or cancel (`None`), at most one per kind.
    pub timers: Vec<TimerChange>,
}

/// The durable per-customer timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// The cart idle timer (`cart_abandoned`).
    CartIdle,
    /// The inactivity timer (`inactive`).
    Inactive,
}

impl TimerKind {
    /// The stable name used in timer keys: `cart` or `inactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CartIdle => "cart",
            Self::Inactive => "inactive",
        }
    }
}

impl std::fmt::Display for TimerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A timer name that is neither `cart` nor `inactive`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTimerKind(pub String);

impl std::fmt::Display for UnknownTimerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown timer kind {:?}: expected `cart` or `inactive`",
            self.0
        )
    }
}

impl std::error::Error for UnknownTimerKind {}

impl FromStr for TimerKind {
    type Err = UnknownTimerKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cart" => Ok(Self::CartIdle),
            "inactive" => Ok(Self::Inactive),
            other => Err(UnknownTimerKind(other.to_owned())),
        }
    }
}

/// Sets (`Some(due)`) or cancels (`None`) the customer's timer of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerChange {
    /// Which timer.
    pub kind: TimerKind,
    /// When it is due, in milliseconds since the epoch; `None` cancels it.
    pub due_ms: Option<i64>,
}

/// A deterministic signal id: hex xxh3-128 over tenant, customer key, kind and trigger (the log
/// position or timer that caused the signal), separated by 0x1F.
pub(crate) fn signal_id(profile: &Profile, kind: SignalKind, trigger: &str) -> String {
    let (tenant, key) = match profile.customer.as_ref() {
        Some(c) => (
            c.tenant_id.as_str(),
            customer_key(&c.customer_id, &c.anonymous_id),
        ),
        None => ("", String::new()),
    };
    let mut h = Xxh3::new();
    for part in [
        tenant.as_bytes(),
        key.as_bytes(),
        kind.as_str_name().as_bytes(),
        trigger.as_bytes(),
    ] {
        h.update(part);
        h.update(&[0x1f]);
    }
    format!("{:032x}", h.digest128())
}

/// A signal of `kind` about `profile`; `profile_version` is filled in once the change is done.
pub(crate) fn signal(
    profile: &Profile,
    kind: SignalKind,
    trigger: &str,
    details: Details,
) -> Signal {
    Signal {
        signal_id: signal_id(profile, kind, trigger),
        kind: kind as i32,
        customer: profile.customer.clone(),
        details: Some(details),
        ..Signal::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iee_api::pb::common::CustomerRef;

    #[test]
    fn timer_kinds_round_trip_through_their_names() {
        for kind in [TimerKind::CartIdle, TimerKind::Inactive] {
            assert_eq!(kind.as_str().parse::<TimerKind>().ok(), Some(kind));
        }
        assert!("cart_idle".parse::<TimerKind>().is_err());
    }

    #[test]
    fn signal_ids_are_deterministic_and_distinct() {
        let p = Profile {
            customer: Some(CustomerRef {
                tenant_id: "acme".into(),
                customer_id: "c-1".into(),
                anonymous_id: String::new(),
            }),
            ..Profile::default()
        };
        let a = signal_id(&p, SignalKind::Detractor, "log:3:0-7");
        assert_eq!(a, signal_id(&p, SignalKind::Detractor, "log:3:0-7"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, signal_id(&p, SignalKind::Detractor, "log:3:0-8"));
        assert_ne!(
            a,
            signal_id(&p, SignalKind::NegativeExperience, "log:3:0-7")
        );
        let mut other = p.clone();
        if let Some(c) = other.customer.as_mut() {
            c.tenant_id = "acme2".into();
        }
        assert_ne!(a, signal_id(&other, SignalKind::Detractor, "log:3:0-7"));
    }
}
