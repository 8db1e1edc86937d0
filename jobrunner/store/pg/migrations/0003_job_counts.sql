-- How many jobs are in each (state, queue), for `status`, `top`, /metrics and the
-- dashboard without counting a million rows (docs/architecture.md, "PostgreSQL").
-- Statement triggers append what each statement changed as deltas: appends take no row
-- lock, so daemons claiming and ending at once never wait on a shared counter (or
-- deadlock over two). A reader sums the deltas; the leader folds them into one row per
-- (state, queue) now and then (job_counts_fold), which keeps that sum small.
CREATE TABLE job_count_deltas (  -- no key, no index: an append costs a heap write alone
    state text   NOT NULL,
    queue text   NOT NULL,
    n     bigint NOT NULL
);

INSERT INTO job_count_deltas (state, queue, n)
SELECT state, queue, count(*) FROM jobs GROUP BY state, queue;

CREATE FUNCTION job_counts_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (state, queue, n)
    SELECT state, queue, count(*) FROM added GROUP BY state, queue;
    RETURN NULL;
END $$;

CREATE FUNCTION job_counts_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (state, queue, n)
    VALUES (OLD.state, OLD.queue, -1), (NEW.state, NEW.queue, 1);
    RETURN NULL;
END $$;

CREATE FUNCTION job_counts_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (state, queue, n)
    SELECT state, queue, -count(*) FROM removed GROUP BY state, queue;
    RETURN NULL;
END $$;

CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs
REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION job_counts_added();
-- A row trigger, where most updates (progress, a cancel request) move nothing: its WHEN
-- skips them without a call.
CREATE TRIGGER job_counts_update AFTER UPDATE OF state, queue ON jobs FOR EACH ROW
WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.queue IS DISTINCT FROM NEW.queue)
EXECUTE FUNCTION job_counts_moved();
CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs
REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION job_counts_removed();
