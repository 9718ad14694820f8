//! Layered configuration shared by every IEE binary: built-in defaults, then a TOML file, then
//! `IEE_*` environment variables (`__` separates sections), then command-line flags.

mod cluster;
mod flags;
mod load;

pub use cluster::ClusterConfig;
pub use flags::ServeFlags;
pub use load::{ConfigError, Layers, Validate, load, to_toml};
