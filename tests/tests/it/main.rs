//! Cross-service tests: real gRPC on loopback, a real `redis-server` per test, real processes
//! where the test is about processes. Tests that hold for any backend run on both.

// Test code: a panic with the error is the failure report.
#![allow(clippy::unwrap_used)]

mod decide;
mod demo;
mod durability;
mod idempotency;
mod identify;
mod kpi;
mod outage;
mod predict;
mod profile;
mod profile_standalone;
mod rejected;
mod sigterm;
mod standalone;
mod stream;
mod tenants;
mod tls;
mod trace_loop;
mod tracing;
mod validation;

/// Expands `async fn name(backend: Backend)` test bodies into one test per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(iee_tests::Backend::Redis).await
                }
            )*
        }
        mod on_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(iee_tests::Backend::Memory).await
                }
            )*
        }
    };
}
