//! `statelab demo identity`: two replicas of a StatefulSet, each with its own directory (its
//! own PersistentVolumeClaim). Their counts are separate, every answer names the replica that
//! served it, and a restarted replica comes back with the same name and the same count.

use std::process::ExitCode;

use reqwest::Method;
use serde::Serialize;

use super::local_replica::{Replica, call, client, count_of};
use crate::server::signals::Shutdown;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Increments sent to counter-app-0 (counter-app-1 gets one)
    #[arg(long, default_value_t = 3)]
    increments: u64,

    /// Requests sent round-robin to both replicas, as a Service spreads connections
    #[arg(long, default_value_t = 6)]
    round_robin: usize,

    /// Print the rows as JSON instead of a table
    #[arg(long)]
    json: bool,

    /// Keep the temporary data directories (their paths are printed)
    #[arg(long)]
    keep: bool,
}

#[derive(Serialize)]
struct Row {
    replica: String,
    data_dir: String,
    increments_sent: u64,
    count: u64,
    pod_name: String,
    served_by: String,
    ok: bool,
}

#[derive(Serialize)]
struct Hit {
    served_by: String,
    count: u64,
}

#[derive(Serialize)]
struct Report {
    demo: &'static str,
    rows: Vec<Row>,
    round_robin: Vec<Hit>,
    ok: bool,
    pids: Vec<u32>,
}

/// Runs the demo; a shutdown request stops it, and its replicas (by PID) and temporary
/// directories are gone when this returns.
pub async fn run(args: Args, shutdown: &Shutdown) -> anyhow::Result<ExitCode> {
    super::until_shutdown(shutdown, demo(args)).await
}

async fn demo(args: Args) -> anyhow::Result<ExitCode> {
    let temp = tempfile::Builder::new()
        .prefix("statelab-demo-identity-")
        .tempdir()?;
    let client = client();
    let names = ["counter-app-0", "counter-app-1"];
    let sends = [args.increments, 1];
    let mut replicas = Vec::new();
    let mut pids = Vec::new();
    for name in names {
        let replica = Replica::start(name, &temp.path().join(name)).await?;
        pids.extend(replica.pid());
        replicas.push(replica);
    }
    for (replica, &sends) in replicas.iter().zip(&sends) {
        for _ in 0..sends {
            call(&client, Method::POST, &replica.url("/increment")).await?;
        }
    }
    let mut rows = Vec::new();
    for (replica, &sent) in replicas.iter().zip(&sends) {
        rows.push(row(&client, replica, &replica.name, sent).await?);
    }

    // A Service spreads new connections over the replicas: consecutive calls see different
    // counts, because each replica answers from its own file.
    let mut round_robin = Vec::new();
    for i in 0..args.round_robin {
        let replica = &replicas[i % replicas.len()];
        let answer = call(&client, Method::GET, &replica.url("/count")).await?;
        round_robin.push(Hit {
            count: count_of(&answer)?,
            served_by: answer.served_by,
        });
    }

    // Stable identity: the same name on the same directory after a restart.
    let mut first = replicas.remove(0);
    first.kill9();
    let restarted = Replica::start(names[0], &first.dir).await?;
    pids.extend(restarted.pid());
    rows.push(
        row(
            &client,
            &restarted,
            &format!("{} after kill -9", names[0]),
            sends[0],
        )
        .await?,
    );
    drop(restarted);
    drop(replicas);

    let ok = rows.iter().all(|r| r.ok) && rows[0].count != rows[1].count;
    let report = Report {
        demo: "identity",
        rows,
        round_robin,
        ok,
        pids,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if args.keep {
        let kept = temp.keep();
        if !args.json {
            println!("Data directories kept under {}", kept.display());
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn row(
    client: &reqwest::Client,
    replica: &Replica,
    label: &str,
    sent: u64,
) -> anyhow::Result<Row> {
    let answer = call(client, Method::GET, &replica.url("/count")).await?;
    let count = count_of(&answer)?;
    let pod_name = answer
        .body
        .get("pod_name")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned();
    Ok(Row {
        replica: label.to_owned(),
        data_dir: replica.dir.display().to_string(),
        increments_sent: sent,
        count,
        ok: count == sent && pod_name == replica.name && answer.served_by == replica.name,
        pod_name,
        served_by: answer.served_by,
    })
}

fn print_report(report: &Report) {
    println!();
    println!("Identity: two replicas, each with its own data directory");
    println!();
    println!(
        "{:<28} {:>10} {:>6}  {:<15} {:<15} {:<6}",
        "replica", "increments", "count", "pod_name", "X-Served-By", "result"
    );
    for row in &report.rows {
        println!(
            "{:<28} {:>10} {:>6}  {:<15} {:<15} {:<6}",
            row.replica,
            row.increments_sent,
            row.count,
            row.pod_name,
            row.served_by,
            if row.ok { "ok" } else { "WRONG" }
        );
    }
    println!();
    let hits: Vec<String> = report
        .round_robin
        .iter()
        .map(|h| format!("{}={}", h.served_by, h.count))
        .collect();
    println!(
        "GET /count round-robin, as through a Service: {}",
        hits.join(", ")
    );
    println!();
    if report.ok {
        println!(
            "Each replica counts on its own volume, so the counts differ and a client behind \
             one Service sees them alternate. The name in every answer is the replica's \
             stable identity: after kill -9, counter-app-0 comes back with the same name and \
             the same count. Use the headless Service's per-pod names \
             (counter-app-0.counter-service) to reach one replica on purpose."
        );
    } else {
        println!("Some rows are not what the lesson expects: see the WRONG rows above.");
    }
}
