//! The shard actor: supervises the customer actors of one owned shard, dispatches the shard's
//! log to them in order, writes their changes behind in fenced batches together with the log
//! checkpoint, passivates idle and least recently used actors, and fires durable timers.

mod actor;
mod dispatch;
mod erase;
mod flush;
mod housekeeping;

pub(crate) use actor::{ShardActor, ShardArgs, ShardMsg};
