-- The console's searches: each filter of the Requests page walks its own
-- index newest first (keyset paging, no scan past the page); the overview's
-- counts read one covering index; a project's spend reads its own rows.
CREATE INDEX request_log_key_time ON request_log (key_id, received_at);
CREATE INDEX request_log_key_verdict_time ON request_log (key_id, verdict, received_at);
CREATE INDEX request_log_model_time ON request_log (model, received_at);
CREATE INDEX request_log_verdict_time ON request_log (verdict, received_at);
CREATE INDEX request_log_status_time ON request_log (status, received_at);
CREATE INDEX request_log_time_verdict ON request_log (received_at, verdict, status, key_id);
CREATE INDEX usage_ledger_project_time ON usage_ledger (project_id, created_at);

-- Requests per hour, key and verdict, kept with the log (same transaction)
-- so the overview counts a month from a few thousand rows, not a million.
CREATE TABLE request_log_hourly (
    hour     BIGINT NOT NULL,   -- unix seconds of the hour's start (UTC)
    key_id   TEXT NOT NULL,
    verdict  TEXT NOT NULL,
    requests BIGINT NOT NULL,
    errors   BIGINT NOT NULL,   -- status ≥ 400
    PRIMARY KEY (hour, key_id, verdict)
);
CREATE INDEX request_log_hourly_key ON request_log_hourly (key_id, hour);
