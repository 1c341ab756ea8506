//! Catalog and tag listing, paged by `Link` headers.

use std::collections::HashSet;

use reqwest::StatusCode;
use url::Url;

use crate::auth::Scope;
use crate::client::{RegistryClient, Request};
use crate::digest::looks_like_digest;
use crate::error::{Error, Result};
use crate::reference::validate_repository;

/// Maximum size of one listing page. Registries that ignore `n` send every
/// tag in one page; 64 MiB holds about 500,000 tags of the maximum 128
/// characters plus JSON quoting.
const MAX_PAGE_BYTES: usize = 64 << 20;

/// The listing being paged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listing {
    Catalog,
    Tags,
}

impl Listing {
    fn key(self) -> &'static str {
        match self {
            Listing::Catalog => "repositories",
            Listing::Tags => "tags",
        }
    }
}

/// One page as returned by the registry.
struct Page {
    entries: Vec<String>,
    /// The last string entry, skipped ones included, for a `last=` cursor.
    last_raw: Option<String>,
    raw_count: usize,
}

impl RegistryClient {
    /// Lists every repository in `/v2/_catalog`.
    ///
    /// Pages follow `Link: <...>; rel="next"` headers. A relative link is
    /// resolved against the request URL and a link to another origin is
    /// rejected. When a full page comes without a `Link` and no earlier page
    /// had one, the next page is requested with `last=`. A cursor seen before ends the listing with a
    /// warning. A 413 response to a large `n` halves `n` and requests the page again.
    ///
    /// # Errors
    ///
    /// [`Error::CatalogUnavailable`] when the registry has no catalog (404 or
    /// 405), [`Error::InvalidLink`] for a link to another origin, and the
    /// transport and access errors of every request.
    pub async fn catalog(&self) -> Result<Vec<String>> {
        let entries = self.list(Listing::Catalog, "/v2/_catalog", "").await?;
        let mut repositories = Vec::with_capacity(entries.len());
        for name in entries {
            match validate_repository(&name) {
                Ok(()) => repositories.push(name),
                Err(reason) => {
                    tracing::warn!(registry = %self.registry(), repository = %name, %reason, "skipping invalid repository name in the catalog")
                }
            }
        }
        Ok(repositories)
    }

    /// Lists every tag of `repository`, paged like [`catalog`](Self::catalog).
    ///
    /// `null` entries and entries shaped like a digest are skipped with a
    /// warning. A repository whose tags were all deleted returns an empty list.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown repository, [`Error::InvalidLink`]
    /// for a link to another origin, and the transport and access errors of
    /// every request.
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>> {
        validate_repository(repository).map_err(|reason| Error::InvalidReference {
            reference: repository.to_owned(),
            reason,
        })?;
        let path = format!("/v2/{repository}/tags/list");
        self.list(Listing::Tags, &path, repository).await
    }

    async fn list(&self, listing: Listing, path: &str, repository: &str) -> Result<Vec<String>> {
        let operation = match listing {
            Listing::Catalog => "GET catalog".to_owned(),
            Listing::Tags => format!("GET tags {repository}"),
        };
        let mut page_size = self.inner.page_size;
        let mut url = with_page_query(self.url(path)?, page_size, None);
        let mut visited = HashSet::new();
        let mut seen = HashSet::new();
        let mut entries = Vec::new();
        let mut saw_link = false;
        loop {
            if visited.len() >= self.inner.max_pages {
                return Err(Error::InvalidLink {
                    registry: self.registry().to_owned(),
                    operation,
                    reason: format!(
                        "the listing took more than {} pages; raise the limit with ClientBuilder::with_max_pages",
                        self.inner.max_pages
                    ),
                });
            }
            if !visited.insert(url.to_string()) {
                tracing::warn!(registry = %self.registry(), %operation, "the registry repeated a page cursor; stopping the listing");
                return Ok(entries);
            }
            let request = self.list_request(listing, url.clone(), &operation, repository);
            let reply = self.execute(&request).await?;
            let status = reply.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE && page_size > 1 {
                page_size /= 2;
                tracing::info!(registry = %self.registry(), %operation, page_size, "the registry rejected the page size; halving it");
                url = with_page_query(url, page_size, None);
                continue;
            }
            if listing == Listing::Catalog
                && (status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED)
            {
                return Err(Error::CatalogUnavailable {
                    registry: self.registry().to_owned(),
                    status: status.as_u16(),
                });
            }
            let reply = self.expect_success(&request, reply).await?;
            let request_url = reply.url().clone();
            let link = reply.header_str("link").map(str::to_owned);
            let body = reply.bytes(&operation, MAX_PAGE_BYTES).await?;
            let page = self.parse_page(listing, &body, &operation)?;
            let before = entries.len();
            for entry in page.entries {
                if seen.insert(entry.clone()) {
                    entries.push(entry);
                }
            }
            let added = entries.len() - before;
            match link.as_deref().and_then(next_link) {
                Some(next) => {
                    saw_link = true;
                    url = self.resolve_link(&request_url, next, &operation)?;
                }
                None => match page.last_raw {
                    Some(last) if !saw_link && page.raw_count >= page_size && added > 0 => {
                        url = with_page_query(url, page_size, Some(&last));
                    }
                    _ => return Ok(entries),
                },
            }
        }
    }

    fn list_request(
        &self,
        listing: Listing,
        url: Url,
        operation: &str,
        repository: &str,
    ) -> Request {
        match listing {
            Listing::Catalog => Request::get(url, operation, vec![Scope::catalog()]),
            Listing::Tags => Request::get(url, operation, vec![Scope::pull(repository)])
                .with_target(repository, "repository"),
        }
    }

    fn parse_page(&self, listing: Listing, body: &[u8], operation: &str) -> Result<Page> {
        let invalid = |reason: &str| Error::UnexpectedStatus {
            registry: self.registry().to_owned(),
            operation: operation.to_owned(),
            status: 200,
            detail: format!(": {reason}"),
        };
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| invalid("the body is not JSON"))?;
        let list = match value.get(listing.key()) {
            None | Some(serde_json::Value::Null) => {
                return Ok(Page {
                    entries: Vec::new(),
                    last_raw: None,
                    raw_count: 0,
                });
            }
            Some(serde_json::Value::Array(list)) => list,
            Some(_) => return Err(invalid(&format!("{} is not a list", listing.key()))),
        };
        let mut entries = Vec::with_capacity(list.len());
        let mut last_raw = None;
        for item in list {
            let Some(text) = item.as_str() else {
                tracing::warn!(registry = %self.registry(), %operation, "skipping a null or non-string entry in the listing");
                continue;
            };
            last_raw = Some(text.to_owned());
            if listing == Listing::Tags && looks_like_digest(text) {
                tracing::warn!(registry = %self.registry(), %operation, entry = %text, "skipping a digest-shaped entry in the tag list");
                continue;
            }
            entries.push(text.to_owned());
        }
        Ok(Page {
            entries,
            last_raw,
            raw_count: list.len(),
        })
    }

    fn resolve_link(&self, request_url: &Url, link: &str, operation: &str) -> Result<Url> {
        let invalid = |reason: String| Error::InvalidLink {
            registry: self.registry().to_owned(),
            operation: operation.to_owned(),
            reason,
        };
        let next = request_url
            .join(link)
            .map_err(|error| invalid(format!("cannot resolve {link:?}: {error}")))?;
        if next.origin() != self.inner.base.origin() {
            return Err(invalid(format!(
                "the next page is on another origin ({}); only {} is followed",
                next.origin().ascii_serialization(),
                self.inner.base.origin().ascii_serialization()
            )));
        }
        Ok(next)
    }
}

/// Replaces `n` (and `last`, when given) in the query, keeping other parameters.
fn with_page_query(mut url: Url, page_size: usize, last: Option<&str>) -> Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != "n" && (last.is_none() || key != "last"))
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    {
        let mut query = url.query_pairs_mut();
        query.clear();
        for (key, value) in &kept {
            query.append_pair(key, value);
        }
        query.append_pair("n", &page_size.to_string());
        if let Some(last) = last {
            query.append_pair("last", last);
        }
    }
    url
}

/// Finds the `rel="next"` target in a `Link` header value.
pub(crate) fn next_link(header: &str) -> Option<&str> {
    let mut rest = header;
    while let Some(start) = rest.find('<') {
        let end = start + rest[start..].find('>')?;
        let target = &rest[start + 1..end];
        let params_end = rest[end..]
            .find('<')
            .map_or(rest.len(), |offset| end + offset);
        let params = &rest[end + 1..params_end];
        let is_next = params.split(';').any(|param| {
            let param = param.trim().trim_end_matches(',').trim();
            let Some((key, value)) = param.split_once('=') else {
                return false;
            };
            key.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target);
        }
        rest = &rest[params_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_relative() {
        let header = r#"</v2/_catalog?last=b&n=2>; rel="next""#;
        assert_eq!(next_link(header), Some("/v2/_catalog?last=b&n=2"));
    }

    #[test]
    fn next_link_among_others() {
        let header = r#"<https://r.example/v2/a/tags/list?last=x>; rel="prev", <https://r.example/v2/a/tags/list?cursor=opaque>; rel=next"#;
        assert_eq!(
            next_link(header),
            Some("https://r.example/v2/a/tags/list?cursor=opaque")
        );
    }

    #[test]
    fn next_link_absent() {
        assert_eq!(next_link(r#"</a>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn page_query_replaces_n_and_last() {
        let url = Url::parse("http://h/v2/_catalog?n=5&last=a&x=1").unwrap();
        let url = with_page_query(url, 2, Some("b"));
        assert_eq!(url.query(), Some("x=1&n=2&last=b"));
    }
}
