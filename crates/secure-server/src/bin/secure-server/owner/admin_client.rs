//! [`AdminClient`]: the owner API's HTTP client (plain HTTP, no proxy, bearer key), and
//! [`AdminError`], which says what failed and never shows the key.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::http_client;

/// How long an `admin` request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The environment variable that holds the admin key.
pub const ADMIN_KEY_ENV: &str = "CLICHAT_ADMIN_KEY";

/// Why a call of the owner API failed. No message shows the key.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No key was given and none is configured.
    #[error(
        "no admin key: give --key, set {ADMIN_KEY_ENV}, or set `admin_key` in {}",
        .0.display()
    )]
    NoKey(PathBuf),
    /// `--url` is not an `http://` URL.
    #[error(
        "--url {0}: not an http:// URL (this client speaks plain HTTP; reach a remote server \
         through an SSH tunnel to its loopback address)"
    )]
    BadUrl(String),
    /// Nothing answered at the URL.
    #[error(
        "cannot reach the owner API at {url}: {cause} (is the server running, and is the URL right?)"
    )]
    Unreachable {
        /// What was called.
        url: String,
        /// Why it failed.
        cause: String,
    },
    /// The API answered with an error.
    #[error("{method} {url}: HTTP {status}: {message}{hint}")]
    Refused {
        /// `GET` or `POST`.
        method: &'static str,
        /// What was called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The API's `error` text, or the status's reason.
        message: String,
        /// What to check, if there is an obvious thing.
        hint: &'static str,
    },
    /// The API answered success with something that is not JSON.
    #[error("{method} {url}: the answer is not JSON: {cause}")]
    BadAnswer {
        /// `GET` or `POST`.
        method: &'static str,
        /// What was called.
        url: String,
        /// Why it could not be read.
        cause: String,
    },
}

/// A client of the owner API. Deliberately not `Debug`: it holds the key.
pub struct AdminClient {
    pub(super) base: String,
    key: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:70/admin/`) with bearer `key`.
    ///
    /// # Errors
    /// [`AdminError::BadUrl`] unless `base` is an `http://` URL.
    pub fn new(base: &str, key: &str) -> Result<AdminClient, AdminError> {
        if !base.starts_with("http://") || base.len() <= "http://".len() {
            return Err(AdminError::BadUrl(base.to_owned()));
        }
        let http = http_client(ADMIN_TIMEOUT).map_err(|e| AdminError::Unreachable {
            url: base.to_owned(),
            cause: e.to_string(),
        })?;
        Ok(AdminClient {
            base: format!("{}/", base.trim_end_matches('/')),
            key: key.to_owned(),
            http,
        })
    }

    /// `GET {base}{path}`; the JSON answer.
    ///
    /// # Errors
    /// [`AdminError`]: unreachable, refused (the API's `error` text), or not JSON.
    pub async fn get(&self, path: &str) -> Result<Value, AdminError> {
        self.call("GET", path, None).await
    }

    /// `POST {base}{path}` with a JSON body; the JSON answer.
    ///
    /// # Errors
    /// As [`AdminClient::get`].
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, AdminError> {
        self.call("POST", path, Some(body)).await
    }

    async fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, AdminError> {
        let url = format!("{}{path}", self.base);
        let mut request = match body {
            Some(body) => self
                .http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string()),
            None => self.http.get(&url),
        };
        request = request.bearer_auth(&self.key);
        let response = request.send().await.map_err(|e| AdminError::Unreachable {
            url: url.clone(),
            cause: cause(&e),
        })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| AdminError::Unreachable {
                url: url.clone(),
                cause: cause(&e),
            })?;
        let parsed = serde_json::from_slice::<Value>(&body);
        if !status.is_success() {
            let message = parsed
                .as_ref()
                .ok()
                .and_then(|v| v.get("error")?.as_str().map(str::to_owned));
            let hint = match (status.as_u16(), &message) {
                (401, _) => " (check --key, CLICHAT_ADMIN_KEY or `admin_key` in the config)",
                (404, None) => {
                    " (is `admin_key` set in the server's config, and is the URL right?)"
                }
                _ => "",
            };
            return Err(AdminError::Refused {
                method,
                url,
                status: status.as_u16(),
                message: message
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
                hint,
            });
        }
        parsed.map_err(|e| AdminError::BadAnswer {
            method,
            url,
            cause: e.to_string(),
        })
    }
}

/// The innermost cause of an HTTP client error ("Connection refused (os error 111)"), which
/// says more than the outer "error sending request".
fn cause(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "no answer in time".to_owned();
    }
    let mut inner: &dyn std::error::Error = error;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}
