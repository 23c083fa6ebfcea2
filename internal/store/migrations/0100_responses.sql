-- Stored responses of /v1/responses: the conversation each one answered
-- (its input items, history included) and the response, owned by a
-- project ('' for the master key), kept until expires_at.
CREATE TABLE responses (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,   -- unix µs
    expires_at  BIGINT NOT NULL,   -- unix µs
    input       TEXT NOT NULL,     -- JSON array of items
    response    TEXT NOT NULL      -- the Response object, JSON
);
CREATE INDEX responses_expiry ON responses (expires_at);
