-- Jobs that run after others (`submit --after`, `--after-ended`), as SQLite's migration
-- 0010: one row per (job, job it runs after), deleted with the dependent job.
CREATE TABLE job_deps (
    job_id   bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,  -- the dependent job
    after_id bigint NOT NULL,   -- a job it runs after
    need     text   NOT NULL,   -- 'succeeded': that job must succeed; 'ended': only end
    PRIMARY KEY (job_id, after_id)
);
CREATE INDEX job_deps_after ON job_deps (after_id);
CREATE INDEX jobs_blocked ON jobs (id) WHERE state = 'blocked';

-- true once a job has dependents: an end looks for them only then.
ALTER TABLE jobs ADD COLUMN dependents boolean NOT NULL DEFAULT false;
