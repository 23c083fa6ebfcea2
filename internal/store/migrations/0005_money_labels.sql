-- The ledger is keyed on tidegate's own request id (random, 128 bits); a
-- client's x-request-id is only a label, kept to search by. Images are
-- billed per image. usage_flags names usage an upstream reported that could
-- not be true (negative, past the per-attempt bound), clamped before billing.
ALTER TABLE usage_ledger ADD COLUMN client_request_id TEXT NOT NULL DEFAULT '';
ALTER TABLE usage_ledger ADD COLUMN images BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_ledger ADD COLUMN usage_flags TEXT NOT NULL DEFAULT '';
CREATE INDEX usage_ledger_client_request ON usage_ledger (client_request_id);

ALTER TABLE request_log ADD COLUMN client_request_id TEXT NOT NULL DEFAULT '';
CREATE INDEX request_log_client_request ON request_log (client_request_id);
