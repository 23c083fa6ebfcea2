-- Portable across SQLite and PostgreSQL: BIGINT unix microseconds for times,
-- BIGINT micro-units (1e-6) for money, TEXT JSON for lists, no defaults that
-- call functions.

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE projects (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,   -- hex SHA-256 of the key; the key is never stored
    prefix      TEXT NOT NULL,          -- shown in lists: "tg-AbCd"
    name        TEXT NOT NULL,
    project_id  TEXT NOT NULL REFERENCES projects (id),
    models      TEXT NOT NULL,          -- JSON array; empty: every model
    rpm         BIGINT NOT NULL,        -- 0: no limit
    tpm         BIGINT NOT NULL,
    max_streams BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,        -- 0: never
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT NOT NULL         -- 0: active
);

CREATE TABLE budgets (
    id       TEXT PRIMARY KEY,
    scope    TEXT NOT NULL,             -- key | project
    scope_id TEXT NOT NULL,
    currency TEXT NOT NULL,             -- CNY | USD
    amount   BIGINT NOT NULL,           -- micro-units
    period   TEXT NOT NULL,             -- day | month | total
    soft     BIGINT NOT NULL,           -- 1: alert, never reject
    UNIQUE (scope, scope_id)
);

-- One row per budget and period: what is spent and what is held.
CREATE TABLE budget_windows (
    budget_id    TEXT NOT NULL REFERENCES budgets (id),
    period_start BIGINT NOT NULL,
    spent        BIGINT NOT NULL,
    reserved     BIGINT NOT NULL,
    PRIMARY KEY (budget_id, period_start)
);

-- A hold on budgets for one request in flight; settled or released exactly once.
CREATE TABLE reservations (
    id         TEXT PRIMARY KEY,
    holds      TEXT NOT NULL,           -- JSON [{budget_id, period_start, amount}]
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX reservations_expiry ON reservations (expires_at);

-- One record per upstream attempt that consumed tokens, written once.
CREATE TABLE usage_ledger (
    request_id         TEXT NOT NULL,
    attempt            BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    key_id             TEXT NOT NULL,
    project_id         TEXT NOT NULL,
    provider           TEXT NOT NULL,
    model              TEXT NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    cached_tokens      BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens   BIGINT NOT NULL,
    cost               BIGINT NOT NULL, -- micro-units of currency
    currency           TEXT NOT NULL,
    priced             BIGINT NOT NULL, -- 0: no price in the catalog
    estimated          BIGINT NOT NULL, -- 1: tokens estimated, the provider sent no usage
    status             TEXT NOT NULL,   -- ok | error | canceled
    latency_us         BIGINT NOT NULL,
    price_ref          TEXT NOT NULL,   -- the catalog entry that priced it
    PRIMARY KEY (request_id, attempt)
);
CREATE INDEX usage_ledger_time ON usage_ledger (created_at);

CREATE TABLE credentials (
    id         TEXT PRIMARY KEY,
    provider   TEXT NOT NULL,
    name       TEXT NOT NULL,
    ciphertext TEXT NOT NULL,           -- base64 AES-GCM, bound to id and provider
    created_at BIGINT NOT NULL
);
CREATE INDEX credentials_provider ON credentials (provider);
