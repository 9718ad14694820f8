//! The model registry on Redis. Every key of a tenant's registry carries the tenant's hash tag,
//! so each script touches one slot. Storing a version and activating an assignment are one Lua
//! script each: the check and the write cannot interleave with another replica's.

use std::sync::LazyLock;

use redis::Script;

use super::{RedisStore, map_err};
use crate::{
    Activation, Assignment, ModelRegistry, ModelVersionMeta, StoreError, keys,
    models::{StoredAssignment, sort_versions},
};

/// KEYS = artifact, versions hash; ARGV = field, artifact bytes, metadata JSON.
/// Returns 1 (stored), 0 (the same bytes were stored already) or -1 (other bytes are stored).
/// Lua strings are byte strings, so the comparison is exact.
static PUT_VERSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1])
if cur then
  if cur == ARGV[2] then return 0 end
  return -1
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
",
    )
});

/// KEYS = assignments hash, change counter; ARGV = kind, expected revision, assignment JSON
/// without its revision. Returns `{'conflict', <current revision>}` or
/// `{'done', <new JSON>, <previous JSON or ''>}`.
///
/// The script appends `"revision":<n>` to the JSON object it is given instead of re-encoding
/// it with `cjson`, which would round the challenger share to 14 digits. The existence of the
/// versions is not checked here: versions are never deleted, so the caller's check holds.
static ACTIVATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local rev = 0
if cur then rev = tonumber(cjson.decode(cur).revision) or 0 end
local expected = tonumber(ARGV[2])
if expected ~= 0 and expected ~= rev then
  return {'conflict', string.format('%d', rev)}
end
local new = string.sub(ARGV[3], 1, -2) .. ',"revision":' .. string.format('%d', rev + 1) .. '}'
redis.call('HSET', KEYS[1], ARGV[1], new)
redis.call('INCR', KEYS[2])
return {'done', new, cur or ''}
"#,
    )
});

fn decode<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Backend(format!("malformed stored {what}: {e}: {json}")))
}

fn decode_assignment(json: &str) -> Result<Assignment, StoreError> {
    decode::<StoredAssignment>("model assignment", json).map(StoredAssignment::into_assignment)
}

#[async_trait::async_trait]
impl ModelRegistry for RedisStore {
    async fn put_version(
        &self,
        tenant_id: &str,
        meta: &ModelVersionMeta,
        artifact: &[u8],
    ) -> Result<bool, StoreError> {
        let meta_json = serde_json::to_string(meta)
            .map_err(|e| StoreError::Backend(format!("encoding model metadata: {e}")))?;
        let result: i64 = PUT_VERSION
            .key(keys::model_artifact(
                tenant_id,
                &meta.model_id,
                &meta.version,
            ))
            .key(keys::model_versions(tenant_id))
            .arg(keys::model_field(&meta.model_id, &meta.version))
            .arg(artifact)
            .arg(meta_json)
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        match result {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(StoreError::Conflict(format!(
                "model {} version {} is already stored with different contents",
                meta.model_id, meta.version
            ))),
        }
    }

    async fn get_version(
        &self,
        tenant_id: &str,
        model_id: &str,
        version: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        redis::cmd("GET")
            .arg(keys::model_artifact(tenant_id, model_id, version))
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)
    }

    async fn list_versions(&self, tenant_id: &str) -> Result<Vec<ModelVersionMeta>, StoreError> {
        let values: Vec<String> = redis::cmd("HVALS")
            .arg(keys::model_versions(tenant_id))
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        let mut versions = values
            .iter()
            .map(|json| decode("model metadata", json))
            .collect::<Result<Vec<ModelVersionMeta>, _>>()?;
        sort_versions(&mut versions);
        Ok(versions)
    }

    async fn assignments(&self, tenant_id: &str) -> Result<Vec<Assignment>, StoreError> {
        let values: Vec<String> = redis::cmd("HVALS")
            .arg(keys::model_assignments(tenant_id))
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        let mut assignments = values
            .iter()
            .map(|json| decode_assignment(json))
            .collect::<Result<Vec<_>, _>>()?;
        assignments.sort_by(|a, b| a.kind.cmp(&b.kind));
        Ok(assignments)
    }

    async fn activate(
        &self,
        tenant_id: &str,
        kind: &str,
        champion: (&str, &str),
        challenger: Option<(&str, &str)>,
        challenger_share: f64,
        expected_revision: u64,
        now_ms: i64,
    ) -> Result<Activation, StoreError> {
        let body = StoredAssignment::new(kind, champion, challenger, challenger_share, now_ms);
        let body = serde_json::to_string(&body)
            .map_err(|e| StoreError::Backend(format!("encoding model assignment: {e}")))?;
        let reply: Vec<String> = ACTIVATE
            .key(keys::model_assignments(tenant_id))
            .key(keys::model_assignments_changed(tenant_id))
            .arg(kind)
            .arg(expected_revision)
            .arg(body)
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        match reply.as_slice() {
            [tag, revision] if tag == "conflict" => Ok(Activation::Conflict {
                current_revision: revision.parse().map_err(|_| {
                    StoreError::Backend(format!("unexpected activation reply: {reply:?}"))
                })?,
            }),
            [tag, current, previous] if tag == "done" => Ok(Activation::Done {
                current: decode_assignment(current)?,
                previous: if previous.is_empty() {
                    None
                } else {
                    Some(decode_assignment(previous)?)
                },
            }),
            _ => Err(StoreError::Backend(format!(
                "unexpected activation reply: {reply:?}"
            ))),
        }
    }

    async fn assignments_changed(&self, tenant_ids: &[String]) -> Result<Vec<u64>, StoreError> {
        if tenant_ids.is_empty() {
            return Ok(Vec::new());
        }
        // One GET per tenant in a pipeline rather than MGET: the counters of different tenants
        // lie in different slots on Redis Cluster.
        let mut pipe = redis::pipe();
        for tenant in tenant_ids {
            pipe.cmd("GET").arg(keys::model_assignments_changed(tenant));
        }
        let values: Vec<Option<u64>> = pipe.query_async(&mut self.conn()).await.map_err(map_err)?;
        Ok(values.into_iter().map(Option::unwrap_or_default).collect())
    }
}
