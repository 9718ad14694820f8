//! How a process calls the others (`[client]`): the bearer token it presents and TLS. One
//! process is one identity, so the settings are process-wide ([`iee_api::credentials`],
//! [`iee_api::transport`]).

use iee_api::transport::{ClientTlsConfig, install_client_tls};
use serde::{Deserialize, Serialize};

use crate::RuntimeError;

/// Outgoing calls of a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// A file holding the bearer token this process presents to the others (a service token
    /// when they authenticate callers, e.g. a mounted Secret); empty: no token.
    pub token_file: String,
    /// TLS to the other services (off by default); see docs/tls.md.
    pub tls: ClientTlsConfig,
}

impl ClientConfig {
    /// Installs the settings for every client of this process.
    pub fn install(&self) -> Result<(), RuntimeError> {
        if self.tls.is_enabled() {
            install_client_tls(&self.tls).map_err(|e| RuntimeError::Client {
                field: "client.tls",
                reason: e.to_string(),
            })?;
        }
        if self.token_file.is_empty() {
            return Ok(());
        }
        let field = "client.token_file";
        let token =
            std::fs::read_to_string(&self.token_file).map_err(|e| RuntimeError::Client {
                field,
                reason: format!("cannot read {:?}: {e}", self.token_file),
            })?;
        iee_api::credentials::install_token(&token).map_err(|e| RuntimeError::Client {
            field,
            reason: e.to_string(),
        })
    }
}
