//! The names the configuration uses for proto enums: lower-case proto names without their prefix
//! (`CHANNEL_EMAIL` is `email`, `SIGNAL_KIND_CART_ABANDONED` is `cart_abandoned`).

use iee_api::pb::{
    common::Channel,
    decide::Direction,
    profile::{CapScope, SignalKind},
};

/// One proto enum as the configuration names it.
struct EnumNames {
    /// What the value is, for messages ("channel").
    what: &'static str,
    /// The proto prefix of its value names.
    prefix: &'static str,
    /// Proto name to number.
    from_name: fn(&str) -> Option<i32>,
    /// Number to proto name.
    to_name: fn(i32) -> Option<&'static str>,
}

impl EnumNames {
    /// The number of a configuration name; the error lists the valid names.
    fn parse(&self, name: &str) -> Result<i32, String> {
        let proto = format!("{}{}", self.prefix, name.to_ascii_uppercase());
        match (self.from_name)(&proto) {
            Some(n) if n != 0 && name.bytes().all(|c| !c.is_ascii_uppercase()) => Ok(n),
            _ => Err(format!(
                "unknown {} '{name}' (expected one of: {})",
                self.what,
                self.valid().join(", ")
            )),
        }
    }

    /// The configuration name of a number (the number itself if it has none).
    fn name(&self, n: i32) -> String {
        (self.to_name)(n)
            .and_then(|proto| proto.strip_prefix(self.prefix))
            .map_or_else(|| n.to_string(), str::to_ascii_lowercase)
    }

    /// Every valid configuration name, in proto order.
    fn valid(&self) -> Vec<String> {
        (1..)
            .map_while(|n| (self.to_name)(n).map(|_| self.name(n)))
            .collect()
    }
}

const CHANNEL: EnumNames = EnumNames {
    what: "channel",
    prefix: "CHANNEL_",
    from_name: |s| Channel::from_str_name(s).map(|v| v as i32),
    to_name: |n| Channel::try_from(n).ok().map(|v| v.as_str_name()),
};

const DIRECTION: EnumNames = EnumNames {
    what: "direction",
    prefix: "DIRECTION_",
    from_name: |s| Direction::from_str_name(s).map(|v| v as i32),
    to_name: |n| Direction::try_from(n).ok().map(|v| v.as_str_name()),
};

const SCOPE: EnumNames = EnumNames {
    what: "cap scope",
    prefix: "CAP_SCOPE_",
    from_name: |s| CapScope::from_str_name(s).map(|v| v as i32),
    to_name: |n| CapScope::try_from(n).ok().map(|v| v.as_str_name()),
};

const SIGNAL: EnumNames = EnumNames {
    what: "signal",
    prefix: "SIGNAL_KIND_",
    from_name: |s| SignalKind::from_str_name(s).map(|v| v as i32),
    to_name: |n| SignalKind::try_from(n).ok().map(|v| v.as_str_name()),
};

/// A channel name (`web`, `email`, ...) to its proto number.
pub(super) fn channel(name: &str) -> Result<i32, String> {
    CHANNEL.parse(name)
}

/// The configuration name of a channel number.
pub(super) fn channel_name(n: i32) -> String {
    CHANNEL.name(n)
}

/// `inbound` or `outbound` to its proto number.
pub(super) fn direction(name: &str) -> Result<i32, String> {
    DIRECTION.parse(name)
}

/// `channel`, `action` or `all_channels` to its proto `CapScope` number.
pub(super) fn cap_scope(name: &str) -> Result<i32, String> {
    SCOPE.parse(name)
}

/// A signal name (`cart_abandoned`, `detractor`, ...) to its proto `SignalKind` number.
pub(super) fn signal(name: &str) -> Result<i32, String> {
    SIGNAL.parse(name)
}

/// The proto number of the outbound direction.
pub(super) fn outbound() -> i32 {
    Direction::Outbound as i32
}
