//! Container image references: their parts, and what the well-known ones run.

/// `registry.example.com:5000/team/postgres:16.4@sha256:...` in parts.
#[derive(Debug, PartialEq, Eq)]
pub struct Image<'a> {
    /// The last path component: `postgres`.
    pub name: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

pub fn parse(reference: &str) -> Image<'_> {
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    // A colon after the last slash starts the tag (a colon before it belongs to a registry port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (path, tag) = match rest[last_slash..].split_once(':') {
        Some((name, tag)) => (&rest[..last_slash + name.len()], Some(tag)),
        None => (rest, None),
    };
    Image {
        name: &path[last_slash..],
        tag,
        digest,
    }
}

/// A database, cache or message broker: the images that keep state, and where they keep it.
#[derive(Debug)]
pub struct Database {
    /// Image names (last path component) that run it.
    pub images: &'static [&'static str],
    /// Directories the image keeps its data in by default.
    pub data_paths: &'static [&'static str],
    /// Commonly run as a cache that keeps nothing worth keeping (Redis and its forks, NATS
    /// without JetStream): with no persistent volume it is fine in a Deployment.
    pub cache: bool,
}

pub const DATABASES: &[Database] = &[
    Database {
        images: &[
            "postgres",
            "postgresql",
            "postgis",
            "timescaledb",
            "timescaledb-ha",
        ],
        data_paths: &["/var/lib/postgresql", "/bitnami/postgresql"],
        cache: false,
    },
    Database {
        images: &[
            "mysql",
            "mysql-server",
            "mariadb",
            "percona-server",
            "percona",
        ],
        data_paths: &["/var/lib/mysql", "/bitnami/mysql", "/bitnami/mariadb"],
        cache: false,
    },
    Database {
        images: &["mongo", "mongodb", "mongodb-community-server"],
        data_paths: &["/data/db", "/bitnami/mongodb"],
        cache: false,
    },
    Database {
        images: &[
            "redis",
            "redis-stack-server",
            "valkey",
            "keydb",
            "dragonfly",
        ],
        data_paths: &["/data", "/bitnami/redis"],
        cache: true,
    },
    Database {
        images: &["rabbitmq"],
        data_paths: &["/var/lib/rabbitmq", "/bitnami/rabbitmq"],
        cache: false,
    },
    Database {
        images: &[
            "kafka",
            "cp-kafka",
            "cp-server",
            "zookeeper",
            "cp-zookeeper",
        ],
        data_paths: &[
            "/var/lib/kafka",
            "/bitnami/kafka",
            "/var/lib/zookeeper",
            "/bitnami/zookeeper",
        ],
        cache: false,
    },
    Database {
        images: &["nats", "nats-streaming"],
        data_paths: &["/data"],
        cache: true,
    },
    Database {
        images: &["etcd"],
        data_paths: &["/var/lib/etcd", "/etcd-data", "/bitnami/etcd"],
        cache: false,
    },
    Database {
        images: &["cassandra", "scylla"],
        data_paths: &["/var/lib/cassandra", "/var/lib/scylla"],
        cache: false,
    },
    Database {
        images: &["elasticsearch", "opensearch"],
        data_paths: &[
            "/usr/share/elasticsearch/data",
            "/usr/share/opensearch/data",
        ],
        cache: false,
    },
    Database {
        images: &["couchdb", "couchbase"],
        data_paths: &["/opt/couchdb/data", "/opt/couchbase/var"],
        cache: false,
    },
    Database {
        images: &["influxdb", "clickhouse-server", "questdb"],
        data_paths: &[
            "/var/lib/influxdb",
            "/var/lib/influxdb2",
            "/var/lib/clickhouse",
        ],
        cache: false,
    },
    Database {
        images: &["cockroach", "neo4j", "mssql-server", "solr", "minio"],
        data_paths: &[
            "/cockroach/cockroach-data",
            "/data",
            "/var/opt/mssql",
            "/var/solr",
        ],
        cache: false,
    },
];

/// The image's repository without registry, tag or digest, lower-cased:
/// `lscr.io/linuxserver/sonarr:4` → `linuxserver/sonarr`.
pub fn repository(reference: &str) -> String {
    let rest = reference.split('@').next().unwrap_or(reference);
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let path = match rest[last_slash..].split_once(':') {
        Some((name, _)) => &rest[..last_slash + name.len()],
        None => rest,
    };
    // A first component with a dot or a port, or `localhost`, is a registry.
    let path = match path.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => path,
    };
    path.to_lowercase()
}

/// Images whose application keeps its state (database, settings it writes itself) under
/// `/config`: the linuxserver.io and hotio families, Home Assistant, Jellyfin, Plex.
pub fn keeps_state_in_config(reference: &str) -> bool {
    let repo = repository(reference);
    repo.starts_with("linuxserver/")
        || repo.starts_with("hotio/")
        || repo.contains("home-assistant")
        || repo.starts_with("homeassistant/")
        || matches!(
            repo.as_str(),
            "jellyfin/jellyfin" | "plexinc/pms-docker" | "emby/embyserver"
        )
}

/// Applications built to share one writable volume between replicas: web servers that only
/// read what they serve, and CMSes whose uploads folder is meant to live on ReadWriteMany.
pub fn shares_files_safely(reference: &str) -> bool {
    matches!(
        parse(reference).name,
        "nginx"
            | "nginx-unprivileged"
            | "openresty"
            | "httpd"
            | "apache"
            | "caddy"
            | "lighttpd"
            | "wordpress"
            | "drupal"
            | "joomla"
            | "nextcloud"
            | "mediawiki"
    )
}

/// The database an image runs, if it is one of the well-known ones.
pub fn database(reference: &str) -> Option<&'static Database> {
    let name = parse(reference).name;
    DATABASES.iter().find(|db| db.images.contains(&name))
}

impl Database {
    /// Whether a mount at `mount_path` holds (or contains) this database's data directory.
    pub fn holds_data(&self, mount_path: &str) -> bool {
        let mount = mount_path.trim_end_matches('/');
        self.data_paths
            .iter()
            .any(|data| within(mount, data) || within(data, mount))
    }
}

/// `path` is `dir` or below it.
fn within(path: &str, dir: &str) -> bool {
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// General-purpose images whose default user is root (used for init containers).
pub fn runs_as_root_by_default(reference: &str) -> bool {
    matches!(
        parse(reference).name,
        "busybox"
            | "alpine"
            | "ubuntu"
            | "debian"
            | "centos"
            | "fedora"
            | "bash"
            | "python"
            | "node"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        assert_eq!(
            parse("registry:5000/team/postgres:16.4@sha256:abc"),
            Image {
                name: "postgres",
                tag: Some("16.4"),
                digest: Some("sha256:abc")
            }
        );
        assert_eq!(parse("registry:5000/redis").tag, None);
        assert_eq!(parse("redis").name, "redis");
    }

    #[test]
    fn knows_databases() {
        assert!(database("docker.io/library/postgres:16").is_some());
        assert!(database("bitnami/postgresql:16").is_some());
        assert!(database("mongo-express:1").is_none());
        assert!(database("oliver006/redis_exporter:v1").is_none());
        let postgres = database("postgres").unwrap();
        assert!(postgres.holds_data("/var/lib/postgresql/data"));
        assert!(postgres.holds_data("/var/lib"));
        assert!(!postgres.holds_data("/var/lib/postgresql-backup"));
        assert!(database("redis:7").unwrap().cache);
        assert!(!postgres.cache);
    }

    #[test]
    fn knows_repositories() {
        assert_eq!(
            repository("lscr.io/linuxserver/sonarr:4.0"),
            "linuxserver/sonarr"
        );
        assert_eq!(repository("localhost:5000/app@sha256:ab"), "app");
        assert_eq!(repository("nginx"), "nginx");
        assert!(keeps_state_in_config(
            "ghcr.io/home-assistant/home-assistant:2025.1"
        ));
        assert!(keeps_state_in_config("linuxserver/radarr"));
        assert!(!keeps_state_in_config("myapp:1"));
    }
}
