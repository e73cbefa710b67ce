//! Fetching pages: http(s) only, every redirect re-checked, time and size bounded.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::redirect::Policy;
use url::{Host, Url};

use super::guard::{GuardedResolver, HostPolicy, Refused};

/// The user agent every request sends.
pub const USER_AGENT: &str = concat!(
    "glm-agent/",
    env!("CARGO_PKG_VERSION"),
    " (simple_browser; +https://github.com/glm-agent/glm-agent)"
);

/// Limits of one fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchLimits {
    /// The whole fetch, redirects included.
    pub total_timeout: Duration,
    /// The longest wait for the next bytes of a response.
    pub read_timeout: Duration,
    /// Bytes of body kept; the rest is dropped and the page says so.
    pub max_body_bytes: usize,
    /// Redirects followed.
    pub max_redirects: usize,
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            total_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(10),
            max_body_bytes: 5 * 1024 * 1024,
            max_redirects: 5,
        }
    }
}

/// A fetched response.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The final URL, after redirects.
    pub url: Url,
    /// HTTP status.
    pub status: u16,
    /// The `Content-Type` header, lowercased (empty when absent).
    pub content_type: String,
    /// The body, at most `max_body_bytes`.
    pub body: Vec<u8>,
    /// Whether the body was cut at the cap.
    pub truncated: bool,
}

/// Why a fetch failed, in words the model can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Not a URL, or not http/https.
    #[error("cannot open `{url}`: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The address is not public and the host is not allowed.
    #[error("{0}")]
    Refused(Refused),
    /// Too many redirects.
    #[error("{url} redirected more than {max} times")]
    TooManyRedirects {
        /// Where the chain started.
        url: String,
        /// The limit.
        max: usize,
    },
    /// The time limit passed.
    #[error("{url} did not answer within {seconds} s")]
    Timeout {
        /// The address asked for.
        url: String,
        /// The limit that passed.
        seconds: u64,
    },
    /// The page could not be read in time, not even as plain text.
    #[error("{url} could not be read in time: the page is too large or too complex")]
    Unreadable {
        /// The address asked for.
        url: String,
    },
    /// Connection or protocol failure.
    #[error("could not fetch {url}: {message}")]
    Network {
        /// The address asked for.
        url: String,
        /// What failed.
        message: String,
    },
}

/// An HTTP client that only reaches permitted addresses and keeps no cookies.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: Arc<HostPolicy>,
    limits: FetchLimits,
}

impl Fetcher {
    /// Builds a client enforcing `policy`.
    pub fn new(policy: HostPolicy, limits: FetchLimits) -> Result<Self, FetchError> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(Policy::none())
            .no_proxy()
            .dns_resolver(GuardedResolver::new(policy.clone()))
            .connect_timeout(limits.read_timeout)
            .read_timeout(limits.read_timeout)
            .build()
            .map_err(|e| FetchError::Network {
                url: String::new(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Fetcher {
            client,
            policy,
            limits,
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> &FetchLimits {
        &self.limits
    }

    /// Fetches `url`, following at most `max_redirects` redirects, each checked again.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        let limit = self.limits.total_timeout;
        match tokio::time::timeout(limit, self.fetch_inner(url)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout {
                url: url.to_owned(),
                seconds: limit.as_secs(),
            }),
        }
    }

    async fn fetch_inner(&self, start: &str) -> Result<Fetched, FetchError> {
        let mut url = parse_url(start)?;
        for _ in 0..=self.limits.max_redirects {
            self.check_literal(&url)?;
            let response = self
                .client
                .get(url.clone())
                .send()
                .await
                .map_err(|e| classify(&url, &e))?;
            let status = response.status();
            if let Some(location) = response
                .headers()
                .get(LOCATION)
                .filter(|_| status.is_redirection())
            {
                let location = location.to_str().unwrap_or_default();
                url = url.join(location).map_err(|e| FetchError::BadUrl {
                    url: location.to_owned(),
                    reason: format!("bad redirect target: {e}"),
                })?;
                check_scheme(&url)?;
                continue;
            }
            return self.read_body(url, response).await;
        }
        Err(FetchError::TooManyRedirects {
            url: start.to_owned(),
            max: self.limits.max_redirects,
        })
    }

    /// Addresses written in the URL never reach the resolver, so they are checked here.
    fn check_literal(&self, url: &Url) -> Result<(), FetchError> {
        let ip = match url.host() {
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            Some(Host::Domain(_)) => return Ok(()),
            None => {
                return Err(FetchError::BadUrl {
                    url: url.to_string(),
                    reason: "the URL has no host".into(),
                });
            }
        };
        self.policy
            .check(url.host_str().unwrap_or_default(), ip)
            .map_err(FetchError::Refused)
    }

    async fn read_body(
        &self,
        url: Url,
        mut response: reqwest::Response,
    ) -> Result<Fetched, FetchError> {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let cap = self.limits.max_body_bytes;
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&url, &e))? {
            let room = cap - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            url,
            status,
            content_type,
            body,
            truncated,
        })
    }
}

fn parse_url(text: &str) -> Result<Url, FetchError> {
    let url = Url::parse(text.trim()).map_err(|e| FetchError::BadUrl {
        url: text.to_owned(),
        reason: format!("{e}; write a full URL such as https://example.com/page"),
    })?;
    check_scheme(&url)?;
    Ok(url)
}

fn check_scheme(url: &Url) -> Result<(), FetchError> {
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(FetchError::BadUrl {
            url: url.to_string(),
            reason: format!("the `{other}` scheme is not supported; only http and https are"),
        }),
    }
}

/// Turns a reqwest error into a [`FetchError`], finding a refusal from the resolver.
fn classify(url: &Url, error: &reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return FetchError::Refused(refused.clone());
        }
        source = e.source();
    }
    if error.is_timeout() {
        return FetchError::Network {
            url: url.to_string(),
            message: "the server stopped sending data (read timeout)".into(),
        };
    }
    FetchError::Network {
        url: url.to_string(),
        message: error_chain(error),
    }
}

/// An error with its causes, which say what a redirect policy or the resolver refused.
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        message.push_str(": ");
        message.push_str(&e.to_string());
        source = e.source();
    }
    message
}
