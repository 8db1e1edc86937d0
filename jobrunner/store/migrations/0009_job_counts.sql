-- How many jobs are in each (state, queue), kept by triggers as jobs are added, change
-- state or queue, and are deleted: `status`, `top`, /metrics and the dashboard read it
-- instead of counting a million rows (docs/architecture.md, "Storage").
CREATE TABLE job_counts (
    state TEXT    NOT NULL,
    queue TEXT    NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (state, queue)
) WITHOUT ROWID;

INSERT INTO job_counts (state, queue, n)
SELECT state, queue, count(*) FROM jobs GROUP BY state, queue;

CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_counts (state, queue, n) VALUES (NEW.state, NEW.queue, 1)
    ON CONFLICT (state, queue) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER job_counts_update AFTER UPDATE OF state, queue ON jobs
WHEN OLD.state IS NOT NEW.state OR OLD.queue IS NOT NEW.queue
BEGIN
    INSERT INTO job_counts (state, queue, n) VALUES (OLD.state, OLD.queue, -1), (NEW.state, NEW.queue, 1)
    ON CONFLICT (state, queue) DO UPDATE SET n = n + excluded.n;
END;

CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs
BEGIN
    UPDATE job_counts SET n = n - 1 WHERE state = OLD.state AND queue = OLD.queue;
END;
