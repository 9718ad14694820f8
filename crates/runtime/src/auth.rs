//! Bearer-token authentication: who is calling. Tokens are configured by their SHA-256 digest
//! only (`printf %s "$TOKEN" | sha256sum`), so a configuration or Secret never holds one that
//! could be replayed. A tenant token acts on its own tenant only; a service token (the services'
//! own calls, operators) on any tenant. What a principal may do with a given request is decided
//! in [`crate::admission`].

use std::collections::HashMap;

use iee_api::credentials::bearer_token;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::{Status, metadata::MetadataMap};

/// Token authentication of a server (`[server.auth]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Every RPC needs a bearer token (`authorization: Bearer <token>`). Health checks and
    /// reflection stay open, for probes and tools.
    pub enabled: bool,
    /// Tenant tokens: each acts on its tenant only.
    pub tenants: Vec<TenantToken>,
    /// SHA-256 digests (64 hex digits) of service tokens, which act on every tenant.
    pub service_sha256: Vec<String>,
    /// A file with more tokens (e.g. a mounted Secret), read at start: one per line,
    /// `<tenant> <sha256>`, or `* <sha256>` for a service token; `#` starts a comment.
    pub tokens_file: String,
}

/// One tenant's token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantToken {
    /// The tenant the token acts for.
    pub tenant: String,
    /// SHA-256 digest of the token, 64 hex digits.
    pub sha256: String,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No token (authentication is on): only health checks and reflection are answered.
    Anonymous,
    /// A service token: any tenant, and installation-wide requests.
    Service,
    /// A tenant token: this tenant only.
    Tenant(String),
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{field}`: {reason}")]
pub struct AuthConfigError {
    /// The offending setting, e.g. `server.auth.tenants[2].sha256`.
    pub field: String,
    /// Why.
    pub reason: String,
}

fn config_error(field: impl Into<String>, reason: impl Into<String>) -> AuthConfigError {
    AuthConfigError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Checks bearer tokens against the configured digests.
#[derive(Debug, Clone)]
pub struct Authenticator {
    by_digest: HashMap<[u8; 32], Principal>,
}

impl Authenticator {
    /// The authenticator of `config`, or `None` when authentication is off.
    pub fn from_config(config: &AuthConfig) -> Result<Option<Self>, AuthConfigError> {
        if !config.enabled {
            return Ok(None);
        }
        let mut by_digest = HashMap::new();
        let mut add = |field: String, digest: &str, principal: Principal| {
            let digest = parse_digest(digest).map_err(|reason| config_error(&field, reason))?;
            match by_digest.insert(digest, principal.clone()) {
                Some(other) if other != principal => Err(config_error(
                    field,
                    "the same token is configured for two different principals",
                )),
                _ => Ok(()),
            }
        };
        for (i, token) in config.tenants.iter().enumerate() {
            check_tenant(&token.tenant).map_err(|reason| {
                config_error(format!("server.auth.tenants[{i}].tenant"), reason)
            })?;
            add(
                format!("server.auth.tenants[{i}].sha256"),
                &token.sha256,
                Principal::Tenant(token.tenant.clone()),
            )?;
        }
        for (i, digest) in config.service_sha256.iter().enumerate() {
            add(
                format!("server.auth.service_sha256[{i}]"),
                digest,
                Principal::Service,
            )?;
        }
        if !config.tokens_file.is_empty() {
            let field = "server.auth.tokens_file";
            let text = std::fs::read_to_string(&config.tokens_file).map_err(|e| {
                config_error(field, format!("cannot read {:?}: {e}", config.tokens_file))
            })?;
            for (n, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or_default().trim();
                if line.is_empty() {
                    continue;
                }
                let at = format!("{field} line {}", n + 1);
                let mut words = line.split_whitespace();
                let (Some(who), Some(digest), None) = (words.next(), words.next(), words.next())
                else {
                    return Err(config_error(
                        at,
                        "expected `<tenant> <sha256>` or `* <sha256>`",
                    ));
                };
                let principal = if who == "*" {
                    Principal::Service
                } else {
                    check_tenant(who).map_err(|reason| config_error(&at, reason))?;
                    Principal::Tenant(who.to_owned())
                };
                add(at, digest, principal)?;
            }
        }
        if by_digest.is_empty() {
            return Err(config_error(
                "server.auth",
                "authentication is enabled but no token is configured (tenants, service_sha256 or tokens_file)",
            ));
        }
        Ok(Some(Self { by_digest }))
    }

    /// The caller of a request with `metadata`: [`Principal::Anonymous`] without a token,
    /// UNAUTHENTICATED for a malformed or unknown one.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, Status> {
        let token = match bearer_token(metadata) {
            None => return Ok(Principal::Anonymous),
            Some(Err(err)) => return Err(Status::unauthenticated(err.to_string())),
            Some(Ok(token)) => token,
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.by_digest
            .get(&digest)
            .cloned()
            .ok_or_else(|| Status::unauthenticated("the bearer token is not valid"))
    }
}

/// The SHA-256 digest of `token`, as configured (64 lowercase hex digits).
pub fn token_sha256(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_digest(hex: &str) -> Result<[u8; 32], &'static str> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return Err("must be a SHA-256 digest: 64 hex digits");
    }
    let mut digest = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).map_err(|_| "must be hex digits")?;
        digest[i] = u8::from_str_radix(text, 16).map_err(|_| "must be hex digits")?;
    }
    Ok(digest)
}

/// Tenant ids as events carry them: 1–64 characters of `[a-z0-9_-]`.
fn check_tenant(tenant: &str) -> Result<(), &'static str> {
    let valid = (1..=64).contains(&tenant.len())
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err("must be a tenant id: 1-64 characters of [a-z0-9_-]")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use iee_api::credentials::{AUTHORIZATION_METADATA_KEY, bearer_value};

    fn with_token(token: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert(AUTHORIZATION_METADATA_KEY, bearer_value(token).unwrap());
        metadata
    }

    fn config() -> AuthConfig {
        AuthConfig {
            enabled: true,
            tenants: vec![TenantToken {
                tenant: "acme".into(),
                sha256: token_sha256("acme-secret"),
            }],
            service_sha256: vec![token_sha256("service-secret").to_uppercase()],
            tokens_file: String::new(),
        }
    }

    #[test]
    fn tokens_map_to_their_principal() {
        let auth = Authenticator::from_config(&config()).unwrap().unwrap();
        assert_eq!(
            auth.authenticate(&with_token("acme-secret")).unwrap(),
            Principal::Tenant("acme".into())
        );
        assert_eq!(
            auth.authenticate(&with_token("service-secret")).unwrap(),
            Principal::Service
        );
        assert_eq!(
            auth.authenticate(&MetadataMap::new()).unwrap(),
            Principal::Anonymous
        );
        let unknown = auth.authenticate(&with_token("guess")).unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::Unauthenticated);
        assert_eq!(unknown.message(), "the bearer token is not valid");
    }

    #[test]
    fn disabled_means_no_authenticator() {
        let off = AuthConfig {
            enabled: false,
            ..config()
        };
        assert!(Authenticator::from_config(&off).unwrap().is_none());
    }

    #[test]
    fn bad_settings_name_their_field() {
        let mut bad = config();
        bad.tenants[0].sha256 = "abc".into();
        let err = Authenticator::from_config(&bad).unwrap_err();
        assert_eq!(err.field, "server.auth.tenants[0].sha256");
        let mut bad = config();
        bad.tenants[0].tenant = "Acme Corp".into();
        assert_eq!(
            Authenticator::from_config(&bad).unwrap_err().field,
            "server.auth.tenants[0].tenant"
        );
        let mut bad = config();
        bad.service_sha256 = vec![token_sha256("acme-secret")];
        let err = Authenticator::from_config(&bad).unwrap_err();
        assert_eq!(err.field, "server.auth.service_sha256[0]");
        assert!(err.reason.contains("two different principals"));
        let empty = AuthConfig {
            enabled: true,
            ..AuthConfig::default()
        };
        assert_eq!(
            Authenticator::from_config(&empty).unwrap_err().field,
            "server.auth"
        );
    }

    #[test]
    fn tokens_file_lines_add_tenant_and_service_tokens() {
        let dir = std::env::temp_dir().join(format!("iee-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens");
        std::fs::write(
            &path,
            format!(
                "# rotated monthly\nbeta {}\n\n* {}  # operators\n",
                token_sha256("beta-secret"),
                token_sha256("ops-secret")
            ),
        )
        .unwrap();
        let file = AuthConfig {
            enabled: true,
            tokens_file: path.display().to_string(),
            ..AuthConfig::default()
        };
        let auth = Authenticator::from_config(&file).unwrap().unwrap();
        assert_eq!(
            auth.authenticate(&with_token("beta-secret")).unwrap(),
            Principal::Tenant("beta".into())
        );
        assert_eq!(
            auth.authenticate(&with_token("ops-secret")).unwrap(),
            Principal::Service
        );
        std::fs::write(&path, "beta\n").unwrap();
        let err = Authenticator::from_config(&file).unwrap_err();
        assert_eq!(err.field, "server.auth.tokens_file line 1");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
