//! What a remediation covers: an image file, or a registry scope.

use std::fmt;
use std::path::PathBuf;

use leak_registry::Reference;
use serde::Serialize;

use crate::error::{Error, Result};

/// Endings of image file names: text ending so is a missing file, never a
/// repository name.
const FILE_SUFFIXES: [&str; 5] = [".tar", ".tar.gz", ".tgz", ".tar.zst", ".oci"];

/// The input of a remediation.
///
/// Parse one from text with [`Scope::parse`]:
///
/// | text | scope |
/// |---|---|
/// | a path that exists | [`Scope::Image`]: a docker-archive or OCI layout |
/// | `http://HOST[:PORT]`, `HOST:PORT` or `HOST/` | [`Scope::Registry`] over the whole catalog |
/// | `[http://]HOST[:PORT]/REPO[,REPO...]` | [`Scope::Registry`] over those repositories |
/// | `[http://]HOST[:PORT]/REPO:TAG` or `.../REPO@sha256:...` | [`Scope::Reference`] |
///
/// `http://` marks the registry insecure (plain HTTP, for a registry on
/// loopback); without it the registry is reached over HTTPS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Scope {
    /// An image file or OCI layout directory. Nothing is published, so the
    /// plan has no registry actions.
    Image {
        /// The path.
        path: PathBuf,
    },
    /// Every tag of some repositories of one registry, or of its catalog.
    Registry {
        /// The registry host and port.
        registry: String,
        /// Whether plain HTTP is allowed.
        insecure: bool,
        /// The repositories; `None` lists the catalog.
        repositories: Option<Vec<String>>,
    },
    /// One image of a registry. Its repository is audited, so every sibling
    /// tag that carries the same secrets is in the plan too.
    Reference {
        /// The reference, such as `127.0.0.1:5000/app:1.0`.
        reference: String,
        /// Whether plain HTTP is allowed.
        insecure: bool,
    },
}

impl Scope {
    /// Parses scope text; see the table on [`Scope`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidScope`] when the text is not an existing path and not
    /// a registry scope.
    pub fn parse(text: &str) -> Result<Scope> {
        let path = PathBuf::from(text);
        if path.exists() {
            return Ok(Scope::Image { path });
        }
        let invalid = |reason: &str| Error::InvalidScope {
            scope: text.to_owned(),
            reason: format!(
                "{reason}; expected an existing image path, [http://]HOST[:PORT], \
                 [http://]HOST[:PORT]/REPO[,REPO...] or [http://]HOST[:PORT]/REPO:TAG"
            ),
        };
        if text.starts_with("https://") {
            return Err(invalid(
                "leave out https://, which is the default; write http:// only for plain HTTP",
            ));
        }
        let (insecure, rest) = match text.strip_prefix("http://") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((registry, path)) => (registry, path.trim_end_matches('/')),
            None => (rest, ""),
        };
        let looks_like_host = registry.contains(['.', ':']) || registry == "localhost";
        if registry.is_empty() || matches!(registry, "." | "..") || !looks_like_host {
            return Err(invalid(
                "no such file, and the first component is not a registry host (with a '.' or ':', or localhost)",
            ));
        }
        if !insecure && !rest.contains('/') && !registry.contains(':') {
            return Err(invalid(
                "no such file; for the whole catalog of a registry without a port, write HOST/",
            ));
        }
        if FILE_SUFFIXES.iter().any(|suffix| path.ends_with(suffix)) {
            return Err(invalid("no such file"));
        }
        if path.is_empty() {
            return Ok(Scope::Registry {
                registry: registry.to_owned(),
                insecure,
                repositories: None,
            });
        }
        let last = path.rsplit('/').next().unwrap_or(path);
        if last.contains([':', '@']) {
            let reference = format!("{registry}/{path}");
            Reference::parse(&reference).map_err(|error| invalid(&error.to_string()))?;
            return Ok(Scope::Reference {
                reference,
                insecure,
            });
        }
        let repositories: Vec<String> = path.split(',').map(str::to_owned).collect();
        for repository in &repositories {
            Reference::new(registry, repository, None)
                .map_err(|error| invalid(&error.to_string()))?;
        }
        Ok(Scope::Registry {
            registry: registry.to_owned(),
            insecure,
            repositories: Some(repositories),
        })
    }

    /// Returns the registry host, for registry scopes.
    pub fn registry(&self) -> Option<&str> {
        match self {
            Scope::Image { .. } => None,
            Scope::Registry { registry, .. } => Some(registry),
            Scope::Reference { reference, .. } => reference.split_once('/').map(|(host, _)| host),
        }
    }

    /// Returns whether plain HTTP is allowed to the registry.
    pub fn insecure(&self) -> bool {
        match self {
            Scope::Image { .. } => false,
            Scope::Registry { insecure, .. } | Scope::Reference { insecure, .. } => *insecure,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.insecure() { "http://" } else { "" };
        match self {
            Scope::Image { path } => write!(f, "{}", path.display()),
            Scope::Registry {
                registry,
                repositories: None,
                ..
            } => write!(f, "{scheme}{registry}"),
            Scope::Registry {
                registry,
                repositories: Some(repositories),
                ..
            } => write!(f, "{scheme}{registry}/{}", repositories.join(",")),
            Scope::Reference { reference, .. } => write!(f, "{scheme}{reference}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_catalog_scope() {
        let scope = Scope::parse("http://127.0.0.1:5000").unwrap();
        assert_eq!(
            scope,
            Scope::Registry {
                registry: "127.0.0.1:5000".to_owned(),
                insecure: true,
                repositories: None
            }
        );
    }

    #[test]
    fn parse_repository_list() {
        let scope = Scope::parse("registry.example.com/team/app,mirror/app").unwrap();
        assert_eq!(
            scope,
            Scope::Registry {
                registry: "registry.example.com".to_owned(),
                insecure: false,
                repositories: Some(vec!["team/app".to_owned(), "mirror/app".to_owned()])
            }
        );
        assert_eq!(
            scope.to_string(),
            "registry.example.com/team/app,mirror/app"
        );
    }

    #[test]
    fn parse_reference_with_tag() {
        let scope = Scope::parse("http://localhost:5000/app:1.0").unwrap();
        assert_eq!(
            scope,
            Scope::Reference {
                reference: "localhost:5000/app:1.0".to_owned(),
                insecure: true
            }
        );
        assert_eq!(scope.registry(), Some("localhost:5000"));
    }

    #[test]
    fn parse_rejects_missing_files() {
        for text in [
            "no-such-image.tar",
            "./app.tar",
            "dir.d/app.tar",
            "images/app",
        ] {
            let error = Scope::parse(text).unwrap_err();
            assert!(matches!(error, Error::InvalidScope { .. }), "{text}");
        }
    }

    #[test]
    fn parse_rejects_https_prefix() {
        let error = Scope::parse("https://registry.example.com/app").unwrap_err();
        assert!(error.to_string().contains("https://"));
    }
}
