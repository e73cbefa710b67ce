//! Which addresses the browser may reach.
//!
//! Loopback, private, link-local (cloud metadata included), CGNAT, multicast and other
//! non-public addresses are refused after DNS resolution, by the resolver the HTTP client
//! connects with, so a name that resolves differently a second time (DNS rebinding) is checked
//! on the address actually used. A user may allow a host by name or address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why an address is not public, or `None` when it is.
pub fn non_public_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (127, _, _) => "a loopback address",
        (10, _, _) => "a private address",
        (172, 16..=31, _) => "a private address",
        (192, 168, _) => "a private address",
        (169, 254, _) => "a link-local address (cloud metadata lives here)",
        (100, 64..=127, _) => "a carrier-grade NAT address",
        (0, _, _) => "an unspecified address",
        (192, 0, 0) => "an IETF protocol address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18..=19, _) => "a benchmarking address",
        (224..=239, _, _) => "a multicast address",
        (240..=255, _, _) => "a reserved address",
        _ => return None,
    })
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_reason(v4);
    }
    let seg = ip.segments();
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    let v4 = |high: u16, low: u16| {
        Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)
    };
    // NAT64 (64:ff9b::/96), IPv4-compatible (::a.b.c.d) and IPv4-translated (::ffff:0:a.b.c.d)
    // addresses embed an IPv4 address in their last 32 bits.
    let translated = seg[..4] == [0; 4] && seg[4] == 0xffff && seg[5] == 0;
    if (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0; 4])
        || seg[..6] == [0; 6]
        || translated
    {
        return v4_reason(v4(seg[6], seg[7])).or(Some("an address that embeds an IPv4 address"));
    }
    // Local-use NAT64 (64:ff9b:1::/48) reaches a private network's IPv4 hosts by design.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1 {
        return Some("a local-use NAT64 address");
    }
    // 6to4 (2002::/16) embeds its IPv4 address in bits 16-47.
    if seg[0] == 0x2002 {
        return v4_reason(v4(seg[1], seg[2])).or(Some("an address that embeds an IPv4 address"));
    }
    Some(match seg[0] {
        // Teredo (2001::/32) carries an obfuscated IPv4 address of any kind.
        0x2001 if seg[1] == 0 => "a Teredo address",
        s if s & 0xfe00 == 0xfc00 => "a unique-local (private) address",
        s if s & 0xffc0 == 0xfe80 => "a link-local address",
        s if s & 0xffc0 == 0xfec0 => "a site-local address",
        s if s & 0xff00 == 0xff00 => "a multicast address",
        0x2001 if seg[1] == 0x0db8 => "a documentation address",
        _ => return None,
    })
}

/// The hosts the user allowed despite non-public addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPolicy {
    allowed: Vec<String>,
}

impl HostPolicy {
    /// Allows each of `hosts` (names or addresses, case-insensitive).
    pub fn allowing<I: IntoIterator<Item = S>, S: AsRef<str>>(hosts: I) -> Self {
        HostPolicy {
            allowed: hosts
                .into_iter()
                .map(|h| normalize_host(h.as_ref()))
                .collect(),
        }
    }

    /// Whether the user allowed `host`.
    pub fn is_allowed(&self, host: &str) -> bool {
        let host = normalize_host(host);
        self.allowed.contains(&host)
    }

    /// Checks one address that `host` resolved to (or is).
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        if self.is_allowed(host) || self.is_allowed(&ip.to_string()) {
            return Ok(());
        }
        match non_public_reason(ip) {
            None => Ok(()),
            Some(reason) => Err(Refused {
                host: host.to_owned(),
                ip,
                reason,
            }),
        }
    }
}

fn normalize_host(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// A refused address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The host name or address in the URL.
    pub host: String,
    /// The address it resolved to.
    pub ip: IpAddr,
    /// What kind of address it is.
    pub reason: &'static str,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused to connect to {}", self.host)?;
        if normalize_host(&self.host) != self.ip.to_string() {
            write!(f, " ({})", self.ip)?;
        }
        write!(
            f,
            ": it is {}; the browser only visits public addresses unless the user allows the host with --allow-host {}",
            self.reason, self.host
        )
    }
}

impl std::error::Error for Refused {}

/// A DNS resolver that drops refused addresses and fails when none is left.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<HostPolicy>,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<HostPolicy>) -> Self {
        GuardedResolver { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut allowed = Vec::new();
            let mut first_refusal = None;
            for addr in addrs {
                match policy.check(&host, addr.ip()) {
                    Ok(()) => allowed.push(addr),
                    Err(refused) => {
                        first_refusal.get_or_insert(refused);
                    }
                }
            }
            match (allowed.is_empty(), first_refusal) {
                (true, Some(refused)) => Err(Box::new(refused) as _),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classes() {
        let refused = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "ff02::1",
            "::ffff:0:127.0.0.1",
            "::ffff:0:a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            "2002:c0a8:101::5",
            "64:ff9b:1::a00:1",
            "64:ff9b:1:ffff::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2002:808:808::1",
        ];
        for ip in refused {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(non_public_reason(ip).is_some(), "{ip} should be refused");
        }
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
        ];
        for ip in public {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(non_public_reason(ip), None, "{ip} is public");
        }
    }

    #[test]
    fn allowed_hosts_pass() {
        let policy = HostPolicy::allowing(["LocalHost", "127.0.0.1"]);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(policy.check("localhost", lo).is_ok());
        assert!(
            policy.check("evil.example", lo).is_ok(),
            "allowed by address"
        );
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        let err = policy.check("evil.example", other).unwrap_err();
        assert!(err.to_string().contains("private address"));
        assert!(err.to_string().contains("--allow-host evil.example"));
    }
}
