//! Which web pages may open a WebSocket to the server.
//!
//! Browsers send `Origin` with every WebSocket upgrade and let any page open a socket to any
//! server: without a check, a page on another site could log a visitor's browser in, or use it
//! to send frames from the visitor's address. An upgrade that carries `Origin` is accepted only
//! from the server's own origin (the host the request was addressed to, or `public_url`'s) and
//! from the config's `allowed_origins`. Clients that send no `Origin` (terminal clients, bots)
//! are not browsers, and are not affected.

/// Whether an upgrade from `origin` may proceed, for a request addressed to `host` (its `Host`,
/// or a trusted proxy's `X-Forwarded-Host`), on a server whose `authmsg` links start with
/// `public_url` and which allows `allowed` besides.
pub fn allowed(
    origin: Option<&str>,
    host: Option<&str>,
    public_url: Option<&str>,
    allowed: &[String],
) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let Some((scheme, authority)) = origin.split_once("://") else {
        // `null` (a sandboxed or local page) and anything else that is not an origin.
        return false;
    };
    let same_host = |other: &str| {
        normalize(scheme, authority) == normalize(scheme, &other.to_ascii_lowercase())
    };
    host.is_some_and(same_host)
        || public_url
            .and_then(|url| url.split_once("://"))
            .is_some_and(|(_, rest)| same_host(rest.trim_end_matches('/')))
        || allowed
            .iter()
            .any(|listed| listed.trim_end_matches('/').eq_ignore_ascii_case(&origin))
}

/// `authority` without the default port of `scheme`, so that `host` and `host:80` compare
/// equal for `http` (and `:443` for `https`).
fn normalize<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = match scheme {
        "http" | "ws" => ":80",
        "https" | "wss" => ":443",
        _ => return authority,
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

/// Whether `text` is an origin as `allowed_origins` lists them: `http://` or `https://` and a
/// host (with a port, maybe), nothing after.
pub fn is_origin(text: &str) -> bool {
    let Some(rest) = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
    else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    !rest.is_empty() && !rest.contains(['/', '?', '#', '@']) && !rest.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_without_an_origin_are_not_browsers() {
        assert!(allowed(None, Some("localhost:70"), None, &[]));
    }

    #[test]
    fn the_servers_own_origin_is_allowed() {
        let host = Some("LocalHost:7070");
        assert!(allowed(Some("http://localhost:7070"), host, None, &[]));
        assert!(allowed(
            Some("https://chat.example.com"),
            Some("chat.example.com:443"),
            None,
            &[]
        ));
        assert!(allowed(
            Some("https://chat.example.com"),
            Some("10.0.0.5:70"),
            Some("https://chat.example.com/"),
            &[]
        ));
    }

    #[test]
    fn other_sites_are_refused_unless_listed() {
        let host = Some("localhost:7070");
        assert!(!allowed(Some("https://evil.example"), host, None, &[]));
        assert!(!allowed(Some("http://localhost:7071"), host, None, &[]));
        assert!(!allowed(Some("null"), host, None, &[]));
        assert!(!allowed(
            Some("http://localhost:7070.evil.example"),
            host,
            None,
            &[]
        ));
        let listed = ["https://friends.example".to_owned()];
        assert!(allowed(
            Some("https://friends.example"),
            host,
            None,
            &listed
        ));
        assert!(!allowed(
            Some("http://friends.example"),
            host,
            None,
            &listed
        ));
    }

    #[test]
    fn listed_origins_are_checked_for_shape() {
        assert!(is_origin("https://chat.example.com"));
        assert!(is_origin("http://localhost:7070/"));
        assert!(!is_origin("chat.example.com"));
        assert!(!is_origin("https://chat.example.com/path"));
        assert!(!is_origin("https://"));
    }
}
