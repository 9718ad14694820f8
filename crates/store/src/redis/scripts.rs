//! The Lua scripts of the profile service's shard storage. Each touches the keys of one shard
//! (or the membership keys) only, so it runs within one hash slot. Times come from the Redis
//! server clock (`TIME`), never from a client's.

use std::sync::LazyLock;

use redis::Script;

/// Lua: the Redis server time in Unix milliseconds, as `now`.
macro_rules! now_ms {
    () => {
        "local t = redis.call('TIME')\n\
         local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    };
}

/// KEYS = live, addr; ARGV = node_id, address, ttl_ms. Also forgets expired members.
pub(super) static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        now_ms!(),
        r"
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #gone > 0 then
  redis.call('ZREM', KEYS[1], unpack(gone))
  redis.call('HDEL', KEYS[2], unpack(gone))
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"
    ))
});

/// KEYS = live, addr. Returns node_id, address, node_id, address, … of the live members.
pub(super) static MEMBERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        now_ms!(),
        r"
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
local out = {}
if #live == 0 then return out end
local addrs = redis.call('HMGET', KEYS[2], unpack(live))
for i = 1, #live do
  if addrs[i] then
    out[#out + 1] = live[i]
    out[#out + 1] = addrs[i]
  end
end
return out
"
    ))
});

/// KEYS = epoch, lease; ARGV = node_id, address, ttl_ms.
/// Returns `{'held', <lease value>}` or `{'acquired', <new epoch>}`.
pub(super) static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[2])
if cur and string.sub(cur, 1, #ARGV[1] + 1) ~= ARGV[1] .. '|' then
  return {'held', cur}
end
local epoch = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1] .. '|' .. epoch .. '|' .. ARGV[2], 'PX', ARGV[3])
return {'acquired', tostring(epoch)}
",
    )
});

/// KEYS = lease; ARGV = `<node_id>|<epoch>|`, ttl_ms. 1 if renewed, 0 if the lease is lost.
pub(super) static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
",
    )
});

/// KEYS = lease; ARGV = `<node_id>|<epoch>|`. Deletes the lease if it is still that one.
pub(super) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
",
    )
});

/// The fenced write of one shard.
///
/// KEYS = epoch, lease, ckpt, acks, timers, signals, profile_1 … profile_P, erased_1 … erased_E.
/// ARGV = epoch, `<node_id>|<epoch>|`, consumer, P, E, has_checkpoint (`1`/`0`), checkpoint,
/// timers to set (count), timers to clear (count), signals (count), retention_ms, then
/// per profile `s` + bytes or `d` + empty, per timer to set due + member, per timer to clear
/// member, per signal bytes, per erasure its time.
///
/// Returns `{'fenced', <current epoch>}` having written nothing, or `{'ok', <signal id>…}`.
pub(super) static WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        r"
local current = redis.call('GET', KEYS[1])
local lease = redis.call('GET', KEYS[2])
if current ~= ARGV[1] or not lease or string.sub(lease, 1, #ARGV[2]) ~= ARGV[2] then
  return {'fenced', current or '0'}
end
local np, ne = tonumber(ARGV[4]), tonumber(ARGV[5])
local nset, nclear, nsig = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local i = 12
for k = 1, np do
  if ARGV[i] == 's' then
    redis.call('SET', KEYS[6 + k], ARGV[i + 1])
  else
    redis.call('DEL', KEYS[6 + k])
  end
  i = i + 2
end
if ARGV[6] == '1' then
  redis.call('SET', KEYS[3], ARGV[7])
  redis.call('HSET', KEYS[4], ARGV[3], ARGV[7])
end
for k = 1, nset do
  redis.call('ZADD', KEYS[5], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for k = 1, nclear do
  redis.call('ZREM', KEYS[5], ARGV[i])
  i = i + 1
end
local out = {'ok'}
if nsig > 0 then
",
        now_ms!(),
        r"
  local minid = string.format('%d', math.max(0, now - tonumber(ARGV[11])))
  for k = 1, nsig do
    out[#out + 1] = redis.call('XADD', KEYS[6], 'MINID', '~', minid, '*', 's', ARGV[i])
    i = i + 1
  end
end
for k = 1, ne do
  redis.call('SET', KEYS[6 + np + k], ARGV[i])
  i = i + 1
end
return out
"
    ))
});

/// KEYS = acks, log; ARGV = consumers. Trims the log below the smallest acknowledged offset;
/// returns how many entries went (0 if a consumer has acknowledged nothing).
pub(super) static TRIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if #ARGV == 0 then return 0 end
local acked = redis.call('HMGET', KEYS[1], unpack(ARGV))
local min, min_ms, min_seq
for i = 1, #ARGV do
  local id = acked[i]
  if not id then return 0 end
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if not ms then return redis.error_reply('malformed acknowledged offset ' .. id) end
  ms, seq = tonumber(ms), tonumber(seq)
  if not min or ms < min_ms or (ms == min_ms and seq < min_seq) then
    min, min_ms, min_seq = id, ms, seq
  end
end
return redis.call('XTRIM', KEYS[2], 'MINID', min)
",
    )
});
