//! The profile service's storage in process memory: membership, shard leases with epochs, the
//! fenced shard state, and multi-shard log reads that wait for appends.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    time::Duration,
};

use tokio::time::Instant;

use super::{MemoryStore, format_offset, lock, parse_offset};
use crate::{
    Acquire, Lease, LogConsumer, LogEntry, Member, Membership, PROFILE_CONSUMER, ProfileKey,
    ShardLeases, ShardOwner, ShardState, ShardWrite, StoreError, Timer, WriteOutcome,
};

/// Node id → (address, expiry).
pub(super) type Members = BTreeMap<String, (String, Instant)>;

/// A lease as recorded for a shard; live until `expires`.
struct HeldLease {
    node_id: String,
    address: String,
    epoch: u64,
    expires: Instant,
}

/// One entry of a shard's signal history.
struct Signal {
    seq: u64,
    at: Instant,
    payload: Vec<u8>,
}

/// Everything the profile service keeps for one shard.
#[derive(Default)]
pub(super) struct ShardData {
    epoch: u64,
    lease: Option<HeldLease>,
    profiles: HashMap<ProfileKey, Vec<u8>>,
    checkpoint: Option<String>,
    /// `(due, member)`: the order Redis gives a sorted set (score, then member bytes).
    timers: BTreeSet<(i64, String)>,
    /// Member → due, to reschedule or clear a member.
    timer_due: HashMap<String, i64>,
    signals: VecDeque<Signal>,
    last_signal: u64,
    erasures: HashMap<ProfileKey, i64>,
}

impl ShardData {
    fn live_lease(&self, now: Instant) -> Option<&HeldLease> {
        self.lease.as_ref().filter(|lease| lease.expires > now)
    }

    fn owner(&self, shard: u32, now: Instant) -> Option<ShardOwner> {
        self.live_lease(now).map(|lease| ShardOwner {
            shard,
            node_id: lease.node_id.clone(),
            address: lease.address.clone(),
            epoch: lease.epoch,
        })
    }

    /// Whether `node_id` holds the live lease at `epoch`, which is the current one.
    fn holds(&self, node_id: &str, epoch: u64, now: Instant) -> bool {
        self.epoch == epoch
            && self
                .live_lease(now)
                .is_some_and(|lease| lease.node_id == node_id && lease.epoch == epoch)
    }

    fn set_timer(&mut self, timer: &Timer) {
        if let Some(previous) = self.timer_due.insert(timer.member.clone(), timer.due_ms) {
            self.timers.remove(&(previous, timer.member.clone()));
        }
        self.timers.insert((timer.due_ms, timer.member.clone()));
    }

    fn clear_timer(&mut self, member: &str) {
        if let Some(due) = self.timer_due.remove(member) {
            self.timers.remove(&(due, member.to_owned()));
        }
    }

    fn append_signals(
        &mut self,
        signals: &[Vec<u8>],
        retention: Duration,
        now: Instant,
    ) -> Vec<String> {
        let mut cursors = Vec::with_capacity(signals.len());
        for payload in signals {
            self.last_signal += 1;
            self.signals.push_back(Signal {
                seq: self.last_signal,
                at: now,
                payload: payload.clone(),
            });
            cursors.push(format_offset(self.last_signal));
        }
        // Trimmed when appending, as Redis does (XADD … MINID).
        while let Some(oldest) = self.signals.front()
            && oldest.at + retention < now
        {
            self.signals.pop_front();
        }
        cursors
    }
}

impl MemoryStore {
    fn state(&self, shard: u32) -> Result<&std::sync::Mutex<ShardData>, StoreError> {
        self.state
            .get(shard as usize)
            .ok_or_else(|| StoreError::Backend(format!("shard {shard} out of range")))
    }

    /// Entries after each shard's offset, for the shards that have some.
    fn read_available(
        &self,
        from: &[(u32, Option<String>)],
        limit: usize,
    ) -> Result<Vec<(u32, Vec<LogEntry>)>, StoreError> {
        let mut found = Vec::new();
        for (shard, after) in from {
            let after = after.as_deref().map(parse_offset).transpose()?.unwrap_or(0);
            let log = lock(self.shard(*shard)?);
            let start = log.entries.partition_point(|(seq, _)| *seq <= after);
            let entries: Vec<LogEntry> = log.entries[start..]
                .iter()
                .take(limit)
                .map(|(seq, payload)| LogEntry {
                    offset: format_offset(*seq),
                    payload: payload.clone(),
                })
                .collect();
            if !entries.is_empty() {
                found.push((*shard, entries));
            }
        }
        Ok(found)
    }
}

#[async_trait::async_trait]
impl Membership for MemoryStore {
    async fn heartbeat(
        &self,
        node_id: &str,
        address: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut members = lock(&self.members);
        members.retain(|_, (_, expires)| *expires > now);
        members.insert(node_id.to_owned(), (address.to_owned(), now + ttl));
        Ok(())
    }

    async fn leave(&self, node_id: &str) -> Result<(), StoreError> {
        lock(&self.members).remove(node_id);
        Ok(())
    }

    async fn members(&self) -> Result<Vec<Member>, StoreError> {
        let now = Instant::now();
        Ok(lock(&self.members)
            .iter()
            .filter(|(_, (_, expires))| *expires > now)
            .map(|(node_id, (address, _))| Member {
                node_id: node_id.clone(),
                address: address.clone(),
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl ShardLeases for MemoryStore {
    async fn acquire(
        &self,
        shard: u32,
        node_id: &str,
        address: &str,
        ttl: Duration,
    ) -> Result<Acquire, StoreError> {
        let now = Instant::now();
        let mut data = lock(self.state(shard)?);
        if let Some(owner) = data.owner(shard, now)
            && owner.node_id != node_id
        {
            return Ok(Acquire::Held(owner));
        }
        data.epoch += 1;
        let epoch = data.epoch;
        data.lease = Some(HeldLease {
            node_id: node_id.to_owned(),
            address: address.to_owned(),
            epoch,
            expires: now + ttl,
        });
        Ok(Acquire::Acquired(Lease { shard, epoch }))
    }

    async fn renew(
        &self,
        leases: &[Lease],
        node_id: &str,
        ttl: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        let now = Instant::now();
        leases
            .iter()
            .map(|lease| {
                let mut data = lock(self.state(lease.shard)?);
                if !data.holds(node_id, lease.epoch, now) {
                    return Ok(false);
                }
                if let Some(held) = data.lease.as_mut() {
                    held.expires = now + ttl;
                }
                Ok(true)
            })
            .collect()
    }

    async fn release(&self, lease: Lease, node_id: &str) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut data = lock(self.state(lease.shard)?);
        if data.holds(node_id, lease.epoch, now) {
            data.lease = None;
        }
        Ok(())
    }

    async fn owners(&self, shards: &[u32]) -> Result<Vec<Option<ShardOwner>>, StoreError> {
        let now = Instant::now();
        shards
            .iter()
            .map(|&shard| Ok(lock(self.state(shard)?).owner(shard, now)))
            .collect()
    }
}

#[async_trait::async_trait]
impl ShardState for MemoryStore {
    async fn write(&self, write: &ShardWrite) -> Result<WriteOutcome, StoreError> {
        let now = Instant::now();
        // Checked before anything changes, so a bad checkpoint writes nothing.
        let acked = write.checkpoint.as_deref().map(parse_offset).transpose()?;
        let log = self.shard(write.shard)?;
        let mut data = lock(self.state(write.shard)?);
        if !data.holds(&write.node_id, write.epoch, now) {
            return Ok(WriteOutcome::Fenced {
                current_epoch: data.epoch,
            });
        }
        for (key, profile) in &write.profiles {
            match profile {
                Some(bytes) => data.profiles.insert(key.clone(), bytes.clone()),
                None => data.profiles.remove(key),
            };
        }
        if let Some(checkpoint) = &write.checkpoint {
            data.checkpoint = Some(checkpoint.clone());
        }
        if let Some(seq) = acked {
            lock(log).acks.insert(PROFILE_CONSUMER.to_owned(), seq);
        }
        for timer in &write.timers_set {
            data.set_timer(timer);
        }
        for member in &write.timers_clear {
            data.clear_timer(member);
        }
        let signal_cursors = data.append_signals(&write.signals, write.signal_retention, now);
        for (key, at_ms) in &write.erasures {
            data.erasures.insert(key.clone(), *at_ms);
        }
        Ok(WriteOutcome::Written { signal_cursors })
    }

    async fn load(
        &self,
        shard: u32,
        keys: &[ProfileKey],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let data = lock(self.state(shard)?);
        Ok(keys
            .iter()
            .map(|key| data.profiles.get(key).cloned())
            .collect())
    }

    async fn checkpoint(&self, shard: u32) -> Result<Option<String>, StoreError> {
        Ok(lock(self.state(shard)?).checkpoint.clone())
    }

    async fn due_timers(
        &self,
        shard: u32,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<Timer>, StoreError> {
        Ok(lock(self.state(shard)?)
            .timers
            .iter()
            .take_while(|(due, _)| *due <= now_ms)
            .take(limit)
            .map(|(due, member)| Timer {
                member: member.clone(),
                due_ms: *due,
            })
            .collect())
    }

    async fn erased_at(&self, shard: u32, key: &ProfileKey) -> Result<Option<i64>, StoreError> {
        Ok(lock(self.state(shard)?).erasures.get(key).copied())
    }

    async fn read_signals(
        &self,
        shard: u32,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let after = after.map(parse_offset).transpose()?.unwrap_or(0);
        let data = lock(self.state(shard)?);
        let start = data.signals.partition_point(|signal| signal.seq <= after);
        Ok(data
            .signals
            .range(start..)
            .take(limit)
            .map(|signal| LogEntry {
                offset: format_offset(signal.seq),
                payload: signal.payload.clone(),
            })
            .collect())
    }

    async fn oldest_signal(&self, shard: u32) -> Result<Option<String>, StoreError> {
        Ok(lock(self.state(shard)?)
            .signals
            .front()
            .map(|signal| format_offset(signal.seq)))
    }
}

#[async_trait::async_trait]
impl LogConsumer for MemoryStore {
    async fn read_many(
        &self,
        from: &[(u32, Option<String>)],
        limit: usize,
        block: Duration,
    ) -> Result<Vec<(u32, Vec<LogEntry>)>, StoreError> {
        let deadline = Instant::now() + block;
        loop {
            // Registered before looking, so an append between the look and the wait still
            // wakes this reader.
            let appended = self.appended.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let found = self.read_available(from, limit)?;
            if !found.is_empty() {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, appended).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn read_group(
        &self,
        group: &str,
        _consumer: &str,
        shards: &[u32],
        limit: usize,
        block: Duration,
    ) -> Result<Vec<(u32, Vec<LogEntry>)>, StoreError> {
        let deadline = Instant::now() + block;
        loop {
            let appended = self.appended.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let mut found = Vec::new();
            for shard in shards {
                let mut log = lock(self.shard(*shard)?);
                let end = log.next_seq;
                let cursor = *log.groups.entry(group.to_owned()).or_insert(end);
                let start = log.entries.partition_point(|(seq, _)| *seq <= cursor);
                let entries: Vec<LogEntry> = log.entries[start..]
                    .iter()
                    .take(limit.max(1))
                    .map(|(seq, payload)| LogEntry {
                        offset: format_offset(*seq),
                        payload: payload.clone(),
                    })
                    .collect();
                if let Some(last) = entries.last() {
                    let last = parse_offset(&last.offset)?;
                    log.groups.insert(group.to_owned(), last);
                    found.push((*shard, entries));
                }
            }
            if !found.is_empty() {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, appended).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn acknowledge(
        &self,
        shard: u32,
        consumer: &str,
        offset: &str,
    ) -> Result<(), StoreError> {
        let seq = parse_offset(offset)?;
        lock(self.shard(shard)?)
            .acks
            .insert(consumer.to_owned(), seq);
        Ok(())
    }

    async fn trim(&self, shard: u32, consumers: &[&str]) -> Result<u64, StoreError> {
        let mut log = lock(self.shard(shard)?);
        let acked: Option<Vec<u64>> = consumers
            .iter()
            .map(|consumer| log.acks.get(*consumer).copied())
            .collect();
        let Some(slowest) = acked.and_then(|acked| acked.into_iter().min()) else {
            return Ok(0);
        };
        // Strictly below the slowest acknowledgement, like XTRIM MINID.
        let end = log.entries.partition_point(|(seq, _)| *seq < slowest);
        log.entries.drain(..end);
        Ok(end as u64)
    }
}
