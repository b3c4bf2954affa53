//! Who is on the other end of a connection: the socket's peer, or, when that peer is a proxy
//! the operator named (`--trusted-proxy`), the client it says it forwards for. Forwarding
//! headers from anyone else are ignored: a client cannot name itself another address to slip
//! past the per-address caps.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The socket peer of the connection a request came on (set by the accept loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    /// Parses `10.0.0.0/8`, `127.0.0.1` or `::1` (a bare address is itself alone).
    pub fn parse(items: &[String]) -> Result<TrustedProxies, String> {
        items
            .iter()
            .map(|text| {
                let text = text.trim();
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("trusted proxy \"{text}\": an address or a CIDR range (10.0.0.0/8)")
                    })
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client a request came from: the peer, unless the peer is a trusted proxy, then the
    /// nearest address in its forwarding chain that is not itself a trusted proxy (each proxy
    /// appends the address it heard from, so the right-most untrusted one is the first that
    /// a trusted hop vouches for). `Forwarded` wins over `X-Forwarded-For`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let chain = forwarded(headers).unwrap_or_else(|| x_forwarded_for(headers));
        chain
            .into_iter()
            .rev()
            .map(canonical)
            .find(|ip| !self.trusts(*ip))
            .unwrap_or(peer)
    }
}

/// IPv4-mapped IPv6 (`::ffff:10.0.0.1`) as IPv4, so one client is one key however its
/// address was written.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The key a client's address is counted under: IPv4 alone, IPv6 by its /64 (one host is
/// handed a whole /64, and can pick any address in it).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// The `for=` addresses of every `Forwarded` header, in order (RFC 7239); `None` without one.
fn forwarded(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let mut seen = false;
    let mut out = Vec::new();
    for value in headers.get_all("forwarded") {
        seen = true;
        let Ok(value) = value.to_str() else { continue };
        for element in value.split(',') {
            for pair in element.split(';') {
                let Some((key, value)) = pair.trim().split_once('=') else {
                    continue;
                };
                if key.trim().eq_ignore_ascii_case("for")
                    && let Some(ip) = node(value.trim().trim_matches('"'))
                {
                    out.push(ip);
                }
            }
        }
    }
    seen.then_some(out)
}

/// A `Forwarded` node: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:80`.
fn node(text: &str) -> Option<IpAddr> {
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    text.parse()
        .ok()
        .or_else(|| text.rsplit_once(':')?.0.parse().ok())
}

fn x_forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|item| node(item.trim()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarding_headers_are_believed_only_from_trusted_proxies() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()]).unwrap();
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.9")]);
        // From an untrusted peer, the header is the client's own claim: ignored.
        assert_eq!(
            trusted.client(ip("198.51.100.7"), &spoofed),
            ip("198.51.100.7")
        );
        // From the proxy, the client it heard from.
        assert_eq!(trusted.client(ip("10.1.2.3"), &spoofed), ip("203.0.113.9"));
        // A client that sends its own header through the proxy: the proxy appends the real
        // address, and the right-most untrusted one counts.
        let chained = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.9.9.9")]);
        assert_eq!(trusted.client(ip("10.1.2.3"), &chained), ip("203.0.113.9"));
        // Forwarded (RFC 7239), with ports and IPv6 in brackets; it wins over X-Forwarded-For.
        let forwarded = headers(&[
            (
                "forwarded",
                "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"",
            ),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(
            trusted.client(ip("::1"), &forwarded),
            ip("2001:db8:cafe::17")
        );
        // A proxy that forwarded nothing usable: the proxy itself.
        assert_eq!(
            trusted.client(ip("10.1.2.3"), &HeaderMap::new()),
            ip("10.1.2.3")
        );
        // Nobody trusted: the peer, always.
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.1.2.3"), &spoofed), ip("10.1.2.3"));
        assert!(TrustedProxies::parse(&["ten".into()]).is_err());
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_v4_as_v4() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            address_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(address_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(address_key(ip("192.0.2.1")), ip("192.0.2.1"));
    }
}
