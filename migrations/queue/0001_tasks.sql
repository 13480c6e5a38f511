-- The task queue (statelab queue / statelab worker). One row per task; workers claim rows
-- with FOR UPDATE SKIP LOCKED and hold them with a lease. See docs/queue.md.
CREATE TABLE queue_tasks (
    id              bigserial PRIMARY KEY,
    kind            text        NOT NULL,
    payload         jsonb       NOT NULL,
    state           text        NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'running', 'done', 'failed', 'dead')),
    priority        smallint    NOT NULL DEFAULT 0,
    -- Claims so far. Never decreases: it is the fencing token of the current attempt.
    attempts        integer     NOT NULL DEFAULT 0,
    -- attempts - attempt_base is what counts against max_attempts (a manual retry and a
    -- release on shutdown move the base, so they do not use up the budget).
    attempt_base    integer     NOT NULL DEFAULT 0,
    max_attempts    integer     NOT NULL CHECK (max_attempts > 0),
    requeued        integer     NOT NULL DEFAULT 0,
    idempotency_key text,
    last_error      text,
    result          jsonb,
    worker          text,
    lease_until     timestamptz,
    run_at          timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
) WITH (
    -- Rows are updated a few times each and deleted after the retention period: leave room
    -- for updates in place and vacuum early, so the table and its indexes do not bloat.
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02
);

-- Claiming: runnable tasks in claim order. Small, because only waiting tasks are in it.
CREATE INDEX queue_tasks_runnable ON queue_tasks (priority DESC, run_at, id)
    WHERE state IN ('queued', 'failed');
-- Finding expired leases.
CREATE INDEX queue_tasks_leases ON queue_tasks (lease_until) WHERE state = 'running';
-- Retention pruning and recent throughput.
CREATE INDEX queue_tasks_done ON queue_tasks (finished_at) WHERE state = 'done';
CREATE INDEX queue_tasks_dead ON queue_tasks (finished_at) WHERE state = 'dead';
-- The same idempotency key twice creates one task.
CREATE UNIQUE INDEX queue_tasks_idempotency_key ON queue_tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Idle workers LISTEN on this channel; one notification per INSERT statement (not per row).
CREATE FUNCTION queue_tasks_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('statelab_queue', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER queue_tasks_notify AFTER INSERT ON queue_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION queue_tasks_notify();
