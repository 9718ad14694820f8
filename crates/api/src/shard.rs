//! Shard routing: `shard = xxh3_64(tenant_id 0x1F customer_key) mod shard_count`. Every service
//! computes it with this function, so any node can tell which shard (and owner) an event has.

use crate::pb::common::Event;
use xxhash_rust::xxh3::xxh3_64;

/// The default number of shards of an installation. Fixed at install; never derived from the
/// number of pods.
pub const DEFAULT_SHARD_COUNT: u32 = 1024;

/// Prefix of the routing key of a customer known only by an anonymous id.
pub const ANONYMOUS_KEY_PREFIX: &str = "anon:";

/// The key an event is routed by: the customer id if known, else `anon:<anonymous_id>`.
pub fn customer_key(customer_id: &str, anonymous_id: &str) -> String {
    if customer_id.is_empty() {
        format!("{ANONYMOUS_KEY_PREFIX}{anonymous_id}")
    } else {
        customer_id.to_owned()
    }
}

/// The routing key of an event (see [`customer_key`]).
pub fn event_key(event: &Event) -> String {
    customer_key(&event.customer_id, &event.anonymous_id)
}

/// The shard of `(tenant_id, key)` among `shard_count` shards.
///
/// # Panics
/// If `shard_count` is zero, which configuration validation rules out.
pub fn shard_of(tenant_id: &str, key: &str, shard_count: u32) -> u32 {
    assert!(
        shard_count > 0,
        "shard_count must be positive (validated in config)"
    );
    let mut buf = Vec::with_capacity(tenant_id.len() + 1 + key.len());
    buf.extend_from_slice(tenant_id.as_bytes());
    // A separator that cannot occur in a valid tenant id, so ("ab","c") != ("a","bc").
    buf.push(0x1f);
    buf.extend_from_slice(key.as_bytes());
    // Truncation is intended: the remainder is below shard_count, a u32.
    (xxh3_64(&buf) % u64::from(shard_count)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_is_stable_and_in_range() {
        let a = shard_of("acme", "c-1", DEFAULT_SHARD_COUNT);
        assert_eq!(a, shard_of("acme", "c-1", DEFAULT_SHARD_COUNT));
        assert!(a < DEFAULT_SHARD_COUNT);
    }

    #[test]
    fn tenant_and_key_boundary_matters() {
        let spread: std::collections::HashSet<u32> = (0..64)
            .map(|i| shard_of("ab", &format!("c{i}"), 1 << 20))
            .collect();
        let other: std::collections::HashSet<u32> = (0..64)
            .map(|i| shard_of("a", &format!("bc{i}"), 1 << 20))
            .collect();
        assert!(spread.is_disjoint(&other));
    }

    #[test]
    fn keys_spread_over_shards() {
        let mut counts = vec![0u32; 16];
        for i in 0..16_000 {
            counts[shard_of("t", &format!("customer-{i}"), 16) as usize] += 1;
        }
        // Each of 16 shards expects 1000; a fair hash stays well within +-20 %.
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn anonymous_visitors_route_by_prefixed_key() {
        assert_eq!(customer_key("", "v-9"), "anon:v-9");
        assert_eq!(customer_key("c-1", "v-9"), "c-1");
    }
}
