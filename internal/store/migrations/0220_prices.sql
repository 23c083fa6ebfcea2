-- Prices posted through the admin API (POST /admin/prices): every replica
-- rereads them into its catalog. One row per model and start instant; a
-- second post for the same start replaces the first.
CREATE TABLE prices (
    provider     TEXT NOT NULL,              -- configured provider name
    model        TEXT NOT NULL,
    effective    BIGINT NOT NULL,            -- unix µs; in force from then on
    currency     TEXT NOT NULL,
    input        DOUBLE PRECISION NOT NULL,  -- per 1M tokens
    output       DOUBLE PRECISION NOT NULL,
    cached_input DOUBLE PRECISION,           -- NULL: cached tokens cost input
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (provider, model, effective)
);
