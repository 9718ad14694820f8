//! The two backends every store test runs against: the in-memory store and a real
//! `redis-server` started for the test.

use std::sync::Arc;

use iee_store::{MemoryStore, RedisConfig, RedisStore, Stores};
use iee_test_support::RedisServer;

/// The stores under test; keeps the Redis server alive as long as they are used.
pub struct Backend {
    /// Every store, from one backend.
    pub stores: Stores,
    /// The Redis server behind them (none for the in-memory store). Read only by the tests
    /// that inspect the server itself; the others just keep it alive.
    #[allow(dead_code)]
    pub server: Option<RedisServer>,
}

/// The in-memory store, sized for `shards` shards.
pub fn memory(shards: u32) -> Backend {
    Backend {
        stores: Stores::from_one(Arc::new(MemoryStore::new(shards))),
        server: None,
    }
}

/// A Redis store on a private `redis-server`.
///
/// # Panics
/// If the server does not start or the store cannot be opened.
pub fn redis() -> Backend {
    let server = RedisServer::start();
    let store = RedisStore::open(&RedisConfig {
        url: server.url(),
        ..RedisConfig::default()
    })
    .unwrap_or_else(|e| panic!("open the redis store: {e}"));
    Backend {
        stores: Stores::from_one(Arc::new(store)),
        server: Some(server),
    }
}
