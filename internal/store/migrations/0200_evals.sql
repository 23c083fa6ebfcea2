-- Eval suites: a named list of items and a default grader. Items are kept
-- as their JSON, in file order (seq); a suite is stored or replaced whole,
-- in one transaction.
CREATE TABLE eval_suites (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    grader     TEXT NOT NULL,      -- JSON grader spec
    items      BIGINT NOT NULL,
    tags       TEXT NOT NULL,      -- JSON: items per tag
    created_at BIGINT NOT NULL     -- unix µs
);
CREATE TABLE eval_items (
    suite_id TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    id       TEXT NOT NULL,
    body     TEXT NOT NULL,        -- the item's JSON
    PRIMARY KEY (suite_id, seq),
    UNIQUE (suite_id, id)
);
