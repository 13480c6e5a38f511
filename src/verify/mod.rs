//! `statelab verify`: the seeds' experiments run on what is deployed in a real cluster, and
//! scored. Each lab's experiments live in `labs/`; they reach the cluster only through the
//! Kubernetes API (`cluster.rs`). docs/verify.md says what each check proves.

mod cluster;
mod kube;
mod labs;
mod objects;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};

pub use cluster::Cluster;
pub use report::{Check, LabReport, Report};

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lab {
    /// Seed 000: one SQLite file, scaled to 3 replicas (deploy/k8s/guestbook)
    Guestbook,
    /// Seed 000's fix: the guestbook on PostgreSQL at 3 replicas (deploy/k8s/guestbook-postgres)
    GuestbookPostgres,
    /// Seed 001 §1: the users API on a PostgreSQL StatefulSet (deploy/k8s/users)
    Users,
    /// Seed 001 §2: the cache API on Redis with AOF (deploy/k8s/cache)
    Cache,
    /// Seed 001 §3: the task queue, workers and backend (deploy/k8s/queue)
    Queue,
    /// Seed 003: task-05's grader, criterion by criterion (deploy/k8s/counter)
    Counter,
    /// Seed 004: per-pod visit counters (deploy/k8s/visits)
    Visits,
    /// Seed 002: the Helm chart (deploy/helm/counter), installed and `helm test`ed
    Chart,
}

impl Lab {
    const ALL: [Lab; 8] = [
        Lab::Guestbook,
        Lab::GuestbookPostgres,
        Lab::Users,
        Lab::Cache,
        Lab::Queue,
        Lab::Counter,
        Lab::Visits,
        Lab::Chart,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Lab::Guestbook => "guestbook",
            Lab::GuestbookPostgres => "guestbook-postgres",
            Lab::Users => "users",
            Lab::Cache => "cache",
            Lab::Queue => "queue",
            Lab::Counter => "counter",
            Lab::Visits => "visits",
            Lab::Chart => "chart",
        }
    }

    /// Where the lab is looked for: the given namespace, else seed 003's `task-05` for the
    /// counter, else the kubeconfig's current namespace.
    fn namespace(self, given: Option<&str>, current: &str) -> String {
        match (given, self) {
            (Some(ns), _) => ns.to_string(),
            (None, Lab::Counter) => "task-05".to_string(),
            (None, _) => current.to_string(),
        }
    }

    async fn run(self, cluster: &Cluster) -> Vec<Check> {
        match self {
            Lab::Guestbook => labs::guestbook::sqlite(cluster).await,
            Lab::GuestbookPostgres => labs::guestbook::postgres(cluster).await,
            Lab::Users => labs::users::verify(cluster).await,
            Lab::Cache => labs::cache::verify(cluster).await,
            Lab::Queue => labs::queue::verify(cluster).await,
            Lab::Counter => labs::counter::verify(cluster).await,
            Lab::Visits => labs::visits::verify(cluster).await,
            Lab::Chart => labs::chart::verify(cluster).await,
        }
    }

    /// Whether the lab's main object is there, so `statelab verify` alone grades what is
    /// deployed.
    async fn is_deployed(self, cluster: &Cluster) -> bool {
        let deployment = |name: &'static str| async move {
            matches!(cluster.deployments().get_opt(name).await, Ok(Some(_)))
        };
        let statefulset = |name: &'static str| async move {
            matches!(cluster.statefulsets().get_opt(name).await, Ok(Some(_)))
        };
        match self {
            Lab::Guestbook => deployment("stateful-app-deployment").await,
            Lab::GuestbookPostgres => deployment("guestbook").await,
            Lab::Users => deployment("user-api").await,
            Lab::Cache => deployment("cache-api").await,
            Lab::Queue => deployment("queue-api").await,
            Lab::Counter => statefulset("counter-app").await,
            Lab::Visits => statefulset("web-app").await,
            Lab::Chart => labs::chart::release(cluster).await.is_ok(),
        }
    }
}

/// Runs the seeds' experiments on a real cluster and scores them
///
/// Talks to the cluster of the current kubeconfig (KUBECONFIG or ~/.kube/config) through
/// the Kubernetes API; no kubectl needed. The experiments change what is deployed the way
/// the seeds do (they scale, delete pods, roll a canary) and put replica counts back
/// afterwards. Exit status: 0 only with full marks, 1 when points were lost, 2 on a usage or
/// connection error.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Labs to verify [default: every lab found deployed]
    #[arg(value_enum)]
    pub labs: Vec<Lab>,

    /// Namespace of the labs [default: the kubeconfig's current one; task-05 for counter]
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,

    /// Print the report as JSON (docs/verify.md) instead of a table
    #[arg(long)]
    pub json: bool,

    /// Also write the report as JUnit XML to this file
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// Exit 0 with full marks, 1 when points were lost, 2 when the labs could not be verified.
pub async fn run(args: VerifyArgs) -> ExitCode {
    match verify(args).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("statelab verify: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let base = Cluster::connect(args.namespace.clone()).await?;
    base.check_api().await?;
    let current = base.namespace.clone();
    let mut labs = args.labs.clone();
    if labs.is_empty() {
        for lab in Lab::ALL {
            let cluster = base.in_namespace(&lab.namespace(args.namespace.as_deref(), &current));
            if lab.is_deployed(&cluster).await {
                labs.push(lab);
            }
        }
        if labs.is_empty() {
            bail!(
                "no lab is deployed in namespace {current:?} (or task-05 for the counter); \
                 deploy one (kubectl apply -f deploy/k8s/<lab>/) or name the namespace with -n"
            );
        }
    }
    labs.dedup();

    let mut reports = Vec::new();
    for lab in labs {
        let cluster = base.in_namespace(&lab.namespace(args.namespace.as_deref(), &current));
        cluster.check_namespace().await?;
        if !args.json {
            eprintln!(
                "verifying {} in namespace {} ...",
                lab.name(),
                cluster.namespace
            );
        }
        let started = Instant::now();
        let checks = lab.run(&cluster).await;
        reports.push(LabReport::new(
            lab.name(),
            &cluster.namespace,
            checks,
            started.elapsed().as_secs_f64(),
        ));
    }
    let report = Report::new(reports);

    if let Some(path) = &args.junit {
        std::fs::write(path, report.junit())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        print!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(if report.full_marks() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
