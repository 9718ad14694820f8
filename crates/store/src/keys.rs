//! Every Redis key IEE writes, in one place. Keys of a shard share the hash tag `{s<n>}` and
//! keys of a tenant the tag `{t:<tenant>}`, so multi-key scripts stay within one slot on Redis
//! Cluster (the membership keys share `{members}`, the signal watchers' cursors `{decide}`, the
//! keys of a KPI measurement partition `{kp<n>}`).

/// Prefix of every key, so an IEE installation can share a Redis with other users.
pub const PREFIX: &str = "iee";

/// The event log of a shard (a stream; entries have one field `r`, an encoded `LogRecord`).
pub fn log(shard: u32) -> String {
    format!("{PREFIX}:{{s{shard}}}:log")
}

/// Dedup marker of one event id, on the shard of its customer; holds the log offset.
pub fn dedup(shard: u32, tenant_id: &str, event_id: &str) -> String {
    format!("{PREFIX}:{{s{shard}}}:dedup:{tenant_id}:{event_id}")
}

/// The dead-letter stream of a tenant (entries have one field `d`, an encoded `DeadLetter`).
pub fn dead_letters(tenant_id: &str) -> String {
    format!("{PREFIX}:{{t:{tenant_id}}}:rejected")
}

/// The customer an anonymous id is linked to.
pub fn identity_link(tenant_id: &str, anonymous_id: &str) -> String {
    format!("{PREFIX}:{{t:{tenant_id}}}:anon:{anonymous_id}")
}

/// The epoch of a shard: an integer that only grows, one step per lease acquisition (the
/// fencing token). Never expires.
pub fn epoch(shard: u32) -> String {
    format!("{PREFIX}:{{s{shard}}}:epoch")
}

/// The lease of a shard: `<node_id>|<epoch>|<address>`, expiring (`PX`) unless renewed.
pub fn lease(shard: u32) -> String {
    format!("{PREFIX}:{{s{shard}}}:lease")
}

/// The profile consumer's checkpoint of a shard's log (a log offset).
pub fn checkpoint(shard: u32) -> String {
    format!("{PREFIX}:{{s{shard}}}:ckpt")
}

/// The acknowledged log offset of each consumer of a shard's log (a hash consumer → offset).
/// Trimming never passes the smallest.
pub fn acks(shard: u32) -> String {
    format!("{PREFIX}:{{s{shard}}}:acks")
}

/// The encoded profile of one customer of a shard.
pub fn profile(shard: u32, tenant_id: &str, key: &str) -> String {
    format!("{PREFIX}:{{s{shard}}}:p:{tenant_id}:{key}")
}

/// The durable timers of a shard (a sorted set: member → due time, Unix milliseconds).
pub fn timers(shard: u32) -> String {
    format!("{PREFIX}:{{s{shard}}}:timers")
}

/// The signal history of a shard (a stream; entries have one field `s`, an encoded signal),
/// trimmed by age on every append.
pub fn signals(shard: u32) -> String {
    format!("{PREFIX}:{{s{shard}}}:signals")
}

/// The erasure tombstone of one customer (holds the erasure time, Unix milliseconds). Named by
/// a 128-bit xxh3 hash of the customer key, so no key left behind by an erasure names the
/// customer.
pub fn erased(shard: u32, tenant_id: &str, key: &str) -> String {
    let hash = xxhash_rust::xxh3::xxh3_128(key.as_bytes());
    format!("{PREFIX}:{{s{shard}}}:erased:{tenant_id}:{hash:032x}")
}

/// Live profile nodes: a sorted set node id → expiry (Redis server time, Unix milliseconds).
pub fn members_live() -> String {
    format!("{PREFIX}:{{members}}:live")
}

/// Addresses of profile nodes: a hash node id → `host:port`.
pub fn members_addr() -> String {
    format!("{PREFIX}:{{members}}:addr")
}

/// The artifact of one model version (a string, immutable once written). The model id is
/// length-prefixed so that no pair of model id and version can name another pair's key.
pub fn model_artifact(tenant_id: &str, model_id: &str, version: &str) -> String {
    format!(
        "{PREFIX}:{{t:{tenant_id}}}:model:{}",
        model_field(model_id, version)
    )
}

/// The metadata of a tenant's model versions (a hash [`model_field`] → JSON metadata).
pub fn model_versions(tenant_id: &str) -> String {
    format!("{PREFIX}:{{t:{tenant_id}}}:models")
}

/// The field of one model version in [`model_versions`]: `<len>:<model_id>:<version>`.
pub fn model_field(model_id: &str, version: &str) -> String {
    format!("{}:{model_id}:{version}", model_id.len())
}

/// A tenant's model assignments (a hash kind → JSON assignment).
pub fn model_assignments(tenant_id: &str) -> String {
    format!("{PREFIX}:{{t:{tenant_id}}}:assignments")
}

/// A counter bumped with every assignment change of a tenant, polled by replicas.
pub fn model_assignments_changed(tenant_id: &str) -> String {
    format!("{PREFIX}:{{t:{tenant_id}}}:assignments:changed")
}

/// The shared statistics of one online propensity model: a hash action id → packed evidence
/// (little-endian f64s: observations, updated-at milliseconds, then the precisions and the etas
/// of the weights).
pub fn propensity(tenant_id: &str, model_id: &str) -> String {
    format!("{PREFIX}:{{t:{tenant_id}}}:prop:{model_id}")
}

/// The last merge applied from each replica to [`propensity`]'s statistics: a hash replica id →
/// sequence number (merges are applied once).
pub fn propensity_merges(tenant_id: &str, model_id: &str) -> String {
    format!("{PREFIX}:{{t:{tenant_id}}}:propseq:{model_id}")
}

/// One stored decision configuration version of a tenant (a hash: `yaml` → the text,
/// `created_at_ms` → when it was first stored). Immutable once written, never deleted.
pub fn decision_config(tenant_id: &str, version: &str) -> String {
    format!("{PREFIX}:{{t:{tenant_id}}}:dconf:v:{version}")
}

/// The active decision configuration of a tenant (a hash: `version`, `activated_at_ms`),
/// changed by compare-and-set.
pub fn decision_config_active(tenant_id: &str) -> String {
    format!("{PREFIX}:{{t:{tenant_id}}}:dconf:active")
}

/// The record of one decision (an encoded `DecisionRecord`), expiring with the retention.
pub fn decision(tenant_id: &str, decision_id: &str) -> String {
    format!("{PREFIX}:{{t:{tenant_id}}}:dec:{decision_id}")
}

/// The decision made for one request id (holds the decision id), expiring with the decision's
/// record; written only if absent, which makes retried requests idempotent.
pub fn decision_request(tenant_id: &str, request_id: &str) -> String {
    format!("{PREFIX}:{{t:{tenant_id}}}:decreq:{request_id}")
}

/// The outbound stream of a tenant's proactive decisions (entries have one field `o`, an
/// encoded `OutboundAction`), trimmed to about its maximum length on every append.
pub fn outbound(tenant_id: &str) -> String {
    format!("{PREFIX}:{{t:{tenant_id}}}:outbound")
}

/// Dedup marker of one outbound key of a tenant; holds the cursor of the entry published
/// under it and expires after the dedup period.
pub fn outbound_dedup(tenant_id: &str, key: &str) -> String {
    format!("{PREFIX}:{{t:{tenant_id}}}:outkey:{key}")
}

/// The signal watcher's resume cursors (a hash shard → signal cursor), one per watcher. The
/// watchers share the tag `{decide}`: the hash is the only key a cursor operation touches.
pub fn signal_cursors(watcher: &str) -> String {
    format!("{PREFIX}:{{decide}}:sigcur:{watcher}")
}

/// Field of a log entry holding the encoded record.
pub const LOG_FIELD: &str = "r";
/// Field of a dead-letter entry holding the encoded dead letter.
pub const DEAD_LETTER_FIELD: &str = "d";
/// Field of a signal-history entry holding the encoded signal.
pub const SIGNAL_FIELD: &str = "s";
/// Field of an outbound entry holding the encoded outbound action.
pub const OUTBOUND_FIELD: &str = "o";

/// The KPI service's aggregated offsets of the shard logs of a measurement partition (a hash
/// shard → log offset). Keys of a partition share the hash tag `{kp<n>}`.
pub fn kpi_offsets(partition: u32) -> String {
    format!("{PREFIX}:{{kp{partition}}}:kpi:off")
}

/// The KPI service's measurement state of one customer (in its shard's partition).
pub fn kpi_customer(partition: u32, tenant_id: &str, key: &str) -> String {
    format!("{PREFIX}:{{kp{partition}}}:kpi:c:{tenant_id}:{key}")
}

/// One field family (statistic) of an aggregate bucket of a tenant in a partition (a hash
/// field → number); `granularity` is the bucket width's tag (`m`, `h`, `d`), `bucket` its start
/// in Unix seconds.
pub fn kpi_bucket(
    partition: u32,
    tenant_id: &str,
    granularity: &str,
    bucket: i64,
    family: &str,
) -> String {
    format!("{PREFIX}:{{kp{partition}}}:kpi:a:{tenant_id}:{granularity}:{bucket}:{family}")
}

/// The KPI bookkeeping values of a tenant in a partition (a hash field → number).
pub fn kpi_marks(partition: u32, tenant_id: &str) -> String {
    format!("{PREFIX}:{{kp{partition}}}:kpi:x:{tenant_id}")
}

/// The tenants with KPI aggregates in a partition (a set).
pub fn kpi_tenants(partition: u32) -> String {
    format!("{PREFIX}:{{kp{partition}}}:kpi:tenants")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_keys_share_one_hash_tag() {
        assert_eq!(log(7), "iee:{s7}:log");
        assert_eq!(dedup(7, "acme", "e-1"), "iee:{s7}:dedup:acme:e-1");
        // An event id with braces does not change the slot: the first tag wins.
        assert!(dedup(7, "acme", "{x}").starts_with("iee:{s7}:"));
        for key in [
            epoch(7),
            lease(7),
            checkpoint(7),
            acks(7),
            profile(7, "acme", "c-1"),
            timers(7),
            signals(7),
            erased(7, "acme", "c-1"),
        ] {
            assert!(key.starts_with("iee:{s7}:"), "{key}");
        }
        assert_eq!(members_live()[..14], members_addr()[..14]);
    }

    #[test]
    fn model_keys_share_the_tenant_tag_and_never_collide() {
        for key in [
            model_artifact("acme", "churn", "v1"),
            model_versions("acme"),
            model_assignments("acme"),
            model_assignments_changed("acme"),
        ] {
            assert!(key.starts_with("iee:{t:acme}:"), "{key}");
        }
        assert_ne!(model_field("a:b", "c"), model_field("a", "b:c"));
    }

    #[test]
    fn decision_keys_share_the_tenant_tag_and_never_collide() {
        for key in [
            decision_config("acme", "v1"),
            decision_config_active("acme"),
            decision("acme", "d-1"),
            decision_request("acme", "r-1"),
            outbound("acme"),
            outbound_dedup("acme", "k-1"),
        ] {
            assert!(key.starts_with("iee:{t:acme}:"), "{key}");
        }
        // A version named `active` does not hit the active pointer.
        assert_ne!(
            decision_config("acme", "active"),
            decision_config_active("acme")
        );
        assert!(signal_cursors("w-1").starts_with("iee:{decide}:"));
        assert_ne!(signal_cursors("w-1"), signal_cursors("w-2"));
    }

    #[test]
    fn kpi_keys_of_a_partition_share_its_tag() {
        for key in [
            kpi_offsets(7),
            kpi_customer(7, "acme", "c-1"),
            kpi_bucket(7, "acme", "h", 3_600, "nps.p"),
            kpi_marks(7, "acme"),
            kpi_tenants(7),
        ] {
            assert!(key.starts_with("iee:{kp7}:kpi:"), "{key}");
        }
        assert_ne!(
            kpi_bucket(7, "acme", "h", 0, "ev"),
            kpi_bucket(7, "acme", "d", 0, "ev")
        );
    }

    #[test]
    fn tombstone_key_does_not_name_the_customer() {
        let key = erased(3, "acme", "jane.doe@example.com");
        assert!(!key.contains("jane"), "{key}");
        assert_ne!(key, erased(3, "acme", "john.doe@example.com"));
    }
}
