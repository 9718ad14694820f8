//! The customer actor: one per active customer, owning its profile. It applies the customer's
//! events in log order, decides its contact reservations one at a time, and hands its changes to
//! the shard actor, which writes them behind in fenced batches.

mod actor;
mod state;
mod stitch;

pub(crate) use actor::{
    CustomerActor, CustomerArgs, CustomerMsg, ERASE_EVENT_TYPE, Snapshot, StoredState, unix_ms,
};
pub(crate) use stitch::is_merge_out;
