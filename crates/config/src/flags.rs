//! Command-line flags every server binary shares; they form the top configuration layer.

use std::path::PathBuf;

use serde_json::{Map, Value, json};

/// Flags of a server binary. Each flag set overrides the file and the environment.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeFlags {
    /// TOML configuration file.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// gRPC listen address (`server.listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Use Redis at this URL (`store.backend = "redis"`, `store.redis.url`).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Prometheus endpoint address; empty disables it (`telemetry.metrics_listen`).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

impl ServeFlags {
    /// The flags as a configuration layer (only the flags that were given).
    pub fn overrides(&self) -> Value {
        let mut root = Map::new();
        if let Some(listen) = &self.listen {
            root.insert("server".into(), json!({ "listen": listen }));
        }
        if let Some(url) = &self.redis_url {
            root.insert(
                "store".into(),
                json!({ "backend": "redis", "redis": { "url": url } }),
            );
        }
        if let Some(addr) = &self.metrics_listen {
            root.insert("telemetry".into(), json!({ "metrics_listen": addr }));
        }
        Value::Object(root)
    }
}
