//! The decision service across processes: `iee-ingest`, `iee-profile`, `iee-predict` and
//! `iee-decide` over one private Redis, talking real gRPC on loopback.

mod caps;
mod config;
mod funnel;
mod learning;
mod proactive;
mod standalone;
mod support;
