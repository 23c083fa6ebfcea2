-- One row counting changes to keys: gateways cache keys and re-read this
-- single value per request, so a change made anywhere (admin API, CLI,
-- another replica) reaches every cache on its next request.
CREATE TABLE key_epoch (
    id    BIGINT PRIMARY KEY,
    epoch BIGINT NOT NULL
);
INSERT INTO key_epoch (id, epoch) VALUES (1, 0);
