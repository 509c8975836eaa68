//! Server addresses as people type them, and the token-page links servers send back.

use std::fmt;

use url::Url;

use crate::Error;

/// The port CLIChat servers listen on when the address names none.
pub const DEFAULT_PORT: u16 = 70;

/// What the original Node Secure Server put in front of the page id instead of its own address
/// (`["authmsg", "SERVERIPHERE/<id>"]`); its README wrote it as `SERVERIP/<id>`.
const ORIGINAL_PLACEHOLDERS: [&str; 2] = ["SERVERIPHERE/", "SERVERIP/"];

/// A WebSocket address of a CLIChat server.
///
/// Parsed leniently, the way people type addresses: `chat.example.com`, `localhost:7070`,
/// `ws://10.0.0.5:70/` and `wss://chat.example.com` all work. Without a scheme the address is
/// `ws://` on port [`DEFAULT_PORT`]; with one, the scheme's own default port applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    url: Url,
}

impl ServerAddress {
    /// Parses an address typed by a person.
    ///
    /// # Errors
    /// [`Error::InvalidAddress`] when it is not a host with an optional port, or a `ws://` or
    /// `wss://` URL.
    pub fn parse(text: &str) -> Result<ServerAddress, Error> {
        let invalid = |reason: &str| Error::InvalidAddress {
            address: text.to_owned(),
            reason: reason.to_owned(),
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        let url = if text.contains("://") {
            Url::parse(text).map_err(|e| invalid(&e.to_string()))?
        } else {
            let mut url =
                Url::parse(&format!("ws://{text}")).map_err(|e| invalid(&e.to_string()))?;
            if url.port().is_none() {
                url.set_port(Some(DEFAULT_PORT))
                    .map_err(|()| invalid("it has no host"))?;
            }
            url
        };
        if !matches!(url.scheme(), "ws" | "wss") {
            return Err(invalid("the scheme must be ws:// or wss://"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it has no host"));
        }
        Ok(ServerAddress { url })
    }

    /// The WebSocket URL to connect to.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// `host:port` (the port written out even when it is the scheme's default).
    pub fn authority(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// Whether the connection is encrypted (`wss://`).
    pub fn is_tls(&self) -> bool {
        self.url.scheme() == "wss"
    }

    /// The link a person should open for a server's `authmsg`.
    ///
    /// Links from this project's server are full URLs and come back unchanged. The original Node
    /// server sent `SERVERIPHERE/<id>`; that placeholder is replaced by this server's own host and
    /// port, over `https://` when the chat is on `wss://`.
    pub fn resolve_link(&self, link: &str) -> String {
        for placeholder in ORIGINAL_PLACEHOLDERS {
            if let Some(id) = link.strip_prefix(placeholder) {
                let scheme = if self.is_tls() { "https" } else { "http" };
                return format!("{scheme}://{}/{id}", self.authority());
            }
        }
        link.to_owned()
    }
}

impl fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_addresses_become_websocket_urls() {
        let cases = [
            ("localhost", "ws://localhost:70/"),
            ("localhost:7070", "ws://localhost:7070/"),
            ("127.0.0.1:70", "ws://127.0.0.1:70/"),
            ("  chat.example.com  ", "ws://chat.example.com:70/"),
            ("[::1]:9000", "ws://[::1]:9000/"),
            ("ws://chat.example.com", "ws://chat.example.com/"),
            (
                "ws://chat.example.com:70/room",
                "ws://chat.example.com:70/room",
            ),
            ("wss://chat.example.com", "wss://chat.example.com/"),
        ];
        for (typed, url) in cases {
            let address = ServerAddress::parse(typed).unwrap();
            assert_eq!(address.as_str(), url, "{typed}");
        }
    }

    #[test]
    fn nonsense_addresses_are_refused_with_a_reason() {
        for typed in [
            "",
            "   ",
            "http://example.com",
            "ws://",
            "host:notaport",
            "a b",
        ] {
            let err = ServerAddress::parse(typed).unwrap_err();
            assert!(
                matches!(err, Error::InvalidAddress { .. }),
                "{typed}: {err}"
            );
        }
    }

    #[test]
    fn original_placeholder_links_point_at_the_server() {
        let plain = ServerAddress::parse("10.0.0.5").unwrap();
        assert_eq!(
            plain.resolve_link("SERVERIPHERE/320886518076"),
            "http://10.0.0.5:70/320886518076"
        );
        assert_eq!(plain.resolve_link("SERVERIP/42"), "http://10.0.0.5:70/42");
        let tls = ServerAddress::parse("wss://chat.example.com").unwrap();
        assert_eq!(
            tls.resolve_link("SERVERIPHERE/abc"),
            "https://chat.example.com:443/abc"
        );
        let full = "http://chat.example.com:70/0123456789abcdef0123456789abcdef";
        assert_eq!(plain.resolve_link(full), full);
    }
}
