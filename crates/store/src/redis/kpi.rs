//! The KPI service's storage on Redis. Every key a commit touches carries its partition's hash
//! tag, so one Lua script checks the shards' offsets and applies the whole batch atomically, on
//! a single instance and on Redis Cluster alike. Reads of a tenant fan out over the partitions
//! in one pipeline.

use std::{
    collections::{BTreeSet, HashMap},
    sync::LazyLock,
};

use redis::Script;

use super::{RedisStore, map_err};
use crate::{
    Granularity, KpiCommit, KpiStore, MarkOp, StoreError, keys,
    kpi::{join_family, split_family},
};

/// KEYS = the offsets hash, then every other key of the batch; ARGV = number of shards, then
/// per shard: shard, has_expected (`1`/`0`), expected, new offset; then operations of four
/// arguments each: op, key index (into KEYS), a, b.
/// Ops: `i` HINCRBYFLOAT field a by b; `E` PEXPIREAT a; `s` SET a PX b; `d` DEL; `n` / `x` keep
/// the smaller / larger of field a and b; `h` HSET field a to b; `a` SADD a.
/// Returns 1 when applied, 0 when the offset was not the expected one (nothing changed).
static COMMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local shards = tonumber(ARGV[1])
for s = 0, shards - 1 do
  local base = 2 + 4 * s
  local cur = redis.call('HGET', KEYS[1], ARGV[base])
  if ARGV[base + 1] == '1' then
    if cur ~= ARGV[base + 2] then return 0 end
  elseif cur then
    return 0
  end
end
local i = 2 + 4 * shards
while i <= #ARGV do
  local op, k, a, b = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3]
  if op == 'i' then
    redis.call('HINCRBYFLOAT', k, a, b)
  elseif op == 'E' then
    redis.call('PEXPIREAT', k, a)
  elseif op == 's' then
    redis.call('SET', k, a, 'PX', b)
  elseif op == 'd' then
    redis.call('DEL', k)
  elseif op == 'n' or op == 'x' then
    local c = redis.call('HGET', k, a)
    if (not c) or (op == 'n' and tonumber(b) < tonumber(c)) or (op == 'x' and tonumber(b) > tonumber(c)) then
      redis.call('HSET', k, a, b)
    end
  elseif op == 'h' then
    redis.call('HSET', k, a, b)
  elseif op == 'a' then
    redis.call('SADD', k, a)
  end
  i = i + 4
end
for s = 0, shards - 1 do
  local base = 2 + 4 * s
  redis.call('HSET', KEYS[1], ARGV[base], ARGV[base + 3])
end
return 1
",
    )
});

/// The script's arguments for one batch: keys and operations (binary-safe: customer states
/// travel as raw bytes).
#[derive(Default)]
struct Batch {
    keys: Vec<String>,
    index: HashMap<String, usize>,
    ops: Vec<[Vec<u8>; 4]>,
}

impl Batch {
    /// Adds an operation on `key`, registering the key (its 1-based KEYS index) on first use.
    fn op(&mut self, op: &str, key: String, a: Vec<u8>, b: Vec<u8>) {
        let next = self.keys.len() + 2;
        let i = *self.index.entry(key.clone()).or_insert_with(|| {
            self.keys.push(key);
            next
        });
        self.ops
            .push([op.as_bytes().to_vec(), i.to_string().into_bytes(), a, b]);
    }
}

fn number(value: f64) -> Vec<u8> {
    // `Display` of f64 never uses an exponent, which HINCRBYFLOAT would refuse.
    format!("{value}").into_bytes()
}

fn batch_of(commit: &KpiCommit) -> Batch {
    let mut batch = Batch::default();
    let mut expiries: HashMap<String, i64> = HashMap::new();
    for inc in &commit.increments {
        if !inc.delta.is_finite() || inc.delta == 0.0 {
            continue;
        }
        let (family, rest) = split_family(&inc.field);
        let key = keys::kpi_bucket(
            commit.partition,
            &inc.tenant_id,
            inc.granularity.tag(),
            inc.bucket,
            family,
        );
        expiries
            .entry(key.clone())
            .and_modify(|e| *e = (*e).max(inc.expires_at_ms))
            .or_insert(inc.expires_at_ms);
        batch.op("i", key, rest.as_bytes().to_vec(), number(inc.delta));
    }
    let mut expiries: Vec<(String, i64)> = expiries.into_iter().collect();
    expiries.sort();
    for (key, at) in expiries {
        batch.op("E", key, at.to_string().into_bytes(), Vec::new());
    }
    let ttl_ms = u64::try_from(commit.customer_ttl.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    for write in &commit.customers {
        let key = keys::kpi_customer(commit.partition, &write.tenant_id, &write.key);
        match &write.state {
            Some(state) => batch.op("s", key, state.clone(), ttl_ms.to_string().into_bytes()),
            None => batch.op("d", key, Vec::new(), Vec::new()),
        }
    }
    for mark in &commit.marks {
        if !mark.value.is_finite() {
            continue;
        }
        let op = match mark.op {
            MarkOp::Min => "n",
            MarkOp::Max => "x",
            MarkOp::Set => "h",
        };
        let key = keys::kpi_marks(commit.partition, &mark.tenant_id);
        batch.op(op, key, mark.field.clone().into_bytes(), number(mark.value));
    }
    for tenant in &commit.tenants {
        batch.op(
            "a",
            keys::kpi_tenants(commit.partition),
            tenant.clone().into_bytes(),
            Vec::new(),
        );
    }
    batch
}

#[async_trait::async_trait]
impl KpiStore for RedisStore {
    async fn kpi_offsets(
        &self,
        partition: u32,
        shards: &[u32],
    ) -> Result<Vec<Option<String>>, StoreError> {
        if shards.is_empty() {
            return Ok(Vec::new());
        }
        redis::cmd("HMGET")
            .arg(keys::kpi_offsets(partition))
            .arg(shards)
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)
    }

    async fn kpi_customers(
        &self,
        partition: u32,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for (tenant, key) in keys {
            cmd.arg(keys::kpi_customer(partition, tenant, key));
        }
        cmd.query_async(&mut self.conn()).await.map_err(map_err)
    }

    async fn kpi_commit(&self, commit: &KpiCommit) -> Result<bool, StoreError> {
        let batch = batch_of(commit);
        let mut invocation = COMMIT.key(keys::kpi_offsets(commit.partition));
        for key in &batch.keys {
            invocation.key(key);
        }
        invocation.arg(commit.offsets.len());
        for moved in &commit.offsets {
            invocation.arg(moved.shard);
            match &moved.expected {
                Some(expected) => invocation.arg("1").arg(expected),
                None => invocation.arg("0").arg(""),
            };
            invocation.arg(&moved.offset);
        }
        for op in &batch.ops {
            for part in op {
                invocation.arg(part.as_slice());
            }
        }
        let applied: i64 = invocation
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        Ok(applied == 1)
    }

    async fn kpi_buckets(
        &self,
        partitions: u32,
        tenant_id: &str,
        granularity: Granularity,
        buckets: &[i64],
        families: &[&str],
    ) -> Result<Vec<HashMap<String, f64>>, StoreError> {
        let mut out = vec![HashMap::new(); buckets.len()];
        if buckets.is_empty() || partitions == 0 || families.is_empty() {
            return Ok(out);
        }
        let mut pipe = redis::pipe();
        let mut slots: Vec<(usize, &str)> = Vec::new();
        for partition in 0..partitions {
            for (i, &bucket) in buckets.iter().enumerate() {
                for &family in families {
                    pipe.cmd("HGETALL").arg(keys::kpi_bucket(
                        partition,
                        tenant_id,
                        granularity.tag(),
                        bucket,
                        family,
                    ));
                    slots.push((i, family));
                }
            }
        }
        let replies: Vec<HashMap<String, f64>> =
            pipe.query_async(&mut self.conn()).await.map_err(map_err)?;
        for ((i, family), reply) in slots.into_iter().zip(replies) {
            let sums = &mut out[i];
            for (rest, value) in reply {
                *sums.entry(join_family(family, &rest)).or_insert(0.0) += value;
            }
        }
        Ok(out)
    }

    async fn kpi_marks(
        &self,
        partitions: u32,
        tenant_id: &str,
    ) -> Result<Vec<HashMap<String, f64>>, StoreError> {
        if partitions == 0 {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for partition in 0..partitions {
            pipe.cmd("HGETALL")
                .arg(keys::kpi_marks(partition, tenant_id));
        }
        pipe.query_async(&mut self.conn()).await.map_err(map_err)
    }

    async fn kpi_tenants(&self, partitions: u32) -> Result<Vec<String>, StoreError> {
        if partitions == 0 {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for partition in 0..partitions {
            pipe.cmd("SMEMBERS").arg(keys::kpi_tenants(partition));
        }
        let replies: Vec<Vec<String>> =
            pipe.query_async(&mut self.conn()).await.map_err(map_err)?;
        let all: BTreeSet<String> = replies.into_iter().flatten().collect();
        Ok(all.into_iter().collect())
    }
}
