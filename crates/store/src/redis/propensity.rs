//! The propensity models' shared statistics on Redis: one hash per model (action → packed
//! evidence), merged by one script per call so every merge is atomic and stays in one slot.

use std::sync::LazyLock;

use redis::Script;

use super::{RedisStore, map_err};
use crate::{
    ActionDelta, ActionStats, MergeToken, PropensityStats, StoreError, keys,
    propensity::check_delta,
};

/// Bytes of the header of a packed entry: observations and updated-at, one f64 each.
const HEADER: usize = 16;

/// KEYS = the model's hash, its hash of applied merges; ARGV = half_life_ms, replica id,
/// sequence, then per delta: action, observations, packed precisions ‖ etas (little-endian
/// f64s). Returns the number of actions written, or -1 for a merge applied before.
///
/// Every entry is decayed by `2^(-(now - updated_at) / half_life)` (server clock) before the
/// delta is added, and stamped with `now`. All entries are checked and computed before the
/// first write, so a width mismatch fails the call without changing anything. Lua numbers are
/// IEEE doubles, so the additions are the same as Rust's.
static MERGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local half_life = tonumber(ARGV[1])
local last = redis.call('HGET', KEYS[2], ARGV[2])
if last and tonumber(last) >= tonumber(ARGV[3]) then return -1 end
local cur = {}
local order = {}
for i = 4, #ARGV, 3 do
  local a, n, d = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  if cur[a] == nil then
    cur[a] = redis.call('HGET', KEYS[1], a)
    order[#order + 1] = a
  end
  local c = cur[a]
  if not c then
    cur[a] = struct.pack('<dd', n, now) .. d
  else
    if #c ~= #d + 16 then
      return redis.error_reply('propensity statistics of action ' .. a .. ' hold ' ..
        ((#c - 16) / 16) .. ' weights, the delta ' .. (#d / 16))
    end
    local obs = struct.unpack('<d', c, 1)
    local at = struct.unpack('<d', c, 9)
    local f = 1
    if half_life > 0 and now > at then f = math.pow(2, (at - now) / half_life) end
    local out = {struct.pack('<dd', obs + n, now)}
    for j = 0, #d / 8 - 1 do
      local v = struct.unpack('<d', c, 17 + 8 * j) * f + struct.unpack('<d', d, 1 + 8 * j)
      out[j + 2] = struct.pack('<d', v)
    end
    cur[a] = table.concat(out)
  end
end
for _, a in ipairs(order) do
  redis.call('HSET', KEYS[1], a, cur[a])
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return #order
",
    )
});

fn pack(delta: &ActionDelta) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * delta.precision.len());
    for v in delta.precision.iter().chain(&delta.eta) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn unpack(action: &str, bytes: &[u8]) -> Result<ActionStats, StoreError> {
    if bytes.len() < HEADER || !(bytes.len() - HEADER).is_multiple_of(16) {
        return Err(StoreError::Backend(format!(
            "malformed propensity statistics of action {action:?}: {} bytes",
            bytes.len()
        )));
    }
    let values: Vec<f64> = bytes
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            f64::from_le_bytes(b)
        })
        .collect();
    let width = (values.len() - 2) / 2;
    // Both header values are integers well below 2^53, so the conversions are exact.
    Ok(ActionStats {
        observations: values[0] as u64,
        updated_at_ms: values[1] as i64,
        precision: values[2..2 + width].to_vec(),
        eta: values[2 + width..].to_vec(),
    })
}

#[async_trait::async_trait]
impl PropensityStats for RedisStore {
    async fn merge(
        &self,
        tenant_id: &str,
        model_id: &str,
        token: &MergeToken,
        deltas: &[ActionDelta],
        half_life_ms: u64,
    ) -> Result<bool, StoreError> {
        if deltas.is_empty() {
            return Ok(true);
        }
        let mut invocation = MERGE.key(keys::propensity(tenant_id, model_id));
        invocation
            .key(keys::propensity_merges(tenant_id, model_id))
            .arg(half_life_ms)
            .arg(token.replica_id.as_str())
            .arg(token.sequence);
        for delta in deltas {
            check_delta(delta)?;
            invocation
                .arg(delta.action_id.as_str())
                .arg(delta.observations)
                .arg(pack(delta));
        }
        invocation
            .invoke_async::<i64>(&mut self.conn())
            .await
            .map(|written| written >= 0)
            .map_err(map_err)
    }

    async fn load(
        &self,
        tenant_id: &str,
        model_id: &str,
        actions: &[String],
    ) -> Result<Vec<Option<ActionStats>>, StoreError> {
        if actions.is_empty() {
            return Ok(Vec::new());
        }
        let packed: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
            .arg(keys::propensity(tenant_id, model_id))
            .arg(actions)
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        actions
            .iter()
            .zip(packed)
            .map(|(action, bytes)| bytes.map(|b| unpack(action, &b)).transpose())
            .collect()
    }

    async fn actions(&self, tenant_id: &str, model_id: &str) -> Result<Vec<String>, StoreError> {
        let mut actions: Vec<String> = redis::cmd("HKEYS")
            .arg(keys::propensity(tenant_id, model_id))
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        actions.sort();
        Ok(actions)
    }
}
