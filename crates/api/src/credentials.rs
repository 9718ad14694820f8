//! The bearer token this process presents on its outgoing calls.
//!
//! A process is one identity (a service, or one tenant's tool), so the token is process-wide:
//! installed once at start-up (from `client.token_file`, or a command-line flag) and attached
//! by every client of this crate, next to the W3C trace context. Without an installed token,
//! nothing is attached.

use std::sync::{PoisonError, RwLock};

use tonic::metadata::{MetadataMap, MetadataValue};

/// The metadata key of bearer tokens (HTTP's `Authorization` header).
pub const AUTHORIZATION_METADATA_KEY: &str = "authorization";

static TOKEN: RwLock<Option<MetadataValue<tonic::metadata::Ascii>>> = RwLock::new(None);

/// Why a token cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// Empty, or not printable ASCII without spaces.
    #[error("the bearer token {0}")]
    Malformed(&'static str),
}

/// The `Bearer <token>` value of `token`, checked to be one printable ASCII word.
pub fn bearer_value(
    token: &str,
) -> Result<MetadataValue<tonic::metadata::Ascii>, CredentialsError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(CredentialsError::Malformed("is empty"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CredentialsError::Malformed(
            "must be printable ASCII without spaces",
        ));
    }
    MetadataValue::try_from(format!("Bearer {token}"))
        .map_err(|_| CredentialsError::Malformed("must be printable ASCII without spaces"))
}

/// Makes every later outgoing call of this process present `token` (surrounding whitespace,
/// e.g. a file's final newline, is ignored). Replaces a token installed before.
pub fn install_token(token: &str) -> Result<(), CredentialsError> {
    let value = bearer_value(token)?;
    *TOKEN.write().unwrap_or_else(PoisonError::into_inner) = Some(value);
    Ok(())
}

/// Writes the installed token, if any, into outgoing `metadata`.
pub fn attach(metadata: &mut MetadataMap) {
    if let Some(value) = TOKEN
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        metadata.insert(AUTHORIZATION_METADATA_KEY, value.clone());
    }
}

/// The token of an `authorization: Bearer <token>` entry in `metadata`: `None` when there is no
/// such entry, `Some(Err)` when there is one that is not a bearer token.
pub fn bearer_token(metadata: &MetadataMap) -> Option<Result<&str, CredentialsError>> {
    let value = metadata.get(AUTHORIZATION_METADATA_KEY)?;
    let parsed = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or(CredentialsError::Malformed(
            "must be sent as `authorization: Bearer <token>`",
        ));
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_travel_as_bearer_values() {
        let mut metadata = MetadataMap::new();
        metadata.insert(
            AUTHORIZATION_METADATA_KEY,
            bearer_value("abc.def\n").unwrap(),
        );
        assert_eq!(bearer_token(&metadata), Some(Ok("abc.def")));
        assert_eq!(bearer_token(&MetadataMap::new()), None);
        metadata.insert(
            AUTHORIZATION_METADATA_KEY,
            MetadataValue::from_static("Basic dXNlcg=="),
        );
        assert!(matches!(bearer_token(&metadata), Some(Err(_))));
        metadata.insert(
            AUTHORIZATION_METADATA_KEY,
            MetadataValue::from_static("bearer "),
        );
        assert!(matches!(bearer_token(&metadata), Some(Err(_))));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        assert_eq!(
            bearer_value("  ").unwrap_err(),
            CredentialsError::Malformed("is empty")
        );
        assert!(bearer_value("two words").is_err());
        assert!(bearer_value("naïve").is_err());
    }
}
