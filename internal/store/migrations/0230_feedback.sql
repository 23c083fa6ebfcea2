-- Live quality: a client's verdict on an answer (POST /v1/feedback), one
-- per request (the latest wins). The route and the answering target are
-- copied from the request's records so the estimate needs no join.
CREATE TABLE feedback (
    request_id TEXT PRIMARY KEY,    -- the gateway's own id
    key_id     TEXT NOT NULL,
    project_id TEXT NOT NULL,
    route      TEXT NOT NULL,       -- the public model asked for; "" when unknown
    target     TEXT NOT NULL,       -- provider/model that answered
    score      DOUBLE PRECISION NOT NULL,
    created_at BIGINT NOT NULL      -- unix µs
);
CREATE INDEX feedback_created ON feedback (created_at);
