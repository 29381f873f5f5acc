//! Where a webhook may be sent: the target URL as a parsed value, and the guard against
//! server-side request forgery — a subscriber must not make the service reach its own
//! loopback, the private network it runs in, or the cloud's metadata address, unless the
//! operator allows those ranges (`--webhook-allow-private`).

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reqwest::Url;
use thiserror::Error;

use crate::domain::values::quote;

/// Longest target URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// Why a target is refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TargetError {
    /// The URL itself is unusable: the field and what is wrong.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// Every address the host resolves to is one webhooks may not reach.
    #[error("{host} resolves only to addresses a webhook may not reach ({address} is {reason})")]
    Refused { host: String, address: IpAddr, reason: &'static str },
    /// The host does not resolve now.
    #[error("{host} does not resolve: {message}")]
    Unresolvable { host: String, message: String },
}

/// A webhook target URL: http or https, a host, no user info, no fragment, at most 2048 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetUrl(Url);

impl TargetUrl {
    /// Reads a target URL; `field` names the input in errors, which quote at most a prefix.
    pub fn parse(field: &str, text: &str) -> Result<TargetUrl, TargetError> {
        let invalid = |message: String| TargetError::Invalid { field: field.to_owned(), message };
        if text.len() > MAX_URL_BYTES {
            return Err(invalid(format!(
                "a webhook URL is at most {MAX_URL_BYTES} bytes, not {} ({})",
                text.len(),
                quote(text)
            )));
        }
        let url = Url::parse(text).map_err(|error| invalid(format!("{} is not a URL: {error}", quote(text))))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!("a webhook URL is http or https, not {}", quote(url.scheme()))));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid(format!("{} names no host", quote(text))));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // The credentials are not quoted: they are what must not leak into a log.
            return Err(invalid("a webhook URL carries no user name or password".to_owned()));
        }
        if url.fragment().is_some() {
            return Err(invalid(format!("{} has a fragment (#…), which is never sent", quote(text))));
        }
        Ok(TargetUrl(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host as written in the URL (an IPv6 address in brackets).
    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    /// The host as an address when the URL names one literally.
    pub fn literal_ip(&self) -> Option<IpAddr> {
        // The URL parser has already normalised every IPv4 spelling (`2130706433`,
        // `0x7f.1`) to dotted decimal and put IPv6 in brackets.
        self.host().trim_start_matches('[').trim_end_matches(']').parse().ok()
    }

    /// The port, explicit or the scheme's.
    pub fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(if self.0.scheme() == "https" { 443 } else { 80 })
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Address ranges a target may resolve to although private (`--webhook-allow-private CIDR,...`).
#[derive(Clone, Debug, Default)]
pub struct PrivateAllowed(Vec<IpNet>);

impl PrivateAllowed {
    /// Reads CIDR ranges (`10.0.0.0/8`, `fd00::/8`) or single addresses, given as separate
    /// items or comma-separated in one.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for item in list.iter().flat_map(|item| item.split(',')).map(str::trim).filter(|item| !item.is_empty()) {
            let range = match item.parse::<IpNet>() {
                Ok(range) => range.trunc(),
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => {
                        return Err(format!(
                            "--webhook-allow-private: {} is not an address range such as 10.0.0.0/8 or fd00::/8",
                            quote(item)
                        ));
                    }
                },
            };
            ranges.push(range);
        }
        Ok(PrivateAllowed(ranges))
    }

    /// Everything allowed: 0.0.0.0/0 and ::/0 (tests, or a deployment whose network is
    /// guarded elsewhere).
    pub fn any() -> Self {
        PrivateAllowed(vec![
            IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::UNSPECIFIED, 0)),
            IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 0)),
        ])
    }

    pub fn ranges(&self) -> &[IpNet] {
        &self.0
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(&ip))
    }
}

/// Why an address is refused: loopback, private (RFC 1918), CGNAT 100.64/10, link-local (169.254/16 —
/// cloud metadata), unique-local fc00::/7, link-local fe80::/10, unspecified, multicast, broadcast,
/// IPv4-mapped/compatible IPv6 forms of those (::ffff:127.0.0.1), NAT64 of those if simple; None: allowed.
///
/// An allowed range admits the address as written and, for an IPv6 form that embeds an
/// IPv4 address, the embedded address too (127.0.0.0/8 allows ::ffff:127.0.0.1).
pub fn refusal(ip: IpAddr, allowed: &PrivateAllowed) -> Option<&'static str> {
    if allowed.contains(ip) {
        return None;
    }
    match ip {
        IpAddr::V4(ip) => ipv4_refusal(ip),
        IpAddr::V6(ip) => match embedded_ipv4(ip) {
            Some(inner) if allowed.contains(IpAddr::V4(inner)) => None,
            Some(inner) => ipv4_refusal(inner),
            None => ipv6_refusal(ip),
        },
    }
}

/// The ranges refused for IPv4, with the reason each gives.
const IPV4_REFUSED: &[(Ipv4Net, &str)] = &[
    (Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8), "unspecified (this network)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8), "loopback"),
    (Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8), "private (RFC 1918)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12), "private (RFC 1918)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16), "private (RFC 1918)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10), "shared address space (carrier-grade NAT)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16), "link-local (cloud metadata)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 0, 0), 24), "IETF protocol assignments"),
    (Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15), "benchmarking"),
    (Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4), "multicast"),
    (Ipv4Net::new_assert(Ipv4Addr::new(255, 255, 255, 255), 32), "broadcast"),
    (Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4), "reserved"),
];

/// The ranges refused for IPv6 (the forms embedding IPv4 are judged by their IPv4 address).
const IPV6_REFUSED: &[(Ipv6Net, &str)] = &[
    (Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 128), "unspecified"),
    (Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128), "loopback"),
    (Ipv6Net::new_assert(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), "unique-local"),
    (Ipv6Net::new_assert(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), "link-local"),
    (Ipv6Net::new_assert(Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), "site-local"),
    (Ipv6Net::new_assert(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8), "multicast"),
    (Ipv6Net::new_assert(Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), "local-use NAT64"),
    (Ipv6Net::new_assert(Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64), "discard-only"),
];

fn ipv4_refusal(ip: Ipv4Addr) -> Option<&'static str> {
    IPV4_REFUSED.iter().find(|(range, _)| range.contains(&ip)).map(|(_, reason)| *reason)
}

fn ipv6_refusal(ip: Ipv6Addr) -> Option<&'static str> {
    IPV6_REFUSED.iter().find(|(range, _)| range.contains(&ip)).map(|(_, reason)| *reason)
}

/// The IPv4 address inside an IPv6 form that reaches it: IPv4-mapped (::ffff:a.b.c.d),
/// IPv4-compatible (::a.b.c.d, deprecated but still routed by some stacks), the
/// well-known NAT64 prefix 64:ff9b::/96 and 6to4 (2002:AABB:CCDD::/48).
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let segments = ip.segments();
    let octets = ip.octets();
    let last_32 = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
    if ip.is_unspecified() || ip.is_loopback() {
        return None;
    }
    match segments {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => Some(last_32),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last_32),
        [0x2002, _, _, ..] => Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5])),
        _ => None,
    }
}

/// Resolves the URL's host now and refuses it when every address is refused (for the API's immediate
/// answer when a subscription is created; the sender checks again at every connection).
pub async fn check(url: &TargetUrl, allowed: &PrivateAllowed) -> Result<(), TargetError> {
    let addresses: Vec<IpAddr> = match url.literal_ip() {
        Some(ip) => vec![ip],
        None => tokio::net::lookup_host((url.host(), url.port()))
            .await
            .map_err(|error| TargetError::Unresolvable { host: url.host().to_owned(), message: error.to_string() })?
            .map(|address| address.ip())
            .collect(),
    };
    let mut first_refusal = None;
    for ip in &addresses {
        match refusal(*ip, allowed) {
            None => return Ok(()),
            Some(reason) => {
                first_refusal.get_or_insert((*ip, reason));
            }
        }
    }
    match first_refusal {
        Some((address, reason)) => Err(TargetError::Refused { host: url.host().to_owned(), address, reason }),
        None => Err(TargetError::Unresolvable { host: url.host().to_owned(), message: "no address".to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    fn allowed(ranges: &[&str]) -> PrivateAllowed {
        PrivateAllowed::parse(&ranges.iter().map(|range| (*range).to_owned()).collect::<Vec<_>>()).expect("test ranges")
    }

    #[test]
    fn refusal_table() {
        let none = PrivateAllowed::default();
        let cases: &[(&str, Option<&str>)] = &[
            ("93.184.216.34", None),
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("2606:2800:220:1:248:1893:25c8:1946", None),
            ("2001:4860:4860::8888", None),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("192.169.0.1", None),
            ("127.0.0.1", Some("loopback")),
            ("127.255.255.254", Some("loopback")),
            ("::1", Some("loopback")),
            ("10.0.0.1", Some("private (RFC 1918)")),
            ("172.16.0.1", Some("private (RFC 1918)")),
            ("172.31.255.255", Some("private (RFC 1918)")),
            ("192.168.1.1", Some("private (RFC 1918)")),
            ("100.64.0.1", Some("shared address space (carrier-grade NAT)")),
            ("100.127.255.255", Some("shared address space (carrier-grade NAT)")),
            ("169.254.169.254", Some("link-local (cloud metadata)")),
            ("0.0.0.0", Some("unspecified (this network)")),
            ("0.1.2.3", Some("unspecified (this network)")),
            ("::", Some("unspecified")),
            ("224.0.0.1", Some("multicast")),
            ("239.255.255.250", Some("multicast")),
            ("255.255.255.255", Some("broadcast")),
            ("240.0.0.1", Some("reserved")),
            ("198.18.0.1", Some("benchmarking")),
            ("fc00::1", Some("unique-local")),
            ("fd12:3456::1", Some("unique-local")),
            ("fe80::1", Some("link-local")),
            ("fec0::1", Some("site-local")),
            ("ff02::1", Some("multicast")),
            ("::ffff:10.0.0.1", Some("private (RFC 1918)")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:169.254.169.254", Some("link-local (cloud metadata)")),
            ("::ffff:93.184.216.34", None),
            ("::127.0.0.1", Some("loopback")),
            ("::10.0.0.1", Some("private (RFC 1918)")),
            ("64:ff9b::127.0.0.1", Some("loopback")),
            ("64:ff9b::a9fe:a9fe", Some("link-local (cloud metadata)")),
            ("64:ff9b::93.184.216.34", None),
            ("64:ff9b:1::1", Some("local-use NAT64")),
            ("2002:7f00:1::1", Some("loopback")),
            ("2002:c0a8:101::1", Some("private (RFC 1918)")),
            ("2002:5db8:d822::1", None),
        ];
        for (address, expected) in cases {
            assert_eq!(refusal(ip(address), &none), *expected, "{address}");
        }
    }

    #[test]
    fn allowed_ranges_admit_their_addresses_and_the_ipv6_forms_of_them() {
        let loopback = allowed(&["127.0.0.0/8"]);
        assert_eq!(refusal(ip("127.0.0.1"), &loopback), None);
        assert_eq!(refusal(ip("::ffff:127.0.0.1"), &loopback), None);
        assert_eq!(refusal(ip("::1"), &loopback), Some("loopback"));
        assert_eq!(refusal(ip("10.0.0.1"), &loopback), Some("private (RFC 1918)"));

        let several = allowed(&["10.1.0.0/16, fd00::/8", "192.168.5.7", "::1"]);
        assert_eq!(refusal(ip("10.1.2.3"), &several), None);
        assert_eq!(refusal(ip("10.2.0.1"), &several), Some("private (RFC 1918)"));
        assert_eq!(refusal(ip("fd00::5"), &several), None);
        assert_eq!(refusal(ip("192.168.5.7"), &several), None);
        assert_eq!(refusal(ip("192.168.5.8"), &several), Some("private (RFC 1918)"));
        assert_eq!(refusal(ip("::1"), &several), None);

        let any = PrivateAllowed::any();
        for address in ["127.0.0.1", "::1", "169.254.169.254", "fe80::1", "::ffff:10.0.0.1", "93.184.216.34"] {
            assert_eq!(refusal(ip(address), &any), None, "{address}");
        }
    }

    #[test]
    fn allowed_ranges_that_are_not_ranges_are_refused_with_a_short_quote() {
        assert!(PrivateAllowed::parse(&[]).expect("empty").ranges().is_empty());
        let error = PrivateAllowed::parse(&["10.0.0.0/8,private".to_owned()]).expect_err("a word");
        assert!(error.starts_with("--webhook-allow-private: \"private\""), "{error}");
        let error = PrivateAllowed::parse(&["10.0.0.0/33".to_owned()]).expect_err("prefix too long");
        assert!(error.contains("\"10.0.0.0/33\""), "{error}");
        let error = PrivateAllowed::parse(&["9".repeat(5000)]).expect_err("long");
        assert!(error.len() < 200, "{error}");
    }

    #[test]
    fn good_urls_parse() {
        for text in [
            "https://hooks.example.com/accord",
            "http://example.com:8080/in?token=abc",
            "https://[2001:db8::1]/x",
            "http://127.0.0.1:3000/",
        ] {
            let url = TargetUrl::parse("url", text).expect(text);
            assert_eq!(url.as_str().trim_end_matches('/'), text.trim_end_matches('/'));
        }
        let url = TargetUrl::parse("url", "https://Hooks.Example.com/a").expect("parses");
        assert_eq!(url.host(), "hooks.example.com");
        assert_eq!(url.port(), 443);
        assert_eq!(url.literal_ip(), None);
        assert_eq!(url.to_string(), "https://hooks.example.com/a");
        let url = TargetUrl::parse("url", "http://[::1]:81/").expect("parses");
        assert_eq!(url.host(), "[::1]");
        assert_eq!(url.literal_ip(), Some(ip("::1")));
        assert_eq!(url.port(), 81);
    }

    fn invalid_message(text: &str) -> String {
        match TargetUrl::parse("target_url", text) {
            Err(TargetError::Invalid { field, message }) => {
                assert_eq!(field, "target_url");
                message
            }
            other => panic!("{text:?} gave {other:?}"),
        }
    }

    #[test]
    fn bad_urls_get_errors_naming_the_field() {
        assert!(invalid_message("ftp://example.com/x").contains("http or https, not \"ftp\""));
        assert!(invalid_message("file:///etc/passwd").contains("not \"file\""));
        assert!(invalid_message("not a url").contains("is not a URL"));
        assert!(invalid_message("http://").contains("is not a URL"));
        assert!(invalid_message("").contains("is not a URL"));
        assert!(invalid_message("mailto:someone@example.com").contains("not \"mailto\""));
        assert!(invalid_message("https://example.com/#top").contains("fragment"));

        let credentials = invalid_message("https://user:hunter2@example.com/");
        assert!(credentials.contains("no user name or password"));
        assert!(!credentials.contains("hunter2"), "{credentials}");
        assert!(invalid_message("https://user@example.com/").contains("no user name"));
    }

    #[test]
    fn a_3000_byte_url_is_quoted_only_as_a_prefix() {
        let text = format!("https://example.com/{}", "a".repeat(3000 - 20));
        assert_eq!(text.len(), 3000);
        let message = invalid_message(&text);
        assert!(message.contains("at most 2048 bytes, not 3000"), "{message}");
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("\"https://example.com/aaaa"), "{message}");

        let at_limit = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES - 20));
        assert!(TargetUrl::parse("url", &at_limit).is_ok());
    }

    #[tokio::test]
    async fn check_refuses_private_hosts_and_allows_them_when_configured() {
        let loopback = TargetUrl::parse("url", "http://127.0.0.1:9/").expect("parses");
        assert!(matches!(
            check(&loopback, &PrivateAllowed::default()).await,
            Err(TargetError::Refused { reason: "loopback", .. })
        ));
        check(&loopback, &allowed(&["127.0.0.0/8"])).await.expect("allowed");

        let metadata = TargetUrl::parse("url", "http://169.254.169.254/latest/meta-data/").expect("parses");
        let error = check(&metadata, &PrivateAllowed::default()).await.expect_err("metadata refused");
        assert!(error.to_string().contains("169.254.169.254 is link-local"), "{error}");

        let named = TargetUrl::parse("url", "http://localhost:9/").expect("parses");
        assert!(matches!(check(&named, &PrivateAllowed::default()).await, Err(TargetError::Refused { .. })));
        check(&named, &PrivateAllowed::any()).await.expect("allowed");

        let public = TargetUrl::parse("url", "http://93.184.216.34/").expect("parses");
        check(&public, &PrivateAllowed::default()).await.expect("a public literal address");
    }

    #[tokio::test]
    async fn check_reports_a_host_that_does_not_resolve() {
        let nowhere = TargetUrl::parse("url", "http://does-not-exist.invalid/").expect("parses");
        assert!(matches!(check(&nowhere, &PrivateAllowed::default()).await, Err(TargetError::Unresolvable { .. })));
    }
}
