-- A job's concurrency key (`submit --concurrency-key K`), kept in its options and read
-- from there (a hand-written options that is not JSON has none) by the claim of a queue
-- with `per_key`: at most that many running jobs of the queue share a key
-- (store/sqlite_claims.py). Virtual: computed, never stored.
ALTER TABLE jobs ADD COLUMN concurrency_key TEXT
    AS (CASE WHEN json_valid(options) THEN json_extract(options, '$.concurrency_key') END) VIRTUAL;
-- The keys running in a queue, and how many of each.
CREATE INDEX jobs_running_keys ON jobs (queue, concurrency_key)
    WHERE state = 'running' AND concurrency_key IS NOT NULL;
