//! Shard routing: `shard = xxh3_64(tenant_id 0x1F customer_key) mod shard_count`. Every service
//! computes it with this function, so any node can tell which shard (and owner) an event has.

use crate::pb::common::Event;
use xxhash_rust::xxh3::Xxh3;

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

/// The shard of `(tenant_id, key)` among `shard_count` shards.
///
/// # Panics
/// If `shard_count` is zero, which configuration validation rules out.
pub fn shard_of(tenant_id: &str, key: &str, shard_count: u32) -> u32 {
    hash_parts(tenant_id, &[key.as_bytes()], shard_count)
}

/// The shard of an event: `shard_of(tenant, customer_key(customer_id, anonymous_id))`, without
/// allocating.
pub fn shard_of_event(event: &Event, shard_count: u32) -> u32 {
    if event.customer_id.is_empty() {
        hash_parts(
            &event.tenant_id,
            &[
                ANONYMOUS_KEY_PREFIX.as_bytes(),
                event.anonymous_id.as_bytes(),
            ],
            shard_count,
        )
    } else {
        hash_parts(
            &event.tenant_id,
            &[event.customer_id.as_bytes()],
            shard_count,
        )
    }
}

fn hash_parts(tenant_id: &str, key: &[&[u8]], shard_count: u32) -> u32 {
    assert!(
        shard_count > 0,
        "shard_count must be positive (validated in config)"
    );
    let mut hasher = Xxh3::new();
    hasher.update(tenant_id.as_bytes());
    // A separator that cannot occur in a valid tenant id, so ("ab","c") != ("a","bc").
    hasher.update(&[0x1f]);
    for part in key {
        hasher.update(part);
    }
    // Truncation is intended: the remainder is below shard_count, a u32.
    (hasher.digest() % u64::from(shard_count)) as u32
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
    fn hash_is_xxh3_of_tenant_separator_key() {
        // The documented formula, so other languages can route the same way.
        let expected = xxhash_rust::xxh3::xxh3_64(b"acme\x1fc-1") % 1024;
        assert_eq!(u64::from(shard_of("acme", "c-1", 1024)), expected);
    }

    #[test]
    fn event_shard_matches_key_shard() {
        let mut event = Event {
            tenant_id: "acme".into(),
            anonymous_id: "v-1".into(),
            ..Default::default()
        };
        assert_eq!(
            shard_of_event(&event, 1024),
            shard_of("acme", "anon:v-1", 1024)
        );
        event.customer_id = "c-7".into();
        assert_eq!(shard_of_event(&event, 1024), shard_of("acme", "c-7", 1024));
    }

    #[test]
    fn anonymous_visitors_route_by_prefixed_key() {
        assert_eq!(customer_key("", "v-9"), "anon:v-9");
        assert_eq!(customer_key("c-1", "v-9"), "c-1");
    }
}
