-- The console's searches: each filter of the Requests page walks its own
-- index newest first (keyset paging, no scan past the page); the overview's
-- counts read one covering index; a project's spend reads its own rows.
CREATE INDEX request_log_key_time ON request_log (key_id, received_at);
CREATE INDEX request_log_model_time ON request_log (model, received_at);
CREATE INDEX request_log_verdict_time ON request_log (verdict, received_at);
CREATE INDEX request_log_status_time ON request_log (status, received_at);
CREATE INDEX request_log_time_verdict ON request_log (received_at, verdict, status);
CREATE INDEX usage_ledger_project_time ON usage_ledger (project_id, created_at);
