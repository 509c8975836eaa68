//! Reverse proxies: which peers are trusted to say who the client is, and what they say.
//!
//! Behind a proxy on the same host (nginx, HAProxy), every connection comes from the proxy's
//! address. Unless the server knows that address is a proxy, every per-address limit becomes
//! one budget that all clients share, logs name the proxy, and loopback-only endpoints answer
//! whoever the proxy lets in. With `trusted_proxies` set, a request whose peer is one of them is
//! *proxied*:
//!
//! - its client is the rightmost address in `X-Forwarded-For` that is not itself a trusted
//!   proxy (each proxy appends the address it was connected from; anything to the left of the
//!   first untrusted hop was written by the client and is ignored);
//! - `X-Forwarded-Proto` and `X-Forwarded-Host` say how the client reached the proxy (for the
//!   `authmsg` link and the same-origin check);
//! - `/_status` and key-less `/metrics` are never served to it.
//!
//! From any other peer, forwarded headers are ignored.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// One entry of `trusted_proxies`: an address (`127.0.0.1`) or a CIDR range (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(IpNet);

impl Cidr {
    /// Whether `ip` is in the range. IPv4-mapped IPv6 addresses count as their IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        text.parse::<IpAddr>()
            .map(|ip| Cidr(IpNet::from(ip)))
            .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Cidr, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Who sent a request, as far as the server can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client's address: the TCP peer's, or for a proxied request the one its proxies
    /// forwarded (with the proxy's port, the client's being unknown).
    pub addr: SocketAddr,
    /// Whether the request came through a trusted proxy.
    pub proxied: bool,
}

impl Client {
    /// The client of a request from `peer` carrying `headers`, given the `trusted` proxies.
    pub fn of(peer: SocketAddr, headers: &HeaderMap, trusted: &[Cidr]) -> Client {
        if !is_trusted(peer.ip(), trusted) {
            return Client {
                addr: peer,
                proxied: false,
            };
        }
        let ip = forwarded_for(headers, trusted).unwrap_or(peer.ip());
        Client {
            addr: SocketAddr::new(ip, peer.port()),
            proxied: true,
        }
    }
}

/// Whether `ip` is one of the `trusted` proxies.
pub fn is_trusted(ip: IpAddr, trusted: &[Cidr]) -> bool {
    trusted.iter().any(|cidr| cidr.contains(ip))
}

/// The rightmost address of `X-Forwarded-For` (all its headers, in order) that is not a trusted
/// proxy. `None` when there is no such header, or when a hop written by a trusted proxy is not
/// an address (a misconfigured proxy: the request is then taken to be the proxy's own).
fn forwarded_for(headers: &HeaderMap, trusted: &[Cidr]) -> Option<IpAddr> {
    // Read as bytes: a header with one byte that is not ASCII (which a client can put in the
    // part it writes) must not hide the hops the proxies appended after it.
    let hops: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    let mut last_trusted = None;
    for hop in hops.iter().rev() {
        let ip = parse_hop(hop)?;
        if !is_trusted(ip, trusted) {
            return Some(canonical(ip));
        }
        last_trusted = Some(canonical(ip));
    }
    // Every hop is a proxy: the leftmost is the nearest thing to a client.
    last_trusted
}

/// One `X-Forwarded-For` entry: an address, maybe with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let hop = std::str::from_utf8(hop).ok()?;
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

/// `::ffff:a.b.c.d` as `a.b.c.d`, so that one address has one form.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The scheme and host the client used to reach the server, from a trusted proxy's
/// `X-Forwarded-Proto` and `X-Forwarded-Host` (first values), each `None` when not given.
pub fn forwarded_origin(headers: &HeaderMap) -> (Option<&str>, Option<&str>) {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .map(str::trim)
            .filter(|value| !value.is_empty())
    };
    let proto = first("x-forwarded-proto").filter(|p| matches!(*p, "http" | "https"));
    (proto, first("x-forwarded-host"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in xff {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn client(peer: &str, xff: &[&str], list: &[&str]) -> Client {
        Client::of(peer.parse().unwrap(), &headers(xff), &trusted(list))
    }

    #[test]
    fn cidrs_parse_addresses_and_ranges() {
        let ten = "10.0.0.0/8".parse::<Cidr>().unwrap();
        assert!(ten.contains("10.1.2.3".parse().unwrap()));
        assert!(!ten.contains("11.0.0.1".parse().unwrap()));
        let one = "127.0.0.1".parse::<Cidr>().unwrap();
        assert!(one.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(
            "10.1.2.3/8"
                .parse::<Cidr>()
                .unwrap()
                .contains("10.9.9.9".parse().unwrap())
        );
        assert!("::1".parse::<Cidr>().is_ok());
        assert!("nginx".parse::<Cidr>().is_err());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let proxies = ["127.0.0.1", "10.0.0.0/8"];
        let c = client("127.0.0.1:9", &["6.6.6.6, 1.2.3.4, 10.0.0.7"], &proxies);
        assert_eq!(c.addr, "1.2.3.4:9".parse().unwrap());
        assert!(c.proxied);
        let c = client("127.0.0.1:9", &["6.6.6.6", "1.2.3.4"], &proxies);
        assert_eq!(
            c.addr.ip(),
            "1.2.3.4".parse::<IpAddr>().unwrap(),
            "headers in order"
        );
        let c = client("127.0.0.1:9", &["[2001:db8::1]:443"], &proxies);
        assert_eq!(c.addr.ip(), "2001:db8::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn forwarded_headers_from_others_are_ignored() {
        let c = client("9.9.9.9:5", &["1.2.3.4"], &["127.0.0.1"]);
        assert_eq!(c.addr, "9.9.9.9:5".parse().unwrap());
        assert!(!c.proxied);
        let c = client("127.0.0.1:5", &["1.2.3.4"], &[]);
        assert!(!c.proxied, "no trusted proxies: nothing is forwarded");
    }

    #[test]
    fn a_proxy_without_a_usable_header_is_its_own_client() {
        let proxies = ["127.0.0.1"];
        let c = client("127.0.0.1:5", &[], &proxies);
        assert_eq!(
            (c.addr.ip().to_string(), c.proxied),
            ("127.0.0.1".into(), true)
        );
        let c = client("127.0.0.1:5", &["1.2.3.4, garbage"], &proxies);
        assert_eq!(c.addr.ip().to_string(), "127.0.0.1");
        let c = client("127.0.0.1:5", &["127.0.0.1"], &proxies);
        assert_eq!(c.addr.ip().to_string(), "127.0.0.1");
    }

    #[test]
    fn a_byte_that_is_not_ascii_hides_no_hop() {
        let mut headers = HeaderMap::new();
        let value = axum::http::HeaderValue::from_bytes(b"\xc3\xa9, 203.0.113.9").unwrap();
        headers.append("x-forwarded-for", value);
        let c = Client::of(
            "127.0.0.1:5".parse().unwrap(),
            &headers,
            &trusted(&["127.0.0.1"]),
        );
        assert_eq!(c.addr.ip().to_string(), "203.0.113.9");
    }

    #[test]
    fn forwarded_origin_takes_known_schemes_only() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        headers.insert("x-forwarded-host", "chat.example.com".parse().unwrap());
        assert_eq!(
            forwarded_origin(&headers),
            (Some("https"), Some("chat.example.com"))
        );
        headers.insert("x-forwarded-proto", "javascript".parse().unwrap());
        assert_eq!(forwarded_origin(&headers).0, None);
    }
}
