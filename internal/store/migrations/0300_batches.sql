-- The Batch API (internal/batch): files (bytes in files.Storage), batches,
-- and each batch's items with their results, written once (state done).
CREATE TABLE files (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,      -- '' for the master key
    key_id     TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    filename   TEXT NOT NULL,
    bytes      BIGINT NOT NULL,
    status     TEXT NOT NULL,
    created_at BIGINT NOT NULL     -- unix µs
);
CREATE INDEX files_project ON files (project_id, created_at);
CREATE TABLE batches (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL,
    key_id            TEXT NOT NULL,
    models            TEXT NOT NULL,   -- JSON array: the key's allowlist ([] any)
    endpoint          TEXT NOT NULL,
    input_file_id     TEXT NOT NULL,
    output_file_id    TEXT NOT NULL,
    error_file_id     TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    metadata          TEXT NOT NULL,   -- JSON object
    status            TEXT NOT NULL,
    errors            TEXT NOT NULL,   -- JSON array of line errors
    created_at        BIGINT NOT NULL, -- unix µs, as every time below (0: not yet)
    in_progress_at    BIGINT NOT NULL,
    finalizing_at     BIGINT NOT NULL,
    completed_at      BIGINT NOT NULL,
    failed_at         BIGINT NOT NULL,
    expired_at        BIGINT NOT NULL,
    cancelling_at     BIGINT NOT NULL,
    cancelled_at      BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL
);
CREATE INDEX batches_project ON batches (project_id, created_at);
CREATE INDEX batches_status ON batches (status);
CREATE TABLE batch_items (
    batch_id    TEXT NOT NULL,
    line        BIGINT NOT NULL,
    custom_id   TEXT NOT NULL,
    body        TEXT NOT NULL,
    state       TEXT NOT NULL,        -- pending, running, done
    attempts    BIGINT NOT NULL,
    request_id  TEXT NOT NULL,
    status_code BIGINT NOT NULL,      -- 0: no response
    response    TEXT NOT NULL,
    err_code    TEXT NOT NULL,
    err_message TEXT NOT NULL,
    PRIMARY KEY (batch_id, line),
    UNIQUE (batch_id, custom_id)
);
CREATE INDEX batch_items_state ON batch_items (batch_id, state);
