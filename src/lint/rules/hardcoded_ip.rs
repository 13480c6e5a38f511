//! Seed 001, mistake 3: "Hardcoding IP Addresses".

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::lint::objects::{Object, Resource};
use crate::lint::report::{Rule, Severity};
use crate::lint::rules::Findings;
use crate::lint::shell::argv;
use crate::lint::source::Path;
use crate::lint::workload::workloads;

pub const HARDCODED_POD_IP: Rule = Rule {
    id: "hardcoded-pod-ip",
    severity: Severity::Error,
    summary: "an IP address in a private or cluster range where a DNS name belongs",
    explanation: "`DB_HOST: \"10.244.0.5\"  # Pod IP - will change!`: \"Pod IPs change on every \
        restart\" (seed 001, mistake 3), and Service cluster IPs change whenever the Service is \
        recreated, so the address works on the day it is written and breaks at the first \
        reschedule, with errors that point at the network rather than at the manifest. Checked \
        in environment variable values, command lines and ConfigMap data, for addresses in \
        10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10 and fc00::/7. Network ranges \
        written as CIDRs (10.0.0.0/8) and loopback or wildcard addresses are not flagged.",
    fix: "Use a DNS name: a Service (`postgres.<namespace>.svc`) or a StatefulSet pod through \
        its headless Service (`postgres-0.postgres-headless`).",
};

pub fn check(objects: &[Object], out: &mut Findings) {
    for w in workloads(objects) {
        for c in w.containers() {
            for (j, env) in c.container.env.iter().flatten().enumerate() {
                let Some(value) = env.value.as_deref() else {
                    continue;
                };
                for ip in cluster_addresses(value) {
                    let message = format!(
                        "{} is set to the address {ip}: pod and Service IPs change when the pod or Service is recreated",
                        env.name
                    );
                    let path = c.path.key("env").index(j).key("value");
                    out.add(&HARDCODED_POD_IP, w.object, &path, message);
                }
            }
            for arg in argv(&c) {
                for ip in cluster_addresses(arg.text) {
                    let message = format!(
                        "container {} is given the address {ip} on its command line: pod and Service IPs change when they are recreated",
                        c.container.name
                    );
                    out.add_at_text(&HARDCODED_POD_IP, w.object, &arg.path, &ip, message);
                }
            }
        }
    }
    for object in objects {
        let Resource::ConfigMap(config) = &object.resource else {
            continue;
        };
        for (key, value) in config.data.iter().flatten() {
            for ip in cluster_addresses(value) {
                let path = Path::root().key("data").key(key);
                let message = format!(
                    "{key} holds the address {ip}: pod and Service IPs change when they are recreated"
                );
                out.add_at_text(&HARDCODED_POD_IP, object, &path, &ip, message);
            }
        }
    }
}

/// Addresses in private and cluster ranges found in `text`, as written.
pub fn cluster_addresses(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < text.len() {
        let is_addr_char = |c: u8| c.is_ascii_hexdigit() || c == b'.' || c == b':';
        if !is_addr_char(bytes[start]) {
            start += 1;
            continue;
        }
        let end = (start..text.len())
            .find(|&i| !is_addr_char(bytes[i]))
            .unwrap_or(text.len());
        let preceded_by_word =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'-');
        // `10.0.0.0/8` is a network; `10.1.2.3:6379/0` is an address, a port and a path.
        let token = &text[start..end];
        let with_port = token.contains('.') && token.contains(':');
        let is_cidr = !with_port
            && bytes.get(end) == Some(&b'/')
            && bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
        if !preceded_by_word && !is_cidr {
            found.extend(address_in(token));
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
    }
}
