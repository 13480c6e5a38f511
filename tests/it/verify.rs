//! `statelab verify` without a cluster to grade: it must say why, with exit status 2 (not 1,
//! which means points were lost), and never print a score. The grading itself runs against a
//! real cluster in scripts/e2e.sh.

use std::io::Write;
use std::net::TcpListener;
use std::process::Command;

use crate::support::process::binary;

fn verify(kubeconfig: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(binary())
        .arg("verify")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn no_kubeconfig_is_a_clear_error_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    refused_with_status_2(
        verify(&dir.path().join("missing"), &["counter"]),
        "statelab verify: no cluster to talk to",
    );
}

#[test]
fn a_cluster_that_does_not_answer_is_a_clear_error_with_status_2() {
    // A port that accepts nothing: bound, never listened on by an API server.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let path = kubeconfig(dir.path(), port);
    refused_with_status_2(
        verify(&path, &["users", "--json"]),
        "the cluster's API does not answer",
    );
}

#[test]
fn a_cluster_that_accepts_but_never_answers_is_a_clear_error_with_status_2() {
    // An API server frozen after accepting the connection: the check must give up, not hang.
    let frozen = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = frozen.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let (connection, _) = frozen.accept().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(30));
        drop(connection);
    });
    let dir = tempfile::tempdir().unwrap();
    let path = kubeconfig(dir.path(), port);
    let started = std::time::Instant::now();
    refused_with_status_2(
        verify(&path, &["users"]),
        "the cluster's API does not answer within 15 s",
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(29));
    drop(held);
}

/// Exit status 2, nothing on stdout (no score), and `reason` on stderr.
fn refused_with_status_2((code, stdout, stderr): (Option<i32>, String, String), reason: &str) {
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains(reason), "{stderr}");
}

/// A kubeconfig whose only cluster is http://127.0.0.1:PORT, with an empty user.
fn kubeconfig(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("config");
    let mut file = std::fs::File::create(&path).unwrap();
    write!(
        file,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\n\
         contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    namespace: lab\n\
         current-context: c\nusers:\n- name: u\n  user: {{}}\n"
    )
    .unwrap();
    path
}
