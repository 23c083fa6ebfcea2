-- The request log: one row per API request, its timeline and verdict as a
-- JSON record (bodies only when configured, redacted). Pruned by age.
CREATE TABLE request_log (
    id          TEXT NOT NULL,
    received_at BIGINT NOT NULL,   -- unix µs
    endpoint    TEXT NOT NULL,
    model       TEXT NOT NULL,
    route       TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    status      BIGINT NOT NULL,
    verdict     TEXT NOT NULL,
    total_us    BIGINT NOT NULL,
    record      TEXT NOT NULL,
    PRIMARY KEY (id, received_at)
);
CREATE INDEX request_log_received ON request_log (received_at);
