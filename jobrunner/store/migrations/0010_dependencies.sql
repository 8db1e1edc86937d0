-- Jobs that run after others (`submit --after`, `--after-ended`): one row per (job, job it
-- runs after), kept while the dependent job is (status shows them). A blocked job leaves
-- `blocked` in the transaction that ends the last job it waits for (store/dependencies.py).
CREATE TABLE job_deps (
    job_id   INTEGER NOT NULL,   -- the dependent job
    after_id INTEGER NOT NULL,   -- a job it runs after
    need     TEXT    NOT NULL,   -- 'succeeded': that job must succeed; 'ended': only end
    PRIMARY KEY (job_id, after_id)
) WITHOUT ROWID;
-- The jobs waiting on one that just ended.
CREATE INDEX job_deps_after ON job_deps (after_id);
-- `list --state blocked` (sqlite_sql.LIST_INDEXES); the claim's indexes never hold them.
CREATE INDEX jobs_blocked ON jobs (id) WHERE state = 'blocked';

-- 1 once a job has dependents: an end looks for them only then, so jobs nothing runs
-- after (nearly all) cost the end transaction nothing.
ALTER TABLE jobs ADD COLUMN dependents INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER job_deps_of_deleted AFTER DELETE ON jobs
BEGIN
    DELETE FROM job_deps WHERE job_id = OLD.id;
END;
