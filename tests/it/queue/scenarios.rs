//! The scenarios, each written once and run against both backends.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use statelab::queue::model::{Completion, FailOutcome, Failure, Lease, TaskRequest, TaskState};
use statelab::queue::tasks::Registry;

use statelab::sys::Signal;

use super::harness::{Kind, Store, client, counts, get, post, post_raw, wait_until};

/// Flags that make the lessons quick to observe in tests.
const FAST: &[&str] = &[
    "--poll-interval-ms",
    "100",
    "--maintenance-interval-ms",
    "200",
    "--backoff-base-ms",
    "20",
];

fn flags(extra: &[&'static str]) -> Vec<&'static str> {
    let mut all = FAST.to_vec();
    all.extend_from_slice(extra);
    all
}

pub async fn api_validates_input_and_honours_idempotency_keys(kind: Kind) {
    let store = Store::new(kind).await;
    let producer = store.producer();
    producer.wait_ready().await;
    let http = client();

    // Created once; the same key again returns the same task with 200.
    let task = json!({"type": "echo", "payload": {"n": 1}, "idempotency_key": "order-42"});
    let (status, first) = post(&http, &producer.url("/tasks"), &task).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["state"], "queued");
    assert_eq!(first["duplicate"], false);
    assert_eq!(first["attempts"], 0);
    assert_eq!(first["max_attempts"], 5);
    let id = first["id"].as_i64().unwrap();
    let (status, second) = post(&http, &producer.url("/tasks"), &task).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["id"], id);
    assert_eq!(second["duplicate"], true);

    // A batch: the known key and a key repeated inside the batch each resolve to one task.
    let batch = json!([
        {"type": "echo", "payload": {"n": 2}},
        {"type": "echo", "idempotency_key": "order-42"},
        {"type": "sleep", "payload": {"ms": 5}, "idempotency_key": "twice"},
        {"type": "cpu", "payload": {"iterations": 10}, "idempotency_key": "twice"},
        {"type": "fail", "payload": {"times": 1}, "priority": 9, "delay_ms": 60000, "max_attempts": 3},
    ]);
    let (status, body) = post(&http, &producer.url("/tasks/batch"), &batch).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["count"], 5);
    assert_eq!(body["created"], 3);
    assert_eq!(body["duplicates"], 2);
    let tasks = body["tasks"].as_array().unwrap();
    assert_eq!(tasks[1]["id"], id);
    assert_eq!(tasks[1]["duplicate"], true);
    assert_eq!(tasks[3]["id"], tasks[2]["id"]);
    assert_eq!(tasks[3]["duplicate"], true);
    let ids: HashSet<i64> = tasks.iter().map(|t| t["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 4, "three new tasks and the one order-42 names");

    let (status, shown) = get(&http, &producer.url(&format!("/tasks/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["type"], "echo");
    assert_eq!(shown["payload"], json!({"n": 1}));
    assert_eq!(shown["idempotency_key"], "order-42");

    // Bad task JSON: 422 with a clear message, nothing stored.
    let unprocessable = [
        json!({"type": "no-such-type"}),
        json!({"type": 5}),
        json!({"payload": {}}),
        json!({"type": "sleep"}),
        json!({"type": "sleep", "payload": {"ms": "soon"}}),
        json!({"type": "echo", "priority": 10}),
        json!({"type": "echo", "max_attempts": 0}),
        json!({"type": "echo", "delay_ms": -1}),
        json!({"type": "echo", "idempotency_key": ""}),
        json!({"type": "echo", "surprise": true}),
        json!({"type": "echo", "payload": {"blob": "x".repeat(70 * 1024)}}),
    ];
    for body in &unprocessable {
        let (status, answer) = post(&http, &producer.url("/tasks"), body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} -> {answer}"
        );
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    let (status, answer) = post_raw(&http, &producer.url("/tasks"), "{\"type\": \"echo\",").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["error"].is_string());

    // A batch is all or nothing, and says which element is wrong.
    let (status, answer) = post(
        &http,
        &producer.url("/tasks/batch"),
        &json!([{"type": "echo"}, {"type": "sleep", "payload": {"ms": -3}}]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["index"], 1);
    let too_many: Vec<Value> = (0..1001).map(|_| json!({"type": "echo"})).collect();
    let (status, answer) = post(&http, &producer.url("/tasks/batch"), &json!(too_many)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (status, _) = post(&http, &producer.url("/tasks/batch"), &json!([])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, stats) = get(&http, &producer.url("/stats")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["counts"]["queued"], 4, "{stats}");
    assert_eq!(stats["scheduled"], 1, "{stats}");
    for state in ["running", "done", "failed", "dead"] {
        assert_eq!(stats["counts"][state], 0, "{stats}");
    }

    // Ids, unknown tasks, retrying a task that is not dead, listing.
    // The request was read; the id in it is not one a task can have.
    for bad in ["abc", "0", "-4", "99999999999999999999"] {
        let (status, answer) = get(&http, &producer.url(&format!("/tasks/{bad}"))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    let (status, answer) = post(&http, &producer.url("/tasks/abc/retry"), &json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (status, answer) = get(&http, &producer.url("/tasks/987654321")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, answer) = post(
        &http,
        &producer.url(&format!("/tasks/{id}/retry")),
        &json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["state"], "queued");
    let (status, answer) = post(&http, &producer.url("/tasks/987654321/retry"), &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, listed) = get(&http, &producer.url("/tasks?state=queued&limit=10")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["count"], 4, "{listed}");
    // In claim order: runnable tasks oldest first, the delayed one last.
    assert_eq!(listed["tasks"][0]["id"], id, "{listed}");
    assert_eq!(listed["tasks"][3]["priority"], 9, "{listed}");
    for query in ["state=nonsense", "limit=0", "limit=501", "limit=many"] {
        let (status, answer) = get(&http, &producer.url(&format!("/tasks?{query}"))).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {answer}"
        );
    }
    let (status, health) = get(&http, &producer.url("/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "healthy");
}

pub async fn failed_tasks_retry_with_backoff_then_go_dead_and_can_be_requeued(kind: Kind) {
    let store = Store::new(kind).await;
    let producer = store.producer();
    let worker = store.worker(&flags(&[]));
    producer.wait_ready().await;
    worker.wait_ready().await;
    let http = client();

    // Fails once, succeeds on the second attempt.
    let (_, flaky) = post(
        &http,
        &producer.url("/tasks"),
        &json!({"type": "fail", "payload": {"times": 1}, "max_attempts": 3}),
    )
    .await;
    // Fails three times but may try only twice: dead.
    let (_, doomed) = post(
        &http,
        &producer.url("/tasks"),
        &json!({"type": "fail", "payload": {"times": 3}, "max_attempts": 2}),
    )
    .await;
    let flaky = flaky["id"].as_i64().unwrap();
    let doomed = doomed["id"].as_i64().unwrap();

    let task = |id: i64, state: &'static str| {
        let http = http.clone();
        let url = producer.url(&format!("/tasks/{id}"));
        async move {
            let (_, body) = get(&http, &url).await;
            (body["state"] == state).then_some(body)
        }
    };
    let done = wait_until(Duration::from_secs(30), "the flaky task to succeed", || {
        task(flaky, "done")
    })
    .await;
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(done["last_error"], "planned failure 1 of 1", "{done}");
    assert_eq!(done["result"], json!({"failed_before_success": 1}));

    let dead = wait_until(Duration::from_secs(30), "the doomed task to die", || {
        task(doomed, "dead")
    })
    .await;
    assert_eq!(dead["attempts"], 2, "{dead}");
    assert_eq!(dead["attempts_left"], 0, "{dead}");
    assert_eq!(dead["last_error"], "planned failure 2 of 3", "{dead}");
    assert!(dead["finished_at"].is_string());
    let (_, letter) = get(&http, &producer.url("/tasks?state=dead")).await;
    assert_eq!(letter["count"], 1, "{letter}");
    assert_eq!(letter["tasks"][0]["id"], doomed);

    // Re-queued with a fresh budget of two attempts: the third fails, the fourth succeeds.
    let (status, requeued) = post(
        &http,
        &producer.url(&format!("/tasks/{doomed}/retry")),
        &json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{requeued}");
    // Already queued again (a worker may have picked it up in the meantime).
    assert!(
        ["queued", "running", "failed"].contains(&requeued["state"].as_str().unwrap()),
        "{requeued}"
    );
    assert_eq!(requeued["requeued"], 1);
    let revived = wait_until(
        Duration::from_secs(30),
        "the requeued task to succeed",
        || task(doomed, "done"),
    )
    .await;
    assert_eq!(revived["attempts"], 4, "{revived}");
    assert_eq!(revived["requeued"], 1);
    let stats = counts(&http, &producer).await.unwrap();
    assert_eq!(stats, [0, 0, 2, 0, 0]);
}

pub async fn a_stale_acknowledgement_is_fenced(kind: Kind) {
    let store = Store::new(kind).await;
    let backend = store.open().await;
    let registry = Registry::builtin();
    let new = |payload: Value| {
        serde_json::from_str::<TaskRequest>(
            &json!({"type": "echo", "payload": payload}).to_string(),
        )
        .unwrap()
        .validate(&registry)
        .unwrap()
    };
    let enqueued = backend.enqueue(&[new(json!({"n": 1}))]).await.unwrap();
    let id = enqueued[0].id;

    // Worker A claims with a short lease, then stalls past it.
    let short = Duration::from_millis(300);
    let a = backend.claim("worker-a", 10, short).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].attempt, 1);
    let stale = a[0].lease();
    assert!(
        backend
            .claim("worker-b", 10, short)
            .await
            .unwrap()
            .is_empty(),
        "leased tasks are not claimable"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;

    // After expiry and before anyone takes it over, A's late answer is already refused:
    // maintenance has put the task back in the queue.
    let report = backend
        .maintain(statelab::queue::model::Retention {
            done_secs: 86_400,
            dead_secs: 86_400,
        })
        .await
        .unwrap();
    assert_eq!(report.requeued, 1);
    let requeued = backend.get(id).await.unwrap().unwrap();
    assert_eq!(requeued.state, TaskState::Queued);
    assert!(requeued.last_error.unwrap().starts_with("lease expired"));

    // Worker B takes over: attempt 2.
    let b = backend
        .claim("worker-b", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].attempt, 2);
    let current = b[0].lease();

    // Everything A tries now is fenced and changes nothing.
    let late = Completion {
        lease: stale,
        result: json!("from A"),
    };
    assert_eq!(backend.complete(&[late]).await.unwrap(), vec![false]);
    let late_failure = Failure {
        lease: stale,
        error: "A failed".into(),
        backoff_ms: 0,
    };
    assert_eq!(
        backend.fail(&[late_failure]).await.unwrap(),
        vec![FailOutcome::Fenced]
    );
    assert!(
        backend
            .extend(&[stale], Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(backend.release(&[stale]).await.unwrap(), 0);
    let during = backend.get(id).await.unwrap().unwrap();
    assert_eq!(during.state, TaskState::Running);
    assert_eq!(during.attempts, 2);
    assert_eq!(during.worker.as_deref(), Some("worker-b"));
    assert_eq!(during.result, None);

    // B's answer is the one that counts, and A's arriving after it cannot overwrite it.
    assert_eq!(
        backend
            .extend(&[current], Duration::from_secs(30))
            .await
            .unwrap(),
        vec![current]
    );
    let answer = Completion {
        lease: current,
        result: json!("from B"),
    };
    assert_eq!(backend.complete(&[answer]).await.unwrap(), vec![true]);
    let late = Completion {
        lease: stale,
        result: json!("from A"),
    };
    assert_eq!(backend.complete(&[late]).await.unwrap(), vec![false]);
    let stale_again = Completion {
        lease: Lease { id, attempt: 2 },
        result: json!("twice"),
    };
    assert_eq!(
        backend.complete(&[stale_again]).await.unwrap(),
        vec![false],
        "a finished task cannot be finished again"
    );
    let finished = backend.get(id).await.unwrap().unwrap();
    assert_eq!(finished.state, TaskState::Done);
    assert_eq!(finished.result, Some(json!("from B")));
    assert_eq!(finished.attempts, 2);
}

pub async fn sigterm_releases_unfinished_tasks_at_once(kind: Kind) {
    let store = Store::new(kind).await;
    let producer = store.producer();
    let mut worker = store.worker(&flags(&[
        "--lease-ms",
        "60000",
        "--shutdown-grace-ms",
        "300",
        "--concurrency",
        "4",
    ]));
    producer.wait_ready().await;
    worker.wait_ready().await;
    let http = client();
    let batch = json!([
        {"type": "sleep", "payload": {"ms": 60000}},
        {"type": "sleep", "payload": {"ms": 60000}},
        {"type": "echo"},
    ]);
    let (status, _) = post(&http, &producer.url("/tasks/batch"), &batch).await;
    assert_eq!(status, StatusCode::CREATED);
    wait_until(
        Duration::from_secs(20),
        "two running tasks and one done",
        || async {
            counts(&http, &producer)
                .await
                .filter(|c| *c == [0, 2, 1, 0, 0])
        },
    )
    .await;

    worker.signal(Signal::Terminate);
    assert_eq!(worker.wait_exit(Duration::from_secs(20)), Some(0));
    // Released, not left for the 60-second lease to run out; and the release did not use up
    // an attempt.
    assert_eq!(counts(&http, &producer).await.unwrap(), [2, 0, 1, 0, 0]);
    let (_, queued) = get(&http, &producer.url("/tasks?state=queued")).await;
    for task in queued["tasks"].as_array().unwrap() {
        assert_eq!(task["attempts"], 1, "{task}");
        assert_eq!(task["attempts_left"], 5, "{task}");
    }
}

pub async fn worker_without_listen_finishes_running_tasks_on_sigterm(kind: Kind) {
    let store = Store::new(kind).await;
    let producer = store.producer();
    producer.wait_ready().await;
    let worker = store.bare_worker(&flags(&["--shutdown-grace-ms", "15000"]));
    let http = client();
    let batch: Vec<Value> = (0..3)
        .map(|_| json!({"type": "sleep", "payload": {"ms": 800}}))
        .collect();
    let (status, _) = post(&http, &producer.url("/tasks/batch"), &json!(batch)).await;
    assert_eq!(status, StatusCode::CREATED);
    wait_until(Duration::from_secs(30), "three running tasks", || async {
        counts(&http, &producer).await.filter(|c| c[1] == 3)
    })
    .await;
    worker.signal(Signal::Terminate).unwrap();
    let status = worker.wait_exit_blocking(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "worker exit");
    // Within the grace period: finished, not released.
    assert_eq!(counts(&http, &producer).await.unwrap(), [0, 0, 3, 0, 0]);
}

pub async fn ten_thousand_tasks_survive_worker_kills_and_a_backend_restart(kind: Kind) {
    const TASKS: usize = 10_000;
    const CONCURRENCY: u64 = 16;
    let mut store = Store::restartable(kind).await;
    let producer = store.producer();
    producer.wait_ready().await;
    let worker_flags = flags(&[
        "--lease-ms",
        "2000",
        "--concurrency",
        "16",
        "--batch-size",
        "16",
    ]);
    let mut workers: Vec<_> = (0..3).map(|_| store.worker(&worker_flags)).collect();
    for worker in &workers {
        worker.wait_ready().await;
    }
    let http = client();

    // Every tenth task sleeps, so the kills below land on tasks in the middle of their work.
    let mut expected = Vec::with_capacity(TASKS);
    for chunk in 0..TASKS / 1000 {
        let batch: Vec<Value> = (0..1000)
            .map(|j| {
                let n = chunk * 1000 + j;
                if n % 10 == 0 {
                    json!({"type": "sleep", "payload": {"ms": 150 + (n % 7) * 20}, "max_attempts": 50})
                } else {
                    json!({"type": "echo", "payload": {"n": n}, "max_attempts": 50})
                }
            })
            .collect();
        let (status, body) = post(&http, &producer.url("/tasks/batch"), &json!(batch)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        for (j, task) in body["tasks"].as_array().unwrap().iter().enumerate() {
            expected.push((task["id"].as_i64().unwrap(), batch[j].clone()));
        }
    }
    let ids: HashSet<i64> = expected.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), TASKS);

    // kill -9 a worker (and start a replacement) repeatedly; restart the backend in between.
    let mut kills = 0u64;
    for round in 0..5 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let victim = round % workers.len();
        workers[victim].kill();
        kills += 1;
        workers[victim] = store.worker(&worker_flags);
        if round == 2 {
            store.stop();
            // The producer says so clearly while the backend is gone.
            let (status, body) =
                post(&http, &producer.url("/tasks"), &json!({"type": "echo"})).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert!(body["error"].is_string(), "{body}");
            let (status, _) = get(&http, &producer.url("/readyz")).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            tokio::time::sleep(Duration::from_millis(500)).await;
            store.start_again();
        }
    }
    let restarts = 1u64;

    let final_counts = wait_until(Duration::from_secs(120), "every task to finish", || async {
        counts(&http, &producer)
            .await
            .filter(|c| c[2] as usize >= TASKS || c[4] > 0)
    })
    .await;
    assert_eq!(final_counts, [0, 0, TASKS as i64, 0, 0]);

    // Every task done exactly as asked, results from the attempt that owned it.
    let backend = store.open().await;
    let mut redelivered = 0u64;
    let mut extra_attempts = 0u64;
    for (id, request) in &expected {
        let task = backend.get(*id).await.unwrap().expect("task still there");
        assert_eq!(task.state, TaskState::Done, "task {id}: {task:?}");
        assert!(task.attempts >= 1);
        if task.attempts > 1 {
            redelivered += 1;
            extra_attempts += (task.attempts - 1) as u64;
        }
        let want = match request["type"].as_str().unwrap() {
            "echo" => request["payload"].clone(),
            _ => json!({"slept_ms": request["payload"]["ms"]}),
        };
        assert_eq!(task.result.as_ref(), Some(&want), "task {id}");
    }
    // Duplicates are counted and bounded: a killed worker held at most CONCURRENCY tasks; a
    // backend restart can at worst cost every worker's running tasks their lease.
    let bound = (kills + restarts * workers.len() as u64) * CONCURRENCY;
    eprintln!(
        "{kind:?}: {TASKS} tasks done; {redelivered} redelivered ({extra_attempts} extra attempts, bound {bound}) after {kills} kills and {restarts} backend restart"
    );
    assert!(
        redelivered > 0,
        "the kills should have interrupted running tasks"
    );
    assert!(
        extra_attempts <= bound,
        "{extra_attempts} extra attempts > {bound}"
    );

    for worker in &mut workers {
        worker.signal(Signal::Terminate);
        assert_eq!(worker.wait_exit(Duration::from_secs(30)), Some(0));
    }
}
