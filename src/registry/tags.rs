//! Tag paging: every tag of a repository, following `Link` pages with an adaptive page size,
//! inside the registry's [`TagListBudget`].
//!
//! Invariant: a listing is all or nothing. Past a cap (pages, tags, bytes, time), on a page
//! seen twice, a next page on another origin or a page that never decodes, it fails naming
//! why; it never answers from the pages read so far. Tags that are not valid OCI tags are
//! dropped (and counted), every other tag is kept once, in the registry's order. Tag lists are
//! never cached.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};

use super::client::{Client, Kind, RegistryState};
use super::limits::backoff;
use super::{RegistryError, TagListBudget};
use crate::reference::{ImageRef, is_valid_tag};

#[derive(serde::Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The `rel="next"` target of a `Link` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        for link in value.split(',') {
            let mut parts = link.split(';');
            let Some(target) = parts.next() else { continue };
            let target = target.trim();
            let is_next = parts.any(|param| {
                let param = param.trim().replace(' ', "");
                param.eq_ignore_ascii_case("rel=\"next\"") || param.eq_ignore_ascii_case("rel=next")
            });
            if is_next && target.starts_with('<') && target.ends_with('>') {
                return Some(target[1..target.len() - 1].to_string());
            }
        }
    }
    None
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// `url` with its `n` query parameter set to `page`.
fn with_page_size(url: &Url, page: usize) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "n")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut next = url.clone();
    next.set_query(None);
    {
        let mut query = next.query_pairs_mut();
        query.append_pair("n", &page.to_string());
        for (k, v) in &pairs {
            query.append_pair(k, v);
        }
    }
    next
}

/// One listing in progress: the page to ask next and what the pages so far held.
struct Listing<'r> {
    reg: &'r RegistryState,
    repository: &'r str,
    budget: TagListBudget,
    url: Url,
    /// Pages asked for, so a page seen twice ends the listing.
    visited: HashSet<String>,
    pages: usize,
    bytes: usize,
    tags: Vec<String>,
    seen: HashSet<String>,
    /// Tags that are not valid OCI tags.
    dropped: usize,
    /// Attempts of the current page that answered 200 with a body that does not decode.
    undecodable: u32,
}

/// What a page's status means for the listing.
enum PageStatus {
    /// A page to read.
    Read,
    /// Ask again (a smaller page size).
    Again,
}

impl<'r> Listing<'r> {
    fn bad(&self, detail: String) -> RegistryError {
        RegistryError::BadResponse {
            registry: self.reg.name.clone(),
            repository: self.repository.to_string(),
            detail,
        }
    }

    fn too_large(&self, cap: String, key: &'static str) -> RegistryError {
        RegistryError::TagListTooLarge {
            registry: self.reg.name.clone(),
            repository: self.repository.to_string(),
            cap,
            key,
        }
    }

    /// Before asking for the next page: within `max_pages`, and not a page seen before.
    fn may_ask(&mut self) -> Result<(), RegistryError> {
        if self.pages >= self.budget.max_pages {
            return Err(self.too_large(format!("{} pages", self.budget.max_pages), "max_pages"));
        }
        if !self.visited.insert(self.url.to_string()) {
            return Err(self.bad(format!(
                "tag list pagination does not end (page {} again)",
                self.url
            )));
        }
        Ok(())
    }

    /// A 200 is read; a 400 to a page size above 1 halves it (remembered for the registry) and
    /// asks again; anything else ends the listing.
    fn status(&mut self, status: StatusCode) -> Result<PageStatus, RegistryError> {
        match status {
            StatusCode::OK => Ok(PageStatus::Read),
            StatusCode::BAD_REQUEST => {
                let asked = self
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "n")
                    .and_then(|(_, v)| v.parse::<usize>().ok());
                match asked {
                    Some(n) if n > 1 => {
                        let smaller = n / 2;
                        tracing::info!(
                            registry = %self.reg.name,
                            page_size = smaller,
                            "registry refused the tags page size, halving it"
                        );
                        self.reg.page_size.store(smaller, Ordering::Relaxed);
                        self.visited.remove(self.url.as_str());
                        self.url = with_page_size(&self.url, smaller);
                        Ok(PageStatus::Again)
                    }
                    _ => Err(self.bad("the tags list answered HTTP 400".to_string())),
                }
            }
            StatusCode::NOT_FOUND => Err(RegistryError::NotFound {
                registry: self.reg.name.clone(),
                repository: self.repository.to_string(),
                what: "repository".to_string(),
            }),
            status => Err(self.bad(format!("the tags list answered HTTP {status}"))),
        }
    }

    /// Counts a page read and its bytes against the budget.
    fn count(&mut self, body: &[u8]) -> Result<(), RegistryError> {
        self.pages += 1;
        self.bytes = self.bytes.saturating_add(body.len());
        if self.bytes > self.budget.max_bytes {
            return Err(self.too_large(format!("{} bytes", self.budget.max_bytes), "max_bytes"));
        }
        Ok(())
    }

    /// Takes a decoded page's tags, within `max_tags`.
    fn take(&mut self, page: TagList) -> Result<(), RegistryError> {
        self.undecodable = 0;
        let page_tags = page.tags.unwrap_or_default();
        if self.tags.len() + self.dropped + page_tags.len() > self.budget.max_tags {
            return Err(self.too_large(format!("{} tags", self.budget.max_tags), "max_tags"));
        }
        for tag in page_tags {
            if !is_valid_tag(&tag) {
                self.dropped += 1;
            } else if self.seen.insert(tag.clone()) {
                self.tags.push(tag);
            }
        }
        Ok(())
    }

    /// Moves to the next page the `Link` header names; `false` when there is none. A next
    /// page on another origin is not followed.
    fn follow(&mut self, headers: &HeaderMap) -> Result<bool, RegistryError> {
        let Some(next) = next_link(headers) else {
            return Ok(false);
        };
        let next = self
            .url
            .join(&next)
            .map_err(|e| self.bad(format!("invalid Link header {next:?}: {e}")))?;
        if !same_origin(&next, &self.reg.base) {
            return Err(self.bad(format!(
                "the next tags page is on another host ({}), not followed",
                next.host_str().unwrap_or("?")
            )));
        }
        self.url = next;
        Ok(true)
    }

    fn finish(self) -> Vec<String> {
        if self.dropped > 0 {
            tracing::warn!(
                registry = %self.reg.name,
                repository = %self.repository,
                dropped = self.dropped,
                "dropped tags that are not valid OCI tags"
            );
        }
        self.tags
    }
}

impl Client {
    /// Every tag of `image`'s repository, in the registry's order, each once; tags that are not
    /// valid OCI tags are dropped. Follows `Link` pages; halves the page size when the registry
    /// answers 400 to it (and remembers the size that works).
    /// The whole listing is bounded by the registry's [`TagListBudget`] (pages, tags, bytes,
    /// time): past a cap it fails naming the cap, never answering from a partial list.
    pub async fn list_tags(&self, image: &ImageRef) -> Result<Vec<String>, RegistryError> {
        let reg = self.registry_for(image)?;
        let budget = reg.settings.tag_list;
        match tokio::time::timeout(budget.timeout, self.list_tags_within(&reg, image, budget)).await
        {
            Ok(result) => result,
            Err(_) => Err(RegistryError::TagListTooLarge {
                registry: reg.name.clone(),
                repository: image.repository.clone(),
                cap: format!("{}s", budget.timeout.as_secs_f64()),
                key: "timeout",
            }),
        }
    }

    async fn list_tags_within(
        &self,
        reg: &Arc<RegistryState>,
        image: &ImageRef,
        budget: TagListBudget,
    ) -> Result<Vec<String>, RegistryError> {
        let repository = image.repository.as_str();
        let first = reg
            .base
            .join(&format!("v2/{repository}/tags/list"))
            .map_err(|e| RegistryError::BadResponse {
                registry: reg.name.clone(),
                repository: repository.to_string(),
                detail: format!("cannot build the tags URL: {e}"),
            })?;
        let mut listing = Listing {
            reg,
            repository,
            budget,
            url: with_page_size(&first, reg.page_size.load(Ordering::Relaxed)),
            visited: HashSet::new(),
            pages: 0,
            bytes: 0,
            tags: Vec::new(),
            seen: HashSet::new(),
            dropped: 0,
            undecodable: 0,
        };
        loop {
            listing.may_ask()?;
            let fetched = self
                .request(
                    reg,
                    repository,
                    Method::GET,
                    &listing.url,
                    "application/json",
                    Kind::Tags,
                )
                .await?;
            if let PageStatus::Again = listing.status(fetched.status)? {
                continue;
            }
            listing.count(&fetched.body)?;
            match serde_json::from_slice::<TagList>(&fetched.body) {
                Ok(page) => listing.take(page)?,
                Err(e) => {
                    self.undecodable_page(&mut listing, e).await?;
                    continue;
                }
            }
            if !listing.follow(&fetched.headers)? {
                break;
            }
        }
        Ok(listing.finish())
    }

    /// A 200 that does not decode (cut short by a flaky proxy, garbled) is retried like a 5xx,
    /// a bounded number of times (`Ok`: ask for the page again); the pages read so far are
    /// never an answer.
    async fn undecodable_page(
        &self,
        listing: &mut Listing<'_>,
        error: serde_json::Error,
    ) -> Result<(), RegistryError> {
        let options = &self.inner.options;
        listing.undecodable += 1;
        if listing.undecodable > options.retries {
            let detail = format!(
                "the tags list is not valid JSON after {} attempts ({error}); the registry or a proxy in front of it sends broken responses",
                listing.undecodable
            );
            self.give_up(listing.reg, &detail);
            return Err(listing.bad(detail));
        }
        let delay = backoff(
            listing.undecodable - 1,
            options.initial_backoff,
            options.max_backoff,
        );
        tracing::warn!(
            registry = %listing.reg.name,
            repository = %listing.repository,
            attempt = listing.undecodable,
            delay_ms = delay.as_millis() as u64,
            error = %error,
            "the tags list page is not valid JSON, retrying"
        );
        self.record(&listing.reg.name, |stats| stats.retries += 1);
        tokio::time::sleep(delay).await;
        listing.visited.remove(listing.url.as_str());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(link: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::LINK, HeaderValue::from_str(link).unwrap());
        headers
    }

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(&headers(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#)).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(
            next_link(&headers(
                r#"<https://r/v2/a/tags/list?last=b>; rel="prev", <https://r/x>; rel=next"#
            ))
            .as_deref(),
            Some("https://r/x")
        );
        assert_eq!(next_link(&headers(r#"</x>; rel="prev""#)), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn page_size_rewrite_keeps_other_params() {
        let url = Url::parse("https://r/v2/a/tags/list?n=100&last=v1").unwrap();
        assert_eq!(
            with_page_size(&url, 50).as_str(),
            "https://r/v2/a/tags/list?n=50&last=v1"
        );
    }
}
