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
    },
    Database {
        images: &["mongo", "mongodb", "mongodb-community-server"],
        data_paths: &["/data/db", "/bitnami/mongodb"],
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
    },
    Database {
        images: &["rabbitmq"],
        data_paths: &["/var/lib/rabbitmq", "/bitnami/rabbitmq"],
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
    },
    Database {
        images: &["nats", "nats-streaming"],
        data_paths: &["/data"],
    },
    Database {
        images: &["etcd"],
        data_paths: &["/var/lib/etcd", "/etcd-data", "/bitnami/etcd"],
    },
    Database {
        images: &["cassandra", "scylla"],
        data_paths: &["/var/lib/cassandra", "/var/lib/scylla"],
    },
    Database {
        images: &["elasticsearch", "opensearch"],
        data_paths: &[
            "/usr/share/elasticsearch/data",
            "/usr/share/opensearch/data",
        ],
    },
    Database {
        images: &["couchdb", "couchbase"],
        data_paths: &["/opt/couchdb/data", "/opt/couchbase/var"],
    },
    Database {
        images: &["influxdb", "clickhouse-server", "questdb"],
        data_paths: &[
            "/var/lib/influxdb",
            "/var/lib/influxdb2",
            "/var/lib/clickhouse",
        ],
    },
    Database {
        images: &["cockroach", "neo4j", "mssql-server", "solr", "minio"],
        data_paths: &[
            "/cockroach/cockroach-data",
            "/data",
            "/var/opt/mssql",
            "/var/solr",
        ],
    },
];

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
    }
}
