//! The agent's HTTP link to the managers: JSON POSTs to whichever manager answers, rotating
//! through the known addresses on connection failures and `503`s (a follower forwards to the
//! leader itself, so any live manager will do).
//!
//! It deliberately does not retry forever by itself: callers decide (reports are retried until
//! answered, polls are simply repeated).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Per-request timeout beyond a long-poll's own wait. Default: 5 s.
pub const REQUEST_TIMEOUT_MS: u64 = 5_000;

/// What one attempt to talk to a manager produced.
#[derive(Debug)]
pub enum Answer<T> {
    /// A 2xx with a decodable body.
    Ok(T),
    /// A definitive refusal (4xx other than 404/408/429): retrying will not help.
    Refused {
        /// HTTP status.
        status: u16,
        /// The body, as text.
        body: String,
    },
    /// Unreachable, 5xx, timeout or undecodable: try again (the next manager).
    Retry(String),
}

/// Managers' API base URLs and a client.
#[derive(Debug)]
pub struct Link {
    http: reqwest::Client,
    managers: Mutex<Vec<String>>,
    current: AtomicUsize,
}

/// `127.0.0.1:7101` or `http://127.0.0.1:7101/` → `http://127.0.0.1:7101`.
pub fn base_url(address: &str) -> String {
    let trimmed = address.trim().trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        trimmed.to_owned()
    } else {
        format!("http://{trimmed}")
    }
}

impl Link {
    /// A link to `managers` (API addresses or base URLs).
    pub fn new(managers: &[String]) -> Link {
        Link {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(1))
                .build()
                .unwrap_or_default(),
            managers: Mutex::new(managers.iter().map(|m| base_url(m)).collect()),
            current: AtomicUsize::new(0),
        }
    }

    /// Adds managers learned from a registration answer.
    pub fn learn(&self, managers: &[String]) {
        let mut known = self.lock();
        for manager in managers.iter().map(|m| base_url(m)) {
            if !known.contains(&manager) {
                known.push(manager);
            }
        }
    }

    /// The manager currently talked to.
    pub fn current(&self) -> Option<String> {
        let known = self.lock();
        if known.is_empty() {
            return None;
        }
        Some(known[self.current.load(Ordering::Relaxed) % known.len()].clone())
    }

    /// POSTs `body` to `path` on the current manager; on a retryable failure moves on to the
    /// next manager for the following call.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        wait: Duration,
    ) -> Answer<T> {
        let Some(base) = self.current() else {
            return Answer::Retry("no manager address".to_owned());
        };
        let answer = self.post_to(&base, path, body, wait).await;
        if matches!(answer, Answer::Retry(_)) {
            self.current.fetch_add(1, Ordering::Relaxed);
        }
        answer
    }

    async fn post_to<B: Serialize, T: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        body: &B,
        wait: Duration,
    ) -> Answer<T> {
        let timeout = wait + Duration::from_millis(REQUEST_TIMEOUT_MS);
        let response = match self
            .http
            .post(format!("{base}{path}"))
            .json(body)
            .timeout(timeout)
            .send()
            .await
        {
            Ok(response) => response,
            Err(err) => return Answer::Retry(format!("{base}{path}: {err}")),
        };
        let status = response.status();
        if status.is_success() {
            return match response.json::<T>().await {
                Ok(value) => Answer::Ok(value),
                Err(err) => Answer::Retry(format!("{base}{path}: bad answer: {err}")),
            };
        }
        let body = response.text().await.unwrap_or_default();
        let retryable = status.is_server_error() || matches!(status.as_u16(), 404 | 408 | 429);
        if retryable {
            Answer::Retry(format!("{base}{path}: {status}: {body}"))
        } else {
            Answer::Refused {
                status: status.as_u16(),
                body,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        // Plain strings; a panic mid-push cannot leave the list inconsistent.
        self.managers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_become_base_urls() {
        assert_eq!(base_url("127.0.0.1:7101"), "http://127.0.0.1:7101");
        assert_eq!(base_url("http://h:1/"), "http://h:1");
        let link = Link::new(&["127.0.0.1:1".to_owned()]);
        link.learn(&["127.0.0.1:2".to_owned(), "http://127.0.0.1:1".to_owned()]);
        assert_eq!(link.lock().len(), 2);
    }
}
