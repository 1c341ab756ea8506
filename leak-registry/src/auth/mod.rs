//! Registry authentication: credentials, `WWW-Authenticate` challenges and
//! bearer tokens.

mod challenge;
mod docker_config;
mod token;

use std::fmt;

use leak_core::Secret;

pub use challenge::Challenge;
pub use docker_config::DockerConfig;
pub(crate) use token::{Auth, TokenFetch, sensitive_header};

/// Credentials for one registry.
///
/// # Security
///
/// Passwords and tokens are held in [`Secret`], so `Debug` prints a redaction
/// and no `Display` exists. The client sends them only to the registry's own
/// origin and to the token endpoint the registry names; redirects to another
/// host carry no `Authorization` header.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Credential {
    /// No credentials: the client still follows bearer challenges anonymously.
    #[default]
    Anonymous,
    /// A user name and password, sent as HTTP Basic to the registry or to its
    /// token endpoint.
    Basic {
        /// The user name.
        username: String,
        /// The password or personal access token.
        password: Secret,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`), exchanged at the
    /// token endpoint for registry tokens.
    IdentityToken(Secret),
    /// A registry bearer token used as is, without a token endpoint.
    Bearer(Secret),
}

impl Credential {
    /// Builds Basic credentials.
    pub fn basic(username: impl Into<String>, password: impl Into<Vec<u8>>) -> Self {
        Credential::Basic {
            username: username.into(),
            password: Secret::new(password),
        }
    }

    /// Returns true for [`Credential::Anonymous`].
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Credential::Anonymous)
    }

    /// Builds the `Authorization: Basic` value, when these are Basic credentials.
    pub(crate) fn basic_header(&self) -> Option<Secret> {
        use base64::Engine as _;
        let Credential::Basic { username, password } = self else {
            return None;
        };
        let mut pair = Vec::with_capacity(username.len() + 1 + password.len());
        pair.extend_from_slice(username.as_bytes());
        pair.push(b':');
        pair.extend_from_slice(password.expose());
        let encoded = base64::engine::general_purpose::STANDARD.encode(&pair);
        pair.fill(0);
        Some(Secret::new(format!("Basic {encoded}")))
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Anonymous => formatter.write_str("Anonymous"),
            Credential::Basic { username, password } => formatter
                .debug_struct("Basic")
                .field("username", username)
                .field("password", password)
                .finish(),
            Credential::IdentityToken(token) => {
                formatter.debug_tuple("IdentityToken").field(token).finish()
            }
            Credential::Bearer(token) => formatter.debug_tuple("Bearer").field(token).finish(),
        }
    }
}

/// A token scope: what one request needs the token to allow.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Scope(String);

impl Scope {
    pub(crate) fn catalog() -> Self {
        Scope("registry:catalog:*".to_owned())
    }

    pub(crate) fn pull(repository: &str) -> Self {
        Scope(format!("repository:{repository}:pull"))
    }

    pub(crate) fn push(repository: &str) -> Self {
        Scope(format!("repository:{repository}:pull,push"))
    }

    pub(crate) fn delete(repository: &str) -> Self {
        Scope(format!("repository:{repository}:delete"))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_password() {
        let credential = Credential::basic("alice", "sentinel-password-123");
        let printed = format!("{credential:?}");
        assert!(!printed.contains("sentinel-password-123"), "{printed}");
        assert!(printed.contains("alice"));
    }

    #[test]
    fn debug_hides_tokens() {
        for credential in [
            Credential::IdentityToken(Secret::new("sentinel-token-456")),
            Credential::Bearer(Secret::new("sentinel-token-456")),
        ] {
            let printed = format!("{credential:?}");
            assert!(!printed.contains("sentinel-token-456"), "{printed}");
        }
    }

    #[test]
    fn basic_header_encodes_pair() {
        let header = Credential::basic("user", "pass").basic_header().unwrap();
        assert_eq!(header.expose_str(), Some("Basic dXNlcjpwYXNz"));
    }
}
