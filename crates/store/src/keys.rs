//! Every Redis key IEE writes, in one place. Keys of a shard share the hash tag `{s<n>}` and
//! keys of a tenant the tag `{t:<tenant>}`, so multi-key scripts stay within one slot on Redis
//! Cluster.

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

/// Field of a log entry holding the encoded record.
pub const LOG_FIELD: &str = "r";
/// Field of a dead-letter entry holding the encoded dead letter.
pub const DEAD_LETTER_FIELD: &str = "d";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_keys_share_one_hash_tag() {
        assert_eq!(log(7), "iee:{s7}:log");
        assert_eq!(dedup(7, "acme", "e-1"), "iee:{s7}:dedup:acme:e-1");
        // An event id with braces does not change the slot: the first tag wins.
        assert!(dedup(7, "acme", "{x}").starts_with("iee:{s7}:"));
    }
}
