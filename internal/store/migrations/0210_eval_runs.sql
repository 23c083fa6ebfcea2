-- Eval runs: a suite over candidate models, worked by whoever holds the
-- run's lease; each item×model result is written once (its primary key),
-- so a run resumed after a crash grades only what is not done. Ledger rows
-- carry a purpose, so eval spend is told apart from traffic.
CREATE TABLE eval_runs (
    id          TEXT PRIMARY KEY,
    suite       TEXT NOT NULL,      -- the suite's name
    suite_id    TEXT NOT NULL,
    models      TEXT NOT NULL,      -- JSON ["provider/model", …]
    concurrency BIGINT NOT NULL,
    origin      TEXT NOT NULL,      -- cli | api
    status      TEXT NOT NULL,      -- running | done | failed
    error       TEXT NOT NULL,
    items       BIGINT NOT NULL,
    lease_owner TEXT NOT NULL,
    lease_until BIGINT NOT NULL,    -- unix µs; 0: free
    created_at  BIGINT NOT NULL,
    finished_at BIGINT NOT NULL
);
CREATE INDEX eval_runs_suite ON eval_runs (suite, created_at);
CREATE TABLE eval_results (
    run_id           TEXT NOT NULL,
    item_id          TEXT NOT NULL,
    model            TEXT NOT NULL,
    request_id       TEXT NOT NULL,  -- the ledger's key for the candidate's call
    judge_label      TEXT NOT NULL,  -- the client label on the judge's calls, when one graded
    score            DOUBLE PRECISION NOT NULL,
    answer           TEXT NOT NULL,
    reason           TEXT NOT NULL,
    error            TEXT NOT NULL,
    latency_us       BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (run_id, item_id, model)
);
ALTER TABLE usage_ledger ADD COLUMN purpose TEXT NOT NULL DEFAULT '';
