//! What a server announces about itself before anyone logs in: `GET /app/server.json` on the
//! chat's own host and port (`http://` for a `ws://` server, `https://` for `wss://`), answered
//! by this project's server with `{"sauth2": true, "max_username_length": 15,
//! "max_message_length": 200}`. The client states and enforces these limits itself, so a person
//! hears about a name or message that is too long before the server refuses it.
//!
//! Servers that do not answer (the original CLIChat servers, or a network that blocks the
//! request) leave the defaults: 15 and 200, or `--max-length`.

use std::path::Path;
use std::time::Duration;

use clichat_client::{DEFAULT_MAX_MESSAGE_LENGTH, ServerAddress};

/// The longest username a server takes unless its owner configured another limit.
pub const DEFAULT_MAX_USERNAME_LENGTH: usize = 15;

/// How long to wait for `/app/server.json` before going on with the defaults.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest answer read: the real one is under a hundred bytes.
const MAX_ANSWER: usize = 4096;

/// Where the system keeps its trusted certificate authorities, for `https://`, as OpenSSL and
/// rustls-native-certs look for them on Unix (`SSL_CERT_FILE` first).
const CA_BUNDLES: [&str; 6] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/ssl/cert.pem",
    "/usr/local/etc/openssl/cert.pem",
];

/// The limits and login kind the client works with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerInfo {
    /// Whether logins need a token and the token page (SAUTH2); `None` when not announced.
    pub sauth2: Option<bool>,
    /// The longest username, in Unicode scalar values.
    pub max_username_length: usize,
    /// The longest message, in Unicode scalar values.
    pub max_message_length: usize,
}

impl ServerInfo {
    /// What the client assumes of a server that announces nothing: 15 and 200, or
    /// `max_length` (from `--max-length`) for messages.
    pub fn fallback(max_length: Option<usize>) -> ServerInfo {
        ServerInfo {
            sauth2: None,
            max_username_length: DEFAULT_MAX_USERNAME_LENGTH,
            max_message_length: max_length.unwrap_or(DEFAULT_MAX_MESSAGE_LENGTH),
        }
    }

    /// Reads an answer of `/app/server.json`; each value missing or out of range keeps
    /// `fallback`'s.
    pub fn parse(body: &[u8], fallback: ServerInfo) -> Option<ServerInfo> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let object = value.as_object()?;
        let limit = |key: &str| {
            object
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n > 0)
        };
        Some(ServerInfo {
            sauth2: object
                .get("sauth2")
                .and_then(serde_json::Value::as_bool)
                .or(fallback.sauth2),
            max_username_length: limit("max_username_length")
                .unwrap_or(fallback.max_username_length),
            max_message_length: limit("max_message_length").unwrap_or(fallback.max_message_length),
        })
    }

    /// Asks the server at `address`; `fallback` if it does not answer with its JSON within a
    /// few seconds. `trust_cert` is `--trust-cert`, for a `wss://` server's own certificate.
    pub async fn fetch(
        address: &ServerAddress,
        trust_cert: Option<&Path>,
        fallback: ServerInfo,
    ) -> ServerInfo {
        match tokio::time::timeout(FETCH_TIMEOUT, get(address, trust_cert)).await {
            Ok(Some(body)) => ServerInfo::parse(&body, fallback).unwrap_or(fallback),
            _ => fallback,
        }
    }
}

/// `GET /app/server.json`, the body of a 200 answer.
async fn get(address: &ServerAddress, trust_cert: Option<&Path>) -> Option<Vec<u8>> {
    let scheme = if address.is_tls() { "https" } else { "http" };
    let url = format!("{scheme}://{}/app/server.json", address.authority());
    // The chat connects directly, so this does too: no proxy from the environment.
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if address.is_tls() {
        for certificate in trusted_certificates(trust_cert) {
            builder = builder.add_root_certificate(certificate);
        }
    }
    let client = builder.build().ok()?;
    let mut response = client.get(url).send().await.ok()?;
    if response.status() != reqwest::StatusCode::OK {
        return None;
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER {
            return None;
        }
    }
    Some(body)
}

/// The system's certificate authorities and `--trust-cert`'s certificates; what cannot be read
/// is left out (the request then fails, and the defaults apply).
fn trusted_certificates(trust_cert: Option<&Path>) -> Vec<reqwest::Certificate> {
    let system = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(CA_BUNDLES.iter().map(std::path::PathBuf::from))
        .find_map(|path| std::fs::read(path).ok());
    system
        .into_iter()
        .chain(trust_cert.and_then(|path| std::fs::read(path).ok()))
        .filter_map(|pem| reqwest::Certificate::from_pem_bundle(&pem).ok())
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_announced_values_replace_the_fallback() {
        let fallback = ServerInfo::fallback(None);
        assert_eq!(
            ServerInfo::parse(
                br#"{"sauth2": false, "max_username_length": 20, "max_message_length": 500}"#,
                fallback
            ),
            Some(ServerInfo {
                sauth2: Some(false),
                max_username_length: 20,
                max_message_length: 500,
            })
        );
        // Missing or nonsense values keep the fallback's; `--max-length` is one.
        let fallback = ServerInfo::fallback(Some(120));
        assert_eq!(
            ServerInfo::parse(
                br#"{"max_message_length": 0, "max_username_length": "x"}"#,
                fallback
            ),
            Some(fallback)
        );
        assert_eq!(fallback.max_message_length, 120);
        assert_eq!(ServerInfo::parse(b"<html>", fallback), None);
    }
}
