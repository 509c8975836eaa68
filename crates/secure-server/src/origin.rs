//! Which web pages may open a WebSocket to the server.
//!
//! Browsers send `Origin` with every WebSocket upgrade and let any page open a socket to any
//! server: without a check, a page on another site could log a visitor's browser in, or use it
//! to send frames from the visitor's address. An upgrade that carries `Origin` is accepted only
//! from the server's own origin (the host the request was addressed to, or `public_url`'s) and
//! from the config's `allowed_origins`. Clients that send no `Origin` (terminal clients, bots)
//! are not browsers, and are not affected.

/// Whether an upgrade from `origin` may proceed, for a request addressed, by the scheme and host
/// in `addressed` (its `Host`, or a trusted proxy's `X-Forwarded-Host` and `-Proto`), to a
/// server whose `authmsg` links start with `public_url` and which allows `allowed` besides.
///
/// The server's own origin is `public_url`'s when it is set; only without it is it the host the
/// request was addressed to, with the same scheme. A page on a name that merely resolves to the
/// server (DNS rebinding) addresses the server by that name, so set `public_url` to rule it out.
pub fn allowed(
    origin: Option<&str>,
    addressed: Option<(&str, &str)>,
    public_url: Option<&str>,
    allowed: &[String],
) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    let Some((scheme, authority)) = origin.split_once("://") else {
        // `null` (a sandboxed or local page) and anything else that is not an origin.
        return false;
    };
    if !matches!(scheme, "http" | "https") {
        return false;
    }
    let same = |other_scheme: &str, other: &str| {
        other_scheme.eq_ignore_ascii_case(scheme)
            && normalize(scheme, authority) == normalize(scheme, &other.to_ascii_lowercase())
    };
    let own = match public_url.and_then(|url| url.split_once("://")) {
        Some((url_scheme, rest)) => same(url_scheme, rest.trim_end_matches('/')),
        None => addressed.is_some_and(|(host_scheme, host)| same(host_scheme, host)),
    };
    own || allowed
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
        assert!(allowed(None, Some(("http", "localhost:70")), None, &[]));
    }

    #[test]
    fn the_servers_own_origin_is_allowed() {
        let host = Some(("http", "LocalHost:7070"));
        assert!(allowed(Some("http://localhost:7070"), host, None, &[]));
        let tls = Some(("https", "chat.example.com:443"));
        assert!(allowed(Some("https://chat.example.com"), tls, None, &[]));
        assert!(allowed(
            Some("https://chat.example.com"),
            Some(("http", "10.0.0.5:70")),
            Some("https://chat.example.com/"),
            &[]
        ));
    }

    #[test]
    fn other_sites_are_refused_unless_listed() {
        let host = Some(("http", "localhost:7070"));
        assert!(!allowed(Some("https://evil.example"), host, None, &[]));
        assert!(!allowed(Some("http://localhost:7071"), host, None, &[]));
        assert!(!allowed(Some("null"), host, None, &[]));
        assert!(!allowed(
            Some("http://localhost:7070.evil.example"),
            host,
            None,
            &[]
        ));
        assert!(
            !allowed(Some("https://localhost:7070"), host, None, &[]),
            "another scheme"
        );
        assert!(!allowed(Some("ws://localhost:7070"), host, None, &[]));
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
    fn with_a_public_url_the_host_header_does_not_decide() {
        // DNS rebinding: a page on a name that resolves to the server addresses it by that name.
        let rebound = Some(("http", "evil.example:7600"));
        let public = Some("http://chat.example.com:7600");
        assert!(allowed(
            Some("http://evil.example:7600"),
            rebound,
            None,
            &[]
        ));
        assert!(!allowed(
            Some("http://evil.example:7600"),
            rebound,
            public,
            &[]
        ));
        assert!(allowed(
            Some("http://chat.example.com:7600"),
            rebound,
            public,
            &[]
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
