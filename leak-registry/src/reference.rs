//! Image references of the form `REGISTRY/REPOSITORY[:TAG][@DIGEST]`.

use std::fmt;

use oci_spec::image::Digest;

use crate::digest::parse_digest;
use crate::error::{Error, Result};

/// A parsed image reference that always names its registry.
///
/// There is no default registry: `library/alpine` is rejected, so no request
/// goes to a host the caller did not name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses `REGISTRY/REPOSITORY:TAG`, `REGISTRY/REPOSITORY@sha256:...` or both.
    ///
    /// The registry is the first path component and must contain a `.` or a
    /// `:`, or be `localhost`. A reference with neither tag nor digest gets the
    /// tag `latest`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidReference`] when the registry is missing or a component
    /// is malformed, [`Error::InvalidDigest`] for a malformed digest.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidReference {
            reference: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => (name, Some(parse_digest(digest)?)),
            None => (text, None),
        };
        let (registry, rest) = name
            .split_once('/')
            .ok_or_else(|| invalid("expected REGISTRY/REPOSITORY[:TAG][@DIGEST]"))?;
        if !is_registry_host(registry) {
            return Err(invalid(
                "the first component must be a registry host (with a '.' or ':', or localhost)",
            ));
        }
        let (repository, tag) = split_tag(rest);
        validate_repository(repository).map_err(|reason| invalid(&reason))?;
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|reason| invalid(&reason))?;
        }
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_owned()),
            (tag, _) => tag.map(str::to_owned),
        };
        Ok(Reference {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// Builds a reference from its parts.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidReference`] when the repository or tag is malformed.
    pub fn new(registry: &str, repository: &str, tag: Option<&str>) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidReference {
            reference: format!("{registry}/{repository}"),
            reason,
        };
        validate_repository(repository).map_err(invalid)?;
        if let Some(tag) = tag {
            validate_tag(tag).map_err(invalid)?;
        }
        Ok(Reference {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
            digest: None,
        })
    }

    /// Returns a copy that points at `digest`.
    pub fn with_digest(mut self, digest: Digest) -> Self {
        self.digest = Some(digest);
        self
    }

    /// The registry host, with port when one was given.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository name, such as `fixtures/app`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, when the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, when the reference has one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The digest when present, else the tag: what goes in `/manifests/{reference}`.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => "latest".to_owned(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(formatter, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(formatter, "@{digest}")?;
        }
        Ok(())
    }
}

fn is_registry_host(component: &str) -> bool {
    let plausible = component.contains('.') || component.contains(':') || component == "localhost";
    let allowed = component
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    plausible && allowed && !component.is_empty()
}

/// Splits `REPOSITORY:TAG` at the last `:` that follows the last `/`.
fn split_tag(rest: &str) -> (&str, Option<&str>) {
    let last_slash = rest.rfind('/').map_or(0, |index| index + 1);
    match rest[last_slash..].rfind(':') {
        Some(index) => {
            let split = last_slash + index;
            (&rest[..split], Some(&rest[split + 1..]))
        }
        None => (rest, None),
    }
}

/// Checks a repository name against the distribution grammar: lower-case
/// components of `[a-z0-9]` joined by `.`, `_`, `__` or `-` runs, separated by `/`.
pub(crate) fn validate_repository(repository: &str) -> std::result::Result<(), String> {
    if repository.is_empty() || repository.len() > 255 {
        return Err("repository name must have 1 to 255 characters".to_owned());
    }
    for component in repository.split('/') {
        let starts_and_ends_alnum = component
            .chars()
            .next()
            .zip(component.chars().last())
            .is_some_and(|(first, last)| is_lower_alnum(first) && is_lower_alnum(last));
        let allowed = component
            .chars()
            .all(|c| is_lower_alnum(c) || matches!(c, '.' | '_' | '-'));
        if !starts_and_ends_alnum || !allowed {
            return Err(format!(
                "repository component {component:?} must be lower-case letters and digits, joined by '.', '_' or '-'"
            ));
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> std::result::Result<(), String> {
    let valid_first = tag
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let valid_rest = tag
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid_first || !valid_rest || tag.len() > 128 {
        return Err(format!(
            "tag {tag:?} must be 1 to 128 characters of letters, digits, '_', '.' or '-', not starting with '.' or '-'"
        ));
    }
    Ok(())
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_tag_reference() {
        let reference = Reference::parse("127.0.0.1:5000/fixtures/app:1.0").unwrap();
        assert_eq!(reference.registry(), "127.0.0.1:5000");
        assert_eq!(reference.repository(), "fixtures/app");
        assert_eq!(reference.tag(), Some("1.0"));
        assert_eq!(reference.digest(), None);
    }

    #[test]
    fn parse_digest_reference() {
        let reference = Reference::parse(&format!("localhost/app@{DIGEST}")).unwrap();
        assert_eq!(reference.tag(), None);
        assert_eq!(reference.manifest_reference(), DIGEST);
    }

    #[test]
    fn parse_defaults_to_latest() {
        let reference = Reference::parse("registry.example/app").unwrap();
        assert_eq!(reference.tag(), Some("latest"));
    }

    #[test]
    fn parse_rejects_missing_registry() {
        assert!(Reference::parse("library/alpine:3").is_err());
        assert!(Reference::parse("alpine").is_err());
    }

    #[test]
    fn parse_rejects_bad_names() {
        assert!(Reference::parse("localhost/App:1").is_err());
        assert!(Reference::parse("localhost/app:-x").is_err());
        assert!(Reference::parse("localhost/app@sha256:zz").is_err());
    }

    #[test]
    fn display_round_trips() {
        let text = format!("localhost:5000/a/b:t@{DIGEST}");
        assert_eq!(Reference::parse(&text).unwrap().to_string(), text);
    }
}
