//! `simple_browser`, GLM-4's built-in web tool: `search`, `mclick` and `open_url`.
//!
//! Results, pages and the links inside pages share one numbering per run, so the model can
//! open any of them with `mclick([ids])` and cite them as `【id†text】`.

mod blocks;
mod blocks_model;
mod fetch;
mod guard;
mod html;
mod page;
mod reader;
mod search;
mod shape;

use std::sync::Mutex;

use futures::StreamExt;
use glm_prompts::{BrowserCall, ToolSpec};
use url::Url;

pub use blocks::{FEATURES, Model};
pub use blocks_model::MODEL;
pub use fetch::{FetchError, FetchLimits, Fetched, Fetcher, USER_AGENT};
pub use guard::{GuardedResolver, HostPolicy, Refused, non_public_reason};
pub use html::{Extracted, INVISIBLE, Link, article_blocks, extract, extract_with};
pub use page::{Page, decode, render_page, render_page_with};
pub use search::{
    BoxFuture, BraveSearch, DuckDuckGo, SearchBackend, SearchError, SearchResult, Searxng,
};

use crate::error::CallError;
use crate::tool::{Observation, Tool, ToolContext, ToolOutput};

/// Which search service `search` uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SearchChoice {
    /// DuckDuckGo's HTML page (no key): the public endpoint, or this one.
    #[default]
    DuckDuckGo,
    /// DuckDuckGo-compatible HTML results at another endpoint.
    DuckDuckGoAt(Url),
    /// A SearXNG instance at this base URL.
    Searxng(Url),
    /// The Brave Search API with this key, at the public endpoint or the one given.
    Brave {
        /// Another endpoint (tests, proxies); `None` is the public API.
        endpoint: Option<Url>,
        /// Subscription token.
        key: String,
    },
}

impl SearchChoice {
    /// Reads a choice: `duckduckgo`, `duckduckgo:URL`, `searxng:URL` (or `searxng` with
    /// `SEARXNG_URL`), `brave` or `brave:ENDPOINT` (key from `BRAVE_SEARCH_API_KEY`). `env`
    /// looks variables up.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let (kind, rest) = text
            .split_once(':')
            .map_or((text, None), |(k, r)| (k, Some(r)));
        let url = |s: &str| Url::parse(s).map_err(|e| format!("bad search URL `{s}`: {e}"));
        match (kind.trim().to_ascii_lowercase().as_str(), rest) {
            ("duckduckgo" | "ddg", None) => Ok(SearchChoice::DuckDuckGo),
            ("duckduckgo" | "ddg", Some(u)) => Ok(SearchChoice::DuckDuckGoAt(url(u)?)),
            ("searxng", Some(u)) => Ok(SearchChoice::Searxng(url(u)?)),
            ("searxng", None) => match env("SEARXNG_URL") {
                Some(u) => Ok(SearchChoice::Searxng(url(&u)?)),
                None => Err(
                    "searxng needs an instance URL: --search searxng:http://HOST:8888/ or SEARXNG_URL"
                        .into(),
                ),
            },
            ("brave", rest) => {
                let key = env(BraveSearch::KEY_ENV)
                    .filter(|k| !k.trim().is_empty())
                    .ok_or_else(|| {
                        format!("brave search needs an API key in {}", BraveSearch::KEY_ENV)
                    })?;
                let endpoint = rest.map(url).transpose()?;
                Ok(SearchChoice::Brave { endpoint, key })
            }
            _ => Err(format!(
                "unknown search backend `{text}`; use duckduckgo, searxng:URL or brave"
            )),
        }
    }

    fn build(&self) -> Result<Box<dyn SearchBackend>, SearchError> {
        let public = |endpoint: &str, backend: &'static str| {
            Url::parse(endpoint).map_err(|e| SearchError {
                backend,
                message: e.to_string(),
            })
        };
        Ok(match self {
            SearchChoice::DuckDuckGo => Box::new(DuckDuckGo::new(public(
                DuckDuckGo::ENDPOINT,
                "DuckDuckGo",
            )?)?),
            SearchChoice::DuckDuckGoAt(url) => Box::new(DuckDuckGo::new(url.clone())?),
            SearchChoice::Searxng(url) => Box::new(Searxng::new(url.clone())?),
            SearchChoice::Brave { endpoint, key } => {
                let endpoint = match endpoint {
                    Some(url) => url.clone(),
                    None => public(BraveSearch::ENDPOINT, "Brave")?,
                };
                Box::new(BraveSearch::new(endpoint, key.clone())?)
            }
        })
    }
}

/// Settings of the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserConfig {
    /// Hosts (names or addresses) the user allows even though they are not public.
    pub allow_hosts: Vec<String>,
    /// The search service.
    pub search: SearchChoice,
    /// Fetch limits.
    pub limits: FetchLimits,
    /// Characters of one page the model sees; the rest is cut and the visible range shown.
    pub max_page_chars: usize,
    /// Pages `mclick` fetches at once.
    pub concurrency: usize,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        BrowserConfig {
            allow_hosts: Vec::new(),
            search: SearchChoice::default(),
            limits: FetchLimits::default(),
            max_page_chars: 12_000,
            concurrency: 4,
        }
    }
}

/// A page or result the model can open or cite by number.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    url: String,
    title: String,
}

/// The `simple_browser` tool. One instance per run: it remembers the numbered sources.
pub struct SimpleBrowser {
    fetcher: Fetcher,
    search: Box<dyn SearchBackend>,
    sources: Mutex<Vec<Source>>,
    /// Held while a page is read and its links numbered.
    numbering: tokio::sync::Mutex<()>,
    max_page_chars: usize,
    concurrency: usize,
}

impl std::fmt::Debug for SimpleBrowser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimpleBrowser")
            .field("search", &self.search.name())
            .finish_non_exhaustive()
    }
}

impl SimpleBrowser {
    /// A browser with `config`.
    pub fn new(config: BrowserConfig) -> Result<Self, CallError> {
        let fetcher = Fetcher::new(HostPolicy::allowing(&config.allow_hosts), config.limits)
            .map_err(|e| CallError::Fatal(e.to_string()))?;
        let search = config
            .search
            .build()
            .map_err(|e| CallError::Fatal(e.to_string()))?;
        Ok(SimpleBrowser {
            fetcher,
            search,
            sources: Mutex::new(Vec::new()),
            numbering: tokio::sync::Mutex::new(()),
            max_page_chars: config.max_page_chars.max(100),
            concurrency: config.concurrency.max(1),
        })
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, Vec<Source>> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers new sources; returns the first id.
    fn add_sources(&self, new: impl IntoIterator<Item = Source>) -> usize {
        let mut sources = self.sources();
        let first = sources.len();
        sources.extend(new);
        first
    }

    async fn search(
        &self,
        query: &str,
        recency_days: Option<u32>,
    ) -> Result<ToolOutput, CallError> {
        let results = self
            .search
            .search(query, recency_days)
            .await
            .map_err(|e| CallError::Respond(e.to_string()))?;
        if results.is_empty() {
            return Ok(Observation {
                metadata: Some("browser_result".into()),
                text: format!("No results for {query:?}. Try other words.\nVisible: 0% - 100%"),
                files: Vec::new(),
            }
            .into());
        }
        let first = self.add_sources(results.iter().map(|r| Source {
            url: r.url.clone(),
            title: r.title.clone(),
        }));
        let entries: Vec<String> = results
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "# 【{}†{}†{}】\n{}",
                    first + i,
                    r.title,
                    host_of(&r.url),
                    r.snippet
                )
            })
            .collect();
        Ok(Observation {
            metadata: Some("browser_result".into()),
            text: format!("{}\n\nVisible: 0% - 100%", entries.join("\n\n")),
            files: Vec::new(),
        }
        .into())
    }

    /// Fetches and renders one page as source `id`, numbering its links after the sources
    /// known so far. Reading the page runs on a blocking thread within what is left of the
    /// fetch's time limit; a page that takes longer is shown as its plain text.
    async fn open(&self, id: usize, url: &str) -> Result<String, FetchError> {
        let deadline = tokio::time::Instant::now() + self.fetcher.limits().total_timeout;
        let fetched = self.fetcher.fetch(url).await?;
        // One page is numbered at a time, so ids cannot change between numbering and adding.
        let _numbering = self.numbering.lock().await;
        let first_link = self.sources().len();
        let max_chars = self.max_page_chars;
        let fetched = std::sync::Arc::new(fetched);
        let reading = tokio::task::spawn_blocking({
            let fetched = fetched.clone();
            move || render_page(&fetched, id, first_link, max_chars)
        });
        let page = match tokio::time::timeout_at(deadline, reading).await {
            Ok(Ok(page)) => page,
            Ok(Err(_)) | Err(_) => plain_page(fetched, id, max_chars).await?,
        };
        let mut sources = self.sources();
        if let Some(source) = sources.get_mut(id) {
            source.title = page.title.clone();
        }
        sources.extend(page.links.iter().map(|l| Source {
            url: l.url.to_string(),
            title: l.text.clone(),
        }));
        Ok(page.text)
    }

    async fn open_url(&self, url: &str) -> Result<ToolOutput, CallError> {
        let id = self.add_sources([Source {
            url: url.to_owned(),
            title: String::new(),
        }]);
        let text = self
            .open(id, url)
            .await
            .map_err(|e| CallError::Respond(e.to_string()))?;
        Ok(Observation {
            metadata: Some("browser_result".into()),
            text,
            files: Vec::new(),
        }
        .into())
    }

    async fn mclick(&self, ids: &[u32]) -> Result<ToolOutput, CallError> {
        let known: Vec<(u32, Option<Source>)> = {
            let sources = self.sources();
            ids.iter()
                .map(|id| (*id, sources.get(*id as usize).cloned()))
                .collect()
        };
        let total = self.sources().len();
        let pages = futures::stream::iter(known)
            .map(|(id, source)| async move {
                let Some(source) = source else {
                    let range = match total {
                        0 => "there are none yet; run search first".to_owned(),
                        n => format!("valid ids are 0 to {}", n - 1),
                    };
                    return Observation {
                        metadata: Some(format!("quote_result [{id}†unknown]")),
                        text: format!("Error: there is no source {id}; {range}."),
                        files: Vec::new(),
                    };
                };
                let text = match self.open(id as usize, &source.url).await {
                    Ok(text) => text,
                    Err(e) => format!("Error: this page could not be opened: {e}"),
                };
                Observation {
                    metadata: Some(format!("quote_result [{id}†{}]", source.url)),
                    text,
                    files: Vec::new(),
                }
            })
            .buffered(self.concurrency)
            .collect::<Vec<_>>()
            .await;
        Ok(pages.into())
    }
}

/// The page as plain text, for a page whose reading ran out of time; plain text is linear
/// work, given a few seconds of its own.
async fn plain_page(
    fetched: std::sync::Arc<Fetched>,
    id: usize,
    max_chars: usize,
) -> Result<Page, FetchError> {
    let url = fetched.url.to_string();
    let reading = tokio::task::spawn_blocking(move || page::plain_page(&fetched, id, max_chars));
    match tokio::time::timeout(PLAIN_TEXT_TIME, reading).await {
        Ok(Ok(page)) => Ok(page),
        _ => Err(FetchError::Unreadable { url }),
    }
}

/// Time for reading a page as plain text after its full reading ran out of time.
const PLAIN_TEXT_TIME: std::time::Duration = std::time::Duration::from_secs(5);

fn host_of(url: &str) -> String {
    Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Tool for SimpleBrowser {
    const NAME: &'static str = "simple_browser";
    type Args = BrowserCall;
    type Output = ToolOutput;

    fn description(&self) -> &str {
        "Search the web and read pages: search(query, recency_days), mclick(ids), open_url(url)."
    }

    /// It reads: GET requests only, no forms, no scripts.
    fn read_only(&self) -> bool {
        true
    }

    async fn call(&self, args: BrowserCall, _ctx: &ToolContext) -> Result<ToolOutput, CallError> {
        match args {
            BrowserCall::Search {
                query,
                recency_days,
            } => self.search(&query, recency_days).await,
            BrowserCall::Mclick { ids } => self.mclick(&ids).await,
            BrowserCall::OpenUrl { url } => self.open_url(&url).await,
        }
    }

    fn spec(&self) -> ToolSpec {
        ToolSpec::SimpleBrowser
    }
}
