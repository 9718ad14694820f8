//! The profile service across processes: several `iee-profile` nodes over one real Redis, fed by
//! an ingest node, read over gRPC through the routed client. Nodes crash (SIGKILL), freeze
//! (SIGSTOP/SIGCONT) and leave gracefully (SIGTERM); profiles must still count every
//! acknowledged event exactly once. Timing figures are printed for the record, never asserted
//! tightly.

mod contacts;
mod erasure;
mod failover;
mod identity;
mod lifecycle;
mod support;
