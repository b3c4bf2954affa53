//! What outbound HTTP calls (webhooks, channels, Prometheus, the CLI's client) share: a leaf.
//!
//! A receiver is somebody else's server, so every call out is made as if it were hostile:
//! redirects are never followed (a 302 to a sign-in page that answers 200 would otherwise
//! count as delivered), answers are read up to a few KB and no further, and receivers (unless
//! their plan says they live there) are never reached on a loopback, private, link-local or
//! cloud-metadata address, whether the URL names one or its name resolves to one.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The most of a receiver's answer that is read (and kept to show an operator).
pub const ANSWER_LIMIT: usize = 4 * 1024;

/// The innermost error: "Connection refused" rather than "error sending request for url
/// (...)", which repeats the whole URL with its query.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// A client for calls to receivers: no redirects, `timeout` per call, and unless
/// `allow_private`, names resolved only to public addresses.
pub fn receiver_client(timeout: Duration, allow_private: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    builder.build().unwrap_or_default()
}

/// A client for calls to servers an operator configured (Prometheus, the CLI's server): no
/// redirects, any address.
pub fn trusted_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Why a URL may not be called: its host is an address literal in a range receivers may not
/// be in. Names are checked when they are resolved (`PublicOnly`).
pub fn refuse_target(url: &str, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let ip = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        Some(url::Host::Domain(name)) if name.eq_ignore_ascii_case("localhost") => {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        _ => return Ok(()),
    };
    match private_range(ip) {
        Some(range) => Err(refusal(ip, range)),
        None => Ok(()),
    }
}

fn refusal(ip: IpAddr, range: &str) -> String {
    format!(
        "refused to call {ip}, a {range} address: set allow_private = true on the receiver in the plan if it lives there"
    )
}

/// The kind of range `ip` is in, if receivers must not be called there without leave.
pub fn private_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return private_v4(v4);
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if first & 0xfe00 == 0xfc00 {
                // Unique local (fd00:ec2::254 is a cloud's metadata service).
                Some("private")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if v6.segments()[..6] == [0, 0, 0, 0, 0, 0] {
                // IPv4-compatible (deprecated): the v4 address inside decides.
                let [a, b] = v6.segments()[6..] else {
                    return None;
                };
                private_v4(Ipv4Addr::from((u32::from(a) << 16) | u32::from(b)))
            } else if v6.segments()[..2] == [0x64, 0xff9b] {
                // NAT64: the v4 address inside decides.
                let [a, b] = v6.segments()[6..] else {
                    return None;
                };
                private_v4(Ipv4Addr::from((u32::from(a) << 16) | u32::from(b)))
            } else {
                None
            }
        }
    }
}

fn private_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_link_local() {
        // 169.254.169.254 is every large cloud's metadata service.
        Some("link-local or metadata")
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        Some("private")
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some("broadcast, multicast or reserved")
    } else {
        None
    }
}

/// Resolves names as the system does, then drops every address a receiver may not be at;
/// a name with none left fails to resolve, with the reason.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| private_range(a.ip()).is_none())
                .collect();
            if allowed.is_empty() {
                let why = match found.first() {
                    Some(a) => refusal(a.ip(), private_range(a.ip()).unwrap_or("private")),
                    None => format!("{host} has no address"),
                };
                return Err(why.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// A whole answer of at most `limit` bytes, or an error naming the limit: for servers whose
/// answers are data (Prometheus), where a cut answer is no answer.
pub async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("the answer is over {limit} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| root_cause(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(format!("the answer is over {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A receiver's answer as far as it is read: its status, and at most `ANSWER_LIMIT` bytes of
/// its body as text.
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub text: String,
    /// Where a redirect pointed (it is never followed).
    pub location: Option<String>,
}

impl Answer {
    /// Reads `response` up to `ANSWER_LIMIT` bytes and drops the rest unread (the connection
    /// is closed rather than drained).
    pub async fn read(mut response: reqwest::Response) -> Answer {
        let status = response.status();
        let location = response.headers().get(reqwest::header::LOCATION).map(|l| {
            String::from_utf8_lossy(l.as_bytes())
                .chars()
                .take(300)
                .collect()
        });
        let mut body = Vec::new();
        while body.len() < ANSWER_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = ANSWER_LIMIT - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        Answer {
            status,
            text: String::from_utf8_lossy(&body).trim().to_string(),
            location,
        }
    }

    /// Why the answer is not an acknowledgement, or `None` if it is one (a 2xx). A redirect
    /// is a failure that says where it pointed.
    pub fn failure(&self, who: &str) -> Option<String> {
        if self.status.is_success() {
            None
        } else if self.status.is_redirection() {
            Some(format!(
                "{who} answered {} redirecting to {} (redirects are not followed)",
                self.status,
                self.location.as_deref().unwrap_or("nowhere")
            ))
        } else {
            Some(format!("{who} answered {}", self.status))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn private_ranges_are_named_and_public_ones_pass() {
        let cases = [
            ("127.0.0.1", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("192.168.1.1", Some("private")),
            ("100.64.0.1", Some("private")),
            ("169.254.169.254", Some("link-local or metadata")),
            ("0.0.0.0", Some("unspecified")),
            ("::1", Some("loopback")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:169.254.169.254", Some("link-local or metadata")),
            ("64:ff9b::a00:1", Some("private")),
            ("fd00:ec2::254", Some("private")),
            ("fe80::1", Some("link-local")),
            ("8.8.8.8", None),
            ("2001:4860:4860::8888", None),
            ("100.128.0.1", None),
        ];
        for (text, range) in cases {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(private_range(ip), range, "{text}");
        }
    }

    #[test]
    fn address_literals_and_localhost_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9/hook",
            "http://[::1]/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://localhost:8080/",
            "http://[::ffff:10.0.0.1]/",
        ] {
            let refused = refuse_target(url, false).unwrap_err();
            assert!(refused.contains("allow_private"), "{url}: {refused}");
            assert_eq!(refuse_target(url, true), Ok(()), "{url}");
        }
        assert_eq!(refuse_target("https://hooks.example.com/x", false), Ok(()));
    }

    #[test]
    fn v6_forms_of_v4_decide_by_the_v4_address() {
        let ip = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(private_range(ip), Some("private"));
        let compatible = IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0x7f00, 1));
        assert_eq!(private_range(compatible), Some("loopback"));
    }
}
