//! The loader: merges the layers, deserializes strictly and validates.

use std::path::PathBuf;

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Serialize, de::DeserializeOwned};

/// A configuration that can check itself after loading.
pub trait Validate {
    /// Returns the first invalid setting, named by its dotted path.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer could not be read or does not match the schema (unknown key, wrong type).
    #[error("configuration error: {0}")]
    Load(String),
    /// A value is out of its allowed range.
    #[error("invalid configuration `{field}`: {reason}")]
    Invalid {
        /// Dotted path of the setting.
        field: String,
        /// Why it is invalid.
        reason: String,
    },
}

impl ConfigError {
    /// Shorthand for [`ConfigError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Where the layers above the defaults come from.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    /// Optional TOML file.
    pub file: Option<PathBuf>,
    /// Environment variable prefix, normally `IEE_`. `None` skips the environment layer.
    pub env_prefix: Option<String>,
}

impl Layers {
    /// The standard layers: the given file (if any) and the `IEE_` environment.
    pub fn standard(file: Option<PathBuf>) -> Self {
        Self {
            file,
            env_prefix: Some("IEE_".to_owned()),
        }
    }
}

/// Loads `T`: `T::default()`, then the file, then the environment, then `flags` (a serializable
/// struct whose `None` fields are skipped), and validates the result.
///
/// Environment variables map to keys with `__` between sections: `IEE_SERVER__LISTEN` sets
/// `server.listen`. Unknown keys anywhere are an error, so typos do not pass silently.
pub fn load<T, F>(layers: &Layers, flags: &F) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default + Validate,
    F: Serialize,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(file) = &layers.file {
        if !file.exists() {
            return Err(ConfigError::Load(format!(
                "config file {} does not exist",
                file.display()
            )));
        }
        figment = figment.merge(Toml::file(file));
    }
    if let Some(prefix) = &layers.env_prefix {
        figment = figment.merge(Env::prefixed(prefix).split("__"));
    }
    figment = figment.merge(Serialized::defaults(flags));
    let config: T = figment
        .extract()
        .map_err(|e| ConfigError::Load(flatten(e)))?;
    config.validate()?;
    Ok(config)
}

/// The effective configuration as TOML, for `--print-config` and generated example files.
pub fn to_toml<T: Serialize>(config: &T) -> Result<String, ConfigError> {
    toml::to_string_pretty(config).map_err(|e| ConfigError::Load(e.to_string()))
}

fn flatten(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
// figment's Jail API fixes the closure's error type; its size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        listen: String,
        inner: Inner,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        limit: u32,
    }

    impl Default for Sample {
        fn default() -> Self {
            Self {
                listen: "127.0.0.1:1".into(),
                inner: Inner::default(),
            }
        }
    }

    impl Default for Inner {
        fn default() -> Self {
            Self { limit: 10 }
        }
    }

    impl Validate for Sample {
        fn validate(&self) -> Result<(), ConfigError> {
            if self.inner.limit == 0 {
                return Err(ConfigError::invalid("inner.limit", "must be positive"));
            }
            Ok(())
        }
    }

    #[derive(Serialize, Default)]
    struct Flags {
        #[serde(skip_serializing_if = "Option::is_none")]
        listen: Option<String>,
    }

    fn layers(file: &str) -> Layers {
        Layers {
            file: Some(file.into()),
            env_prefix: Some("IEE_".into()),
        }
    }

    #[test]
    fn each_layer_overrides_the_one_below() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "listen = \"file\"\n[inner]\nlimit = 5\n")?;
            let only_file: Sample = load(&layers("c.toml"), &Flags::default()).unwrap();
            assert_eq!(only_file.listen, "file");
            assert_eq!(only_file.inner.limit, 5);

            jail.set_env("IEE_LISTEN", "env");
            jail.set_env("IEE_INNER__LIMIT", "7");
            let with_env: Sample = load(&layers("c.toml"), &Flags::default()).unwrap();
            assert_eq!(with_env.listen, "env");
            assert_eq!(with_env.inner.limit, 7);

            let flags = Flags {
                listen: Some("flag".into()),
            };
            let with_flag: Sample = load(&layers("c.toml"), &flags).unwrap();
            assert_eq!(with_flag.listen, "flag");
            assert_eq!(with_flag.inner.limit, 7);
            Ok(())
        });
    }

    #[test]
    fn unknown_key_is_named_in_the_error() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[inner]\nlimt = 5\n")?;
            let err = load::<Sample, _>(&layers("c.toml"), &Flags::default()).unwrap_err();
            assert!(err.to_string().contains("limt"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn validation_failure_names_the_field() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[inner]\nlimit = 0\n")?;
            let err = load::<Sample, _>(&layers("c.toml"), &Flags::default()).unwrap_err();
            assert!(err.to_string().contains("inner.limit"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn missing_file_is_an_error() {
        let err =
            load::<Sample, _>(&layers("/nonexistent/iee.toml"), &Flags::default()).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[test]
    fn printed_config_loads_back_unchanged() {
        figment::Jail::expect_with(|jail| {
            let text = to_toml(&Sample::default()).unwrap();
            jail.create_file("printed.toml", &text)?;
            let back: Sample = load(&layers("printed.toml"), &Flags::default()).unwrap();
            assert_eq!(back, Sample::default());
            Ok(())
        });
    }
}
