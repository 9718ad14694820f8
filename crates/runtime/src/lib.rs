//! The server runtime every IEE binary shares: a gRPC server with `grpc.health.v1` and
//! reflection, Unix signal handling, and graceful shutdown (not-serving, drain, exit).

mod server;
mod shutdown;

pub use server::{GrpcServer, ReadinessProbe, RuntimeError, ServerConfig};
pub use shutdown::{Shutdown, wait_for_signal};
