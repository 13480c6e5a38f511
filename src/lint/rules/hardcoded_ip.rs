//! Seed 001, mistake 3: "Hardcoding IP Addresses".

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::lint::objects::{Object, Resource};
use crate::lint::report::{Rule, Severity};
use crate::lint::rules::Findings;
use crate::lint::shell::argv;
use crate::lint::source::Path;
use crate::lint::workload::{ContainerRef, workloads};

pub const HARDCODED_POD_IP: Rule = Rule {
    id: "hardcoded-pod-ip",
    severity: Severity::Error,
    summary: "an IP address in a private or cluster range where a DNS name belongs",
    explanation: "`DB_HOST: \"10.244.0.5\"  # Pod IP - will change!`: \"Pod IPs change on every \
        restart\" (seed 001, mistake 3), and Service cluster IPs change whenever the Service is \
        recreated, so the address works on the day it is written and breaks at the first \
        reschedule, with errors that point at the network rather than at the manifest. Checked \
        in environment variable values, command lines, ConfigMap data, Secret data and \
        stringData, and hostAliases, for addresses in 10.0.0.0/8, 172.16.0.0/12, \
        192.168.0.0/16, 100.64.0.0/10 and fc00::/7. An error where the address is used to \
        reach something (a host:port, a URL, a key or flag naming a host, server, endpoint or \
        peer, a hostAlias for an in-cluster name); a warning for other private addresses, \
        which are often on the network outside the cluster. Not flagged: networks (CIDRs) and \
        ranges (192.168.1.240-192.168.1.250), address pools, DNS forwarders (`forward . \
        172.16.0.1`, `nameserver`), NO_PROXY lists, version strings (10.2.3.4-SNAPSHOT), \
        loopback and wildcard addresses.",
    fix: "Use a DNS name: a Service (`postgres.<namespace>.svc`) or a StatefulSet pod through \
        its headless Service (`postgres-0.postgres-headless`).",
};

pub fn check(objects: &[Object], out: &mut Findings) {
    for w in workloads(objects) {
        for c in w.containers() {
            check_container(w.object, &c, out);
        }
        for (i, alias) in w.pod.host_aliases.iter().flatten().enumerate() {
            let Some(address) = addresses(&alias.ip).into_iter().next() else {
                continue;
            };
            let names = alias.hostnames.as_deref().unwrap_or_default();
            // A name the cluster's DNS already serves is a workload reached by a pinned address.
            let in_cluster = names.iter().any(|n| {
                !n.contains('.')
                    || n.ends_with(".svc")
                    || n.contains(".svc.")
                    || n.ends_with(".cluster.local")
            });
            let message = format!(
                "hostAlias pins {} to {}: pod and Service IPs change when they are recreated",
                names.join(", "),
                address.ip
            );
            let path = w.pod_path.key("hostAliases").index(i).key("ip");
            let finding = out.add(&HARDCODED_POD_IP, w.object, &path, message);
            if !in_cluster {
                finding.with_severity(Severity::Warning);
            }
        }
    }
    for object in objects {
        match &object.resource {
            Resource::ConfigMap(config) => {
                for (key, value) in config.data.iter().flatten() {
                    check_data(object, "data", key, value, out);
                }
            }
            Resource::Secret(secret) => {
                for (key, value) in secret.string_data.iter().flatten() {
                    check_data(object, "stringData", key, value, out);
                }
                for (key, value) in secret.data.iter().flatten() {
                    if let Ok(text) = std::str::from_utf8(&value.0) {
                        check_data(object, "data", key, text, out);
                    }
                }
            }
            _ => {}
        }
    }
}

fn check_container(object: &Object, c: &ContainerRef, out: &mut Findings) {
    for (j, env) in c.container.env.iter().flatten().enumerate() {
        let Some(value) = env.value.as_deref() else {
            continue;
        };
        for address in addresses(value) {
            let Some(severity) = judge(value, &address, &env.name) else {
                continue;
            };
            let message = format!(
                "{} is set to the address {}: pod and Service IPs change when the pod or Service is recreated",
                env.name, address.ip
            );
            let path = c.path.key("env").index(j).key("value");
            out.add(&HARDCODED_POD_IP, object, &path, message)
                .with_severity(severity);
        }
    }
    let args = argv(c);
    for (i, arg) in args.iter().enumerate() {
        // `--host 10.1.2.3`: the flag before names what the address is for.
        let flag = i
            .checked_sub(1)
            .map(|p| args[p].text)
            .filter(|t| t.starts_with('-'))
            .unwrap_or("");
        for address in addresses(arg.text) {
            let Some(severity) = judge(arg.text, &address, flag) else {
                continue;
            };
            let message = format!(
                "container {} is given the address {} on its command line: pod and Service IPs change when they are recreated",
                c.container.name, address.ip
            );
            out.add_at_text(&HARDCODED_POD_IP, object, &arg.path, &address.ip, message)
                .with_severity(severity);
        }
    }
}

fn check_data(object: &Object, field: &str, key: &str, value: &str, out: &mut Findings) {
    for address in addresses(value) {
        let Some(severity) = judge(value, &address, key) else {
            continue;
        };
        let path = Path::root().key(field).key(key);
        let message = format!(
            "{key} holds the address {}: pod and Service IPs change when they are recreated",
            address.ip
        );
        out.add_at_text(&HARDCODED_POD_IP, object, &path, &address.ip, message)
            .with_severity(severity);
    }
}

/// An address found in a text, as written, and where.
#[derive(Debug)]
pub struct Address {
    pub ip: String,
    start: usize,
    end: usize,
}

/// Words in a key, flag or config line that say the address is used to reach a service.
const REACHES: &[&str] = &[
    "host",
    "addr",
    "server",
    "endpoint",
    "url",
    "uri",
    "peer",
    "master",
    "primary",
    "replica",
    "leader",
    "backend",
    "dsn",
    "connect",
    "broker",
    "seed",
    "bootstrap",
    "upstream",
    "target",
    "remote",
    "proxy_pass",
    "service",
    "svc",
    "database",
    "redis",
    "postgres",
    "mysql",
    "mongo",
];

/// Words that say the addresses are not endpoints of a workload: DNS resolvers, lists of
/// addresses handed out or exempted, networks.
const NOT_ENDPOINTS: &[&str] = &[
    "no_proxy",
    "noproxy",
    "nameserver",
    "resolver",
    "dns",
    "forward",
    "pool",
    "addresses",
    "range",
    "cidr",
    "subnet",
    "network",
    "allow",
    "deny",
    "trusted",
    "whitelist",
    "exclude",
];

/// How bad an address is where it stands: `None` when it is no endpoint at all, an error when
/// it is plausibly a pod or Service IP used to reach a workload, else a warning (a private
/// address, often outside the cluster).
fn judge(text: &str, address: &Address, key: &str) -> Option<Severity> {
    let line_start = text[..address.start].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..address.start];
    let line_key = line_key(text, line_start, before);
    let first_word = before
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    // Corefile `forward . 172.16.0.1`, resolv.conf `nameserver`, nginx `resolver`, dnsmasq
    // `server=/corp/10.0.0.1`: DNS servers, which live outside the pod network.
    if matches!(
        first_word.as_str(),
        "forward" | "proxy" | "nameserver" | "resolver"
    ) || first_word.starts_with("server=/")
    {
        return None;
    }
    let key = key.to_ascii_lowercase();
    let line_key = line_key.to_ascii_lowercase();
    let contains = |c: &str, words: &[&str]| words.iter().any(|w| c.contains(w));
    if contains(&key, NOT_ENDPOINTS) || contains(&line_key, NOT_ENDPOINTS) {
        return None;
    }
    // The key on the address's own line says more than the name of the whole value (a line
    // `bind 10.0.0.1` in `redis.conf` is no connection to Redis).
    let nearest = if line_key.is_empty() { &key } else { &line_key };
    let contexts = [nearest];
    let after = &text[address.end..];
    let with_port = text[address.start..address.end].contains(':') && address.ip.contains('.')
        || after.starts_with("]:");
    let in_url = before.ends_with("://") || before.ends_with('@');
    if contexts
        .iter()
        .any(|c| c.contains("proxy") && !c.contains("proxy_pass"))
    {
        // An HTTP proxy: a gateway on the way out, not a workload of the cluster.
        return Some(Severity::Warning);
    }
    if with_port || in_url || contains(nearest, REACHES) {
        Some(Severity::Error)
    } else {
        Some(Severity::Warning)
    }
}

/// The key an address on a config line belongs to: the last word before it (`host =`,
/// `server:`), or, for a list item (`- 10.1.2.3`), the key the list is under.
fn line_key<'t>(text: &'t str, line_start: usize, before: &'t str) -> &'t str {
    let word = before
        .trim_end_matches(|c: char| {
            c.is_whitespace() || matches!(c, '=' | ':' | '"' | '\'' | '[' | ',')
        })
        .rsplit(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .next()
        .unwrap_or("");
    if word != "-" {
        return word;
    }
    // A list item: the nearest line above, indented less, names the list.
    let indent = before.len() - before.trim_start().len();
    let mut lines = text[..line_start].lines().rev();
    lines
        .find(|l| {
            let i = l.len() - l.trim_start().len();
            !l.trim().is_empty() && i <= indent && !l.trim_start().starts_with('-')
        })
        .and_then(|l| l.trim().strip_suffix(':').or_else(|| l.split(':').next()))
        .map(str::trim)
        .unwrap_or("")
}

/// Addresses in private and cluster ranges found in `text`, as written.
pub fn cluster_addresses(text: &str) -> Vec<String> {
    addresses(text).into_iter().map(|a| a.ip).collect()
}

/// Addresses in private and cluster ranges found in `text`. Networks (`10.0.0.0/8`), ranges
/// (`10.0.0.1-10.0.0.9`) and version strings (`10.2.3.4-SNAPSHOT`, `v10.1.2.3`) are left out.
fn addresses(text: &str) -> Vec<Address> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let is_addr_char = |c: u8| c.is_ascii_hexdigit() || c == b'.' || c == b':';
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    let mut start = 0;
    while start < text.len() {
        if !is_addr_char(bytes[start]) {
            start += 1;
            continue;
        }
        let end = (start..text.len())
            .find(|&i| !is_addr_char(bytes[i]))
            .unwrap_or(text.len());
        let preceded_by_word = start > 0 && is_word(bytes[start - 1]);
        let followed_by_word = bytes.get(end).is_some_and(|&c| is_word(c));
        // `10.0.0.0/8` is a network; `10.1.2.3:6379/0` is an address, a port and a path.
        let token = &text[start..end];
        let with_port = token.contains('.') && token.contains(':');
        let is_cidr = !with_port
            && bytes.get(end) == Some(&b'/')
            && bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
        // `192.168.1.240 - 192.168.1.250`, spaces or not.
        let range_after = text[end..]
            .trim_start_matches(' ')
            .strip_prefix('-')
            .is_some_and(|rest| {
                rest.trim_start_matches(' ')
                    .starts_with(|c: char| c.is_ascii_hexdigit())
            });
        let range_before = text[..start]
            .trim_end_matches(' ')
            .strip_suffix('-')
            .is_some_and(|rest| {
                rest.trim_end_matches(' ')
                    .ends_with(|c: char| c.is_ascii_hexdigit())
            });
        if !preceded_by_word
            && !followed_by_word
            && !is_cidr
            && !range_after
            && !range_before
            && let Some(ip) = address_in(token)
        {
            let offset = token.find(ip.as_str()).unwrap_or(0);
            found.push(Address {
                start: start + offset,
                end,
                ip,
            });
        }
        start = end;
    }
    found
}

/// The cluster address a token holds: `10.1.2.3`, `10.1.2.3:5432`, `fd00::1`.
fn address_in(token: &str) -> Option<String> {
    let token = token.trim_matches(|c| c == '.' || c == ':');
    let host = match token.rsplit_once(':') {
        // `10.1.2.3:5432`: an IPv4 address and a port.
        Some((host, port)) if host.contains('.') && port.chars().all(|c| c.is_ascii_digit()) => {
            host
        }
        _ => token,
    };
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        let [a, b, ..] = v4.octets();
        let private = a == 10
            || (a == 172 && (16..32).contains(&b))
            || (a == 192 && b == 168)
            || (a == 100 && (64..128).contains(&b));
        return private.then(|| host.to_owned());
    }
    if let Ok(v6) = token.parse::<Ipv6Addr>() {
        return ((v6.segments()[0] & 0xfe00) == 0xfc00).then(|| token.to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::cluster_addresses;

    #[test]
    fn finds_cluster_addresses() {
        assert_eq!(cluster_addresses("10.244.0.5"), ["10.244.0.5"]);
        assert_eq!(
            cluster_addresses("postgres://u@10.96.3.4:5432/db"),
            ["10.96.3.4"]
        );
        assert_eq!(cluster_addresses("[fd00::12]:80"), ["fd00::12"]);
        assert!(cluster_addresses("allow 10.0.0.0/8 fd00::/8").is_empty());
        assert_eq!(
            cluster_addresses("redis://172.17.0.3:6379/0"),
            ["172.17.0.3"]
        );
        assert!(cluster_addresses("0.0.0.0:8080 127.0.0.1 8.8.8.8").is_empty());
        assert!(cluster_addresses("postgres-0.postgres-headless").is_empty());
        assert!(cluster_addresses("v10.1.2.3 1.10.0.5.2").is_empty());
        assert!(cluster_addresses("10.2.3.4-SNAPSHOT").is_empty());
        assert!(cluster_addresses("192.168.1.240-192.168.1.250").is_empty());
        assert!(cluster_addresses("10.0.0.1 - 10.0.0.9").is_empty());
        assert_eq!(
            cluster_addresses("- 10.0.0.1\n- 10.0.0.2"),
            ["10.0.0.1", "10.0.0.2"]
        );
    }

    #[test]
    fn judges_where_the_address_stands() {
        use super::{Severity, addresses, judge};
        let first = |text: &str, key: &str| {
            let address = addresses(text).into_iter().next().unwrap();
            judge(text, &address, key)
        };
        assert_eq!(first("10.244.0.5", "DB_HOST"), Some(Severity::Error));
        assert_eq!(first("10.96.0.20:8080", "X"), Some(Severity::Error));
        assert_eq!(first("10.20.30.40", "OFFICE_GW"), Some(Severity::Warning));
        assert_eq!(
            first(".:53 {\n    forward . 172.16.0.1\n}", "Corefile"),
            None
        );
        assert_eq!(first("localhost,10.0.0.5", "NO_PROXY"), None);
        assert_eq!(
            first("http://10.0.0.5:3128", "HTTPS_PROXY"),
            Some(Severity::Warning)
        );
        assert_eq!(
            first("[db]\nhost = 10.1.2.3\n", "app.ini"),
            Some(Severity::Error)
        );
        assert_eq!(
            first("pools:\n  addresses:\n  - 192.168.1.240\n", "config"),
            None
        );
    }
}
