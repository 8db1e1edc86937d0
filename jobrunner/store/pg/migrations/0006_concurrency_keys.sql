-- A job's concurrency key, as SQLite's migration 0012: read from its options by the claim
-- of a queue with `per_key`. Stored (PostgreSQL computes generated columns on write).
ALTER TABLE jobs ADD COLUMN concurrency_key text
    GENERATED ALWAYS AS (options::jsonb ->> 'concurrency_key') STORED;
CREATE INDEX jobs_running_keys ON jobs (queue, concurrency_key)
    WHERE state = 'running' AND concurrency_key IS NOT NULL;
