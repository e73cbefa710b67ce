//! Search backends: DuckDuckGo's HTML page (no key, the default), a SearXNG instance (JSON API,
//! no key), and the Brave Search API (key from `BRAVE_SEARCH_API_KEY`).
//!
//! Search endpoints are chosen by the user, so they are reached directly (a SearXNG instance on
//! the local network is a normal setup); the pages behind the results go through the guarded
//! fetcher like any other page.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::redirect::Policy;

use scraper::{Html, Selector};
use serde_json::Value;
use url::{Host, Url};

use super::fetch::{USER_AGENT, error_chain};
use super::guard::{GuardedResolver, HostPolicy};

/// One search hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResult {
    /// Page title.
    pub title: String,
    /// Page address.
    pub url: String,
    /// A short excerpt.
    pub snippet: String,
}

/// Why a search failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{backend} search failed: {message}")]
pub struct SearchError {
    /// The backend's name.
    pub backend: &'static str,
    /// What happened and, where it helps, what to do.
    pub message: String,
}

/// A boxed future, for object-safe async methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A web search service.
pub trait SearchBackend: Send + Sync {
    /// A short name for messages.
    fn name(&self) -> &'static str;
    /// Runs a query; `recency_days` limits results to recent pages where the service can.
    fn search<'a>(
        &'a self,
        query: &'a str,
        recency_days: Option<u32>,
    ) -> BoxFuture<'a, Result<Vec<SearchResult>, SearchError>>;
}

/// How recent, in the buckets the services offer.
fn recency_bucket(days: u32) -> usize {
    match days {
        0..=1 => 0,
        2..=7 => 1,
        8..=31 => 2,
        _ => 3,
    }
}

/// Bytes of a search response read at most (after decompression).
const MAX_RESPONSE_BYTES: usize = 2 << 20;

/// Redirects a search request follows at most.
const MAX_REDIRECTS: usize = 5;

/// A client for one search endpoint: no proxy from the environment; the endpoint's own host
/// may be private (a SearXNG on the local network is a normal setup) but nothing else may be;
/// redirects stay on public addresses, and a request carrying a key never follows one to
/// another host.
fn client(
    backend: &'static str,
    endpoint: &Url,
    carries_key: bool,
) -> Result<reqwest::Client, SearchError> {
    let own_host = endpoint.host_str().unwrap_or_default().to_owned();
    let policy = Arc::new(HostPolicy::allowing([own_host.as_str()]));
    let redirects = {
        let policy = policy.clone();
        Policy::custom(move |attempt| {
            let url = attempt.url().clone();
            let host = url.host_str().unwrap_or_default().to_owned();
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            if !matches!(url.scheme(), "http" | "https") {
                return attempt.error(format!("a redirect to a `{}` URL", url.scheme()));
            }
            if host == own_host {
                return attempt.follow();
            }
            if carries_key {
                return attempt.error(format!(
                    "a redirect to another host ({host}), not followed so that the API key stays with {own_host}"
                ));
            }
            let literal = match url.host() {
                Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                _ => None,
            };
            match literal.map(|ip| policy.check(&host, ip)) {
                Some(Err(refused)) => attempt.error(refused.to_string()),
                _ => attempt.follow(),
            }
        })
    };
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(Duration::from_secs(20))
        .no_proxy()
        .redirect(redirects)
        .dns_resolver(GuardedResolver::new(policy))
        .build()
        .map_err(|e| SearchError {
            backend,
            message: format!("cannot build the HTTP client: {e}"),
        })
}

async fn get(
    backend: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<String, SearchError> {
    let fail = |message: String| SearchError { backend, message };
    let mut response = request
        .send()
        .await
        .map_err(|e| fail(format!("the service is unreachable ({})", error_chain(&e))))?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| fail(format!("reading the response failed ({})", error_chain(&e))))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(fail(format!(
                "the response is larger than {} MiB",
                MAX_RESPONSE_BYTES >> 20
            )));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let hint = match status.as_u16() {
            401 | 403 => "; check the API key",
            429 => "; the service is rate limiting, try again later",
            _ => "",
        };
        return Err(fail(format!("the service answered HTTP {status}{hint}")));
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// DuckDuckGo's HTML results page: works without a key or account.
#[derive(Debug, Clone)]
pub struct DuckDuckGo {
    endpoint: Url,
    client: reqwest::Client,
}

impl DuckDuckGo {
    /// The public endpoint, `https://html.duckduckgo.com/html/`.
    pub const ENDPOINT: &'static str = "https://html.duckduckgo.com/html/";

    /// A backend posting to `endpoint`.
    pub fn new(endpoint: Url) -> Result<Self, SearchError> {
        Ok(DuckDuckGo {
            client: client("DuckDuckGo", &endpoint, false)?,
            endpoint,
        })
    }

    /// Reads results out of a DuckDuckGo HTML results page.
    pub fn parse_results(html: &str) -> Vec<SearchResult> {
        let doc = Html::parse_document(html);
        let (Ok(result), Ok(link), Ok(snippet)) = (
            Selector::parse(".result"),
            Selector::parse("a.result__a"),
            Selector::parse(".result__snippet"),
        ) else {
            return Vec::new();
        };
        doc.select(&result)
            .filter(|r| !r.value().classes().any(|c| c == "result--ad"))
            .filter_map(|r| {
                let a = r.select(&link).next()?;
                let url = unwrap_redirect(a.value().attr("href")?)?;
                Some(SearchResult {
                    title: squash(&a.text().collect::<String>()),
                    url,
                    snippet: r
                        .select(&snippet)
                        .next()
                        .map(|s| squash(&s.text().collect::<String>()))
                        .unwrap_or_default(),
                })
            })
            .collect()
    }
}

/// DuckDuckGo links go through `/l/?uddg=<target>`; returns the target.
fn unwrap_redirect(href: &str) -> Option<String> {
    let base = Url::parse("https://duckduckgo.com/").ok()?;
    let url = base.join(href).ok()?;
    if url.path() == "/l/" {
        return url
            .query_pairs()
            .find(|(k, _)| k == "uddg")
            .map(|(_, v)| v.into_owned());
    }
    matches!(url.scheme(), "http" | "https").then(|| url.to_string())
}

impl SearchBackend for DuckDuckGo {
    fn name(&self) -> &'static str {
        "DuckDuckGo"
    }

    fn search<'a>(
        &'a self,
        query: &'a str,
        recency_days: Option<u32>,
    ) -> BoxFuture<'a, Result<Vec<SearchResult>, SearchError>> {
        Box::pin(async move {
            let mut form = vec![("q", query.to_owned())];
            if let Some(days) = recency_days {
                form.push(("df", ["d", "w", "m", "y"][recency_bucket(days)].to_owned()));
            }
            let mut url = self.endpoint.clone();
            url.query_pairs_mut().extend_pairs(form.iter());
            let body = get(self.name(), self.client.get(url)).await?;
            Ok(DuckDuckGo::parse_results(&body))
        })
    }
}

/// A SearXNG instance's JSON API (`format=json` must be enabled in its settings).
#[derive(Debug, Clone)]
pub struct Searxng {
    base: Url,
    client: reqwest::Client,
}

impl Searxng {
    /// A backend for the instance at `base`.
    pub fn new(base: Url) -> Result<Self, SearchError> {
        Ok(Searxng {
            client: client("SearXNG", &base, false)?,
            base,
        })
    }

    /// Reads results out of a SearXNG JSON response.
    pub fn parse_results(json: &str) -> Result<Vec<SearchResult>, SearchError> {
        let value: Value = serde_json::from_str(json).map_err(|e| SearchError {
            backend: "SearXNG",
            message: format!(
                "the response is not JSON ({e}); enable the json format under search.formats in the instance's settings.yml"
            ),
        })?;
        Ok(results_from(&value["results"], "title", "url", "content"))
    }
}

impl SearchBackend for Searxng {
    fn name(&self) -> &'static str {
        "SearXNG"
    }

    fn search<'a>(
        &'a self,
        query: &'a str,
        recency_days: Option<u32>,
    ) -> BoxFuture<'a, Result<Vec<SearchResult>, SearchError>> {
        Box::pin(async move {
            let mut url = self.base.join("search").map_err(|e| SearchError {
                backend: "SearXNG",
                message: format!("bad instance URL: {e}"),
            })?;
            url.query_pairs_mut()
                .append_pair("q", query)
                .append_pair("format", "json");
            if let Some(days) = recency_days {
                let range = ["day", "week", "month", "year"][recency_bucket(days)];
                url.query_pairs_mut().append_pair("time_range", range);
            }
            let body = get(self.name(), self.client.get(url)).await?;
            Searxng::parse_results(&body)
        })
    }
}

/// The Brave Search API; needs an API key.
#[derive(Debug, Clone)]
pub struct BraveSearch {
    endpoint: Url,
    key: String,
    client: reqwest::Client,
}

impl BraveSearch {
    /// The public endpoint.
    pub const ENDPOINT: &'static str = "https://api.search.brave.com/res/v1/web/search";
    /// The environment variable holding the key.
    pub const KEY_ENV: &'static str = "BRAVE_SEARCH_API_KEY";

    /// A backend calling `endpoint` with `key`.
    pub fn new(endpoint: Url, key: String) -> Result<Self, SearchError> {
        Ok(BraveSearch {
            client: client("Brave", &endpoint, true)?,
            endpoint,
            key,
        })
    }

    /// Reads results out of a Brave web-search response.
    pub fn parse_results(json: &str) -> Result<Vec<SearchResult>, SearchError> {
        let value: Value = serde_json::from_str(json).map_err(|e| SearchError {
            backend: "Brave",
            message: format!("the response is not JSON ({e})"),
        })?;
        let mut results = results_from(&value["web"]["results"], "title", "url", "description");
        for r in &mut results {
            r.title = strip_tags(&r.title);
            r.snippet = strip_tags(&r.snippet);
        }
        Ok(results)
    }
}

impl SearchBackend for BraveSearch {
    fn name(&self) -> &'static str {
        "Brave"
    }

    fn search<'a>(
        &'a self,
        query: &'a str,
        recency_days: Option<u32>,
    ) -> BoxFuture<'a, Result<Vec<SearchResult>, SearchError>> {
        Box::pin(async move {
            let mut url = self.endpoint.clone();
            url.query_pairs_mut().append_pair("q", query);
            if let Some(days) = recency_days {
                let freshness = ["pd", "pw", "pm", "py"][recency_bucket(days)];
                url.query_pairs_mut().append_pair("freshness", freshness);
            }
            let request = self
                .client
                .get(url)
                .header("Accept", "application/json")
                .header("X-Subscription-Token", &self.key);
            let body = get(self.name(), request).await?;
            BraveSearch::parse_results(&body)
        })
    }
}

fn results_from(list: &Value, title: &str, url: &str, snippet: &str) -> Vec<SearchResult> {
    let field = |item: &Value, key: &str| squash(item[key].as_str().unwrap_or_default());
    list.as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| SearchResult {
                    title: field(item, title),
                    url: field(item, url),
                    snippet: field(item, snippet),
                })
                .filter(|r| !r.url.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn strip_tags(text: &str) -> String {
    squash(
        &Html::parse_fragment(text)
            .root_element()
            .text()
            .collect::<String>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duckduckgo_links_are_unwrapped() {
        assert_eq!(
            unwrap_redirect("//duckduckgo.com/l/?uddg=https%3A%2F%2Fexample.com%2Fa%3Fb%3D1&rut=x")
                .as_deref(),
            Some("https://example.com/a?b=1")
        );
        assert_eq!(
            unwrap_redirect("https://example.org/").as_deref(),
            Some("https://example.org/")
        );
        assert_eq!(unwrap_redirect("javascript:alert(1)"), None);
    }

    #[test]
    fn recency_buckets() {
        assert_eq!(
            [1, 2, 7, 8, 31, 32, 365].map(recency_bucket),
            [0, 1, 1, 2, 2, 3, 3]
        );
    }
}
