//! Who is calling: a front end by its API key (`x-api-key`), or else a
//! client address — the TCP peer's, or, when the peer is a trusted proxy,
//! the address it forwarded (`Forwarded` or `X-Forwarded-For`). IPv6
//! addresses count per /64. The admission layer and the Gate both ask
//! [`Callers::identify`]; keys are kept only as SHA-256 digests, compared
//! in constant time and never logged.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::codegen::http::HeaderMap;

use crate::{config::LimitConfig, error::Error};

/// The header a front end sends its API key in.
pub(crate) const API_KEY_HEADER: &str = "x-api-key";

/// The shortest API key accepted in the config.
const MIN_KEY_CHARS: usize = 16;

/// Who a call is from, as the limits, the audit log and the logs name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Caller {
    /// A front end, by its key's name (never the key).
    Key(Arc<str>),
    /// Anyone else, by address; an IPv6 address cut to its /64.
    Address(IpAddr),
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Key(name) => write!(f, "key:{name}"),
            Caller::Address(IpAddr::V6(ip)) => write!(f, "{ip}/64"),
            Caller::Address(ip) => write!(f, "{ip}"),
        }
    }
}

/// One configured API key.
struct Key {
    name: Arc<str>,
    sha256: [u8; 32],
    rate: f64,
    burst: f64,
}

/// A block of addresses: an address and how many leading bits count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Reads `10.0.0.1`, `10.0.0.0/8`, `fd00::/8` or `::1`.
    pub(crate) fn parse(text: &str) -> Option<Cidr> {
        let text = text.trim();
        let (ip, bits) = match text.split_once('/') {
            Some((ip, bits)) => (ip, Some(bits.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let net = ip.parse::<IpAddr>().ok()?.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { net, bits })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An address as the per-address limit counts it: IPv4 whole, IPv6 by its
/// /64 (one household's phone takes many addresses of its prefix).
pub(crate) fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        v4 => v4,
    }
}

/// Tells callers apart: the configured keys and trusted proxies.
pub(crate) struct Callers {
    keys: Vec<Key>,
    trusted: Vec<Cidr>,
}

impl fmt::Debug for Callers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.keys.iter().map(|k| &*k.name).collect();
        f.debug_struct("Callers")
            .field("keys", &names)
            .field("trusted", &self.trusted)
            .finish()
    }
}

impl Callers {
    /// The keys and proxies of `config`, checked: key names unique and
    /// not empty, keys of 16+ visible ASCII characters, rates and bursts
    /// above zero, proxies IP addresses or CIDR blocks.
    pub(crate) fn new(config: &LimitConfig) -> anyhow::Result<Callers> {
        let mut keys: Vec<Key> = Vec::new();
        for (i, k) in config.api_keys.iter().enumerate() {
            let name = k.name.trim();
            anyhow::ensure!(
                !name.is_empty(),
                "limits.api_keys[{i}]: the name must not be empty"
            );
            anyhow::ensure!(
                keys.iter().all(|seen| &*seen.name != name),
                "limits.api_keys: two keys are named {name:?}; names must be unique"
            );
            anyhow::ensure!(
                k.key.len() >= MIN_KEY_CHARS,
                "limits.api_keys[{name:?}]: the key must be at least {MIN_KEY_CHARS} characters"
            );
            anyhow::ensure!(
                k.key.bytes().all(|b| b.is_ascii_graphic()),
                "limits.api_keys[{name:?}]: the key must be visible ASCII (an HTTP header carries it)"
            );
            anyhow::ensure!(
                k.rate_per_sec.is_finite() && k.rate_per_sec > 0.0,
                "limits.api_keys[{name:?}]: rate_per_sec must be above zero"
            );
            let burst = k.burst.unwrap_or(k.rate_per_sec);
            anyhow::ensure!(
                burst.is_finite() && burst >= 1.0,
                "limits.api_keys[{name:?}]: burst must be at least 1"
            );
            let sha256: [u8; 32] = Sha256::digest(k.key.as_bytes()).into();
            anyhow::ensure!(
                keys.iter().all(|seen| seen.sha256 != sha256),
                "limits.api_keys[{name:?}]: the same key is configured twice"
            );
            keys.push(Key {
                name: name.into(),
                sha256,
                rate: k.rate_per_sec,
                burst: burst.max(1.0),
            });
        }
        let trusted = (config.trusted_proxies.iter())
            .map(|p| {
                Cidr::parse(p).ok_or_else(|| {
                    anyhow::anyhow!(
                        "limits.trusted_proxies: {p:?} is not an IP address or CIDR block"
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Callers { keys, trusted })
    }

    /// Who made a call with these `headers` over a connection from `peer`:
    /// the key's front end when `x-api-key` names a configured key (an
    /// unknown or malformed one is refused), else the client address.
    pub(crate) fn identify(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Caller, Error> {
        if let Some(given) = headers.get(API_KEY_HEADER) {
            return self.key(given.as_bytes()).ok_or_else(|| {
                Error::Unauthenticated(format!(
                    "the {API_KEY_HEADER} header holds no API key this server knows"
                ))
            });
        }
        let peer = peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Ok(Caller::Address(bucket(self.client_address(headers, peer))))
    }

    /// The key's front end; every configured digest is compared, in
    /// constant time, whichever matches.
    fn key(&self, given: &[u8]) -> Option<Caller> {
        let given = given.trim_ascii();
        if given.is_empty() || !given.iter().all(u8::is_ascii_graphic) {
            return None;
        }
        let sha256: [u8; 32] = Sha256::digest(given).into();
        let mut found = None;
        for key in &self.keys {
            if bool::from(key.sha256.ct_eq(&sha256)) {
                found = Some(Caller::Key(key.name.clone()));
            }
        }
        found
    }

    /// The rate and burst of a key's front end; None for an address.
    pub(crate) fn key_rate(&self, caller: &Caller) -> Option<(f64, f64)> {
        let Caller::Key(name) = caller else {
            return None;
        };
        (self.keys.iter())
            .find(|k| k.name == *name)
            .map(|k| (k.rate, k.burst))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted
    /// proxy; then the right-most forwarded address that is not itself a
    /// trusted proxy. A hop that cannot be read (`unknown`, an obfuscated
    /// name, garbage) stops the walk at the proxy that wrote it.
    fn client_address(&self, headers: &HeaderMap, peer: IpAddr) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        for hop in forwarded_hops(headers).into_iter().rev() {
            match hop {
                Some(ip) if self.trusts(ip) => client = ip,
                Some(ip) => return ip,
                None => return client,
            }
        }
        client
    }
}

/// The forwarded hops, client first: from the `Forwarded` headers' `for=`
/// (RFC 7239) when there are any, else from `X-Forwarded-For`. A hop that
/// is not an address is None.
pub(crate) fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&[u8]> = headers
        .get_all("forwarded")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if !forwarded.is_empty() {
        return forwarded
            .into_iter()
            .flat_map(|v| split_outside_quotes(&String::from_utf8_lossy(v), ','))
            .map(|element| forwarded_for(&element))
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| {
            let text = String::from_utf8_lossy(v.as_bytes()).into_owned();
            text.split(',').map(node).collect::<Vec<_>>()
        })
        .collect()
}

/// The `for=` of one `Forwarded` element (`for=1.2.3.4;proto=https`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    split_outside_quotes(element, ';')
        .iter()
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
        .and_then(|(_, value)| node(&unquote(value.trim())))
}

/// Splits at `sep` where it is not inside a quoted string.
fn split_outside_quotes(text: &str, sep: char) -> Vec<String> {
    let (mut parts, mut part) = (Vec::new(), String::new());
    let (mut quoted, mut escaped) = (false, false);
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(std::mem::take(&mut part));
                continue;
            }
            _ => {}
        }
        part.push(c);
    }
    parts.push(part);
    parts
}

/// A quoted string's content, its escapes undone; other text as it is.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_string();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        });
    }
    out
}

/// A node as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]`,
/// `[2001:db8::1]:80` or a bare IPv6 address; `unknown`, obfuscated
/// identifiers (`_hidden`) and anything else are None.
fn node(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let ip = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port_ok = after.is_empty()
            || after.strip_prefix(':').is_some_and(|p| {
                !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            });
        if !port_ok {
            return None;
        }
        IpAddr::V6(inside.parse().ok()?)
    } else if let Ok(ip) = text.parse::<IpAddr>() {
        ip
    } else {
        let (host, port) = text.rsplit_once(':')?;
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        IpAddr::V4(host.parse().ok()?)
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKeyConfig;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().unwrap());
        }
        h
    }

    fn callers(proxies: &[&str]) -> Callers {
        Callers::new(&LimitConfig {
            api_keys: vec![ApiKeyConfig {
                name: "web".into(),
                key: "web-front-end-key-0123".into(),
                rate_per_sec: 500.0,
                burst: None,
            }],
            trusted_proxies: proxies.iter().map(|p| p.to_string()).collect(),
            ..LimitConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn forwarded_reads_quotes_ports_brackets_and_skips_what_is_not_an_address() {
        let h = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http;by=203.0.113.43, For=\"[2001:db8:cafe::17]:4711\", \
             for=\"198.51.100.17:8080\", for=unknown, for=_hidden, for=\"_x;y,z\", for=[bad",
        )]);
        assert_eq!(
            forwarded_hops(&h),
            vec![
                Some(ip("192.0.2.60")),
                Some(ip("2001:db8:cafe::17")),
                Some(ip("198.51.100.17")),
                None,
                None,
                None,
                None,
            ]
        );
        let h = headers(&[
            ("forwarded", "proto=https"),
            ("forwarded", "for=\"\\1.2.3.4\""),
        ]);
        assert_eq!(forwarded_hops(&h), vec![None, Some(ip("1.2.3.4"))]);
    }

    #[test]
    fn x_forwarded_for_reads_addresses_with_or_without_ports() {
        let h = headers(&[
            (
                "x-forwarded-for",
                "203.0.113.7, 10.0.0.2:443 , [2001:db8::1]:80",
            ),
            (
                "x-forwarded-for",
                "2001:db8::2, not-an-ip, ::ffff:192.0.2.1, 1.2.3.4:x",
            ),
        ]);
        assert_eq!(
            forwarded_hops(&h),
            vec![
                Some(ip("203.0.113.7")),
                Some(ip("10.0.0.2")),
                Some(ip("2001:db8::1")),
                Some(ip("2001:db8::2")),
                None,
                Some(ip("192.0.2.1")),
                None,
            ]
        );
        let both = headers(&[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")]);
        assert_eq!(
            forwarded_hops(&both),
            vec![Some(ip("2.2.2.2"))],
            "Forwarded wins"
        );
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let c = callers(&["10.0.0.0/8", "fd00::/8"]);
        let forged = headers(&[("x-forwarded-for", "198.51.100.1")]);
        let who = |h: &HeaderMap, peer: &str| c.identify(h, Some(ip(peer))).unwrap();
        assert_eq!(who(&forged, "192.0.2.9"), Caller::Address(ip("192.0.2.9")));
        assert_eq!(
            who(&forged, "10.1.2.3"),
            Caller::Address(ip("198.51.100.1"))
        );
        // The right-most hop that is not a trusted proxy, past forged ones.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.2, 10.0.0.7")]);
        assert_eq!(who(&chain, "10.0.0.1"), Caller::Address(ip("198.51.100.2")));
        // An unreadable hop stops at the proxy that wrote it.
        let hidden = headers(&[("forwarded", "for=198.51.100.3, for=_hidden, for=10.0.0.8")]);
        assert_eq!(who(&hidden, "10.0.0.1"), Caller::Address(ip("10.0.0.8")));
        // Only proxies: the farthest one.
        let proxies = headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.7")]);
        assert_eq!(who(&proxies, "10.0.0.1"), Caller::Address(ip("10.9.9.9")));
        assert_eq!(
            who(&HeaderMap::new(), "::ffff:10.0.0.1"),
            Caller::Address(ip("10.0.0.1")),
            "IPv4-mapped peers are IPv4"
        );
        let v6 = headers(&[("forwarded", "for=\"[2001:db8:1:2:aaaa::1]:99\"")]);
        assert_eq!(who(&v6, "fd00::1"), Caller::Address(ip("2001:db8:1:2::")));
        assert!(callers(&[]).trusted.is_empty());
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        assert_eq!(bucket(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(bucket(ip("2001:db8:1:2:ffff::1")), ip("2001:db8:1:2::"));
        assert_ne!(bucket(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(bucket(ip("192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(
            Caller::Address(bucket(ip("2001:db8:1:2::9"))).to_string(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(Caller::Key("web".into()).to_string(), "key:web");
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.255.0.1")) && !c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(!Cidr::parse("fd00::/8").unwrap().contains(ip("10.0.0.1")));
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "host", "10.0.0.1/"] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn known_keys_name_their_front_end_and_others_are_refused() {
        let c = callers(&[]);
        let peer = Some(ip("192.0.2.1"));
        let keyed = headers(&[(API_KEY_HEADER, " web-front-end-key-0123 ")]);
        assert_eq!(c.identify(&keyed, peer).unwrap(), Caller::Key("web".into()));
        assert_eq!(c.key_rate(&Caller::Key("web".into())), Some((500.0, 500.0)));
        for bad in ["web-front-end-key-0124", "", "web"] {
            let h = headers(&[(API_KEY_HEADER, bad)]);
            let refused = tonic::Status::from(c.identify(&h, peer).unwrap_err());
            assert_eq!(refused.code(), tonic::Code::Unauthenticated);
            assert!(refused.message().contains(API_KEY_HEADER), "{refused:?}");
            assert!(
                bad.is_empty() || !refused.message().contains(bad),
                "{refused:?}"
            );
        }
        let mut h = HeaderMap::new();
        h.insert(
            API_KEY_HEADER,
            tonic::codegen::http::HeaderValue::from_bytes("密钥密钥密钥密钥".as_bytes()).unwrap(),
        );
        assert!(c.identify(&h, peer).is_err(), "not ASCII");
        assert!(!format!("{c:?}").contains("web-front-end-key-0123"));
    }

    #[test]
    fn the_config_is_checked() {
        let key = |name: &str, key: &str, rate: f64| ApiKeyConfig {
            name: name.into(),
            key: key.into(),
            rate_per_sec: rate,
            burst: None,
        };
        let check = |keys: Vec<ApiKeyConfig>, proxies: &[&str]| {
            Callers::new(&LimitConfig {
                api_keys: keys,
                trusted_proxies: proxies.iter().map(|p| p.to_string()).collect(),
                ..LimitConfig::default()
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
        };
        let good = "0123456789abcdef";
        assert!(check(vec![key("a", good, 1.0)], &["10.0.0.0/8"]).is_ok());
        let twice = check(
            vec![key("a", good, 1.0), key("a", "fedcba9876543210", 1.0)],
            &[],
        );
        assert!(twice.unwrap_err().contains("unique"));
        let short = check(vec![key("a", "short", 1.0)], &[]).unwrap_err();
        assert!(
            short.contains("at least 16") && !short.contains("short\""),
            "{short}"
        );
        assert!(check(vec![key("a", good, 0.0)], &[])
            .unwrap_err()
            .contains("rate_per_sec"));
        assert!(check(vec![key(" ", good, 1.0)], &[]).is_err());
        assert!(check(vec![], &["10.0.0.0/40"])
            .unwrap_err()
            .contains("10.0.0.0/40"));
    }
}
