-- jobs: one row per job; the state machine is in jobrunner/lifecycle.py.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after prune
    state            TEXT    NOT NULL,
    task             TEXT,                 -- module:function, or NULL for a command
    command          TEXT,                 -- JSON argv, or NULL for a task
    args             TEXT    NOT NULL,     -- JSON array
    kwargs           TEXT    NOT NULL,     -- JSON object
    queue            TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,   -- attempts started (claims)
    max_attempts     INTEGER NOT NULL,
    retries          INTEGER NOT NULL,     -- retries per round; dlq retry adds retries + 1
    backoff          REAL    NOT NULL,
    timeout          REAL,
    result           TEXT,                 -- JSON
    error            TEXT,
    created_at       REAL    NOT NULL,     -- epoch seconds, UTC
    run_at           REAL    NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    key              TEXT,
    schedule         TEXT,
    scheduled_for    REAL,
    owner            TEXT,                 -- the daemon holding the claim
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    options          TEXT                  -- JSON object or NULL: cwd, limits
);

-- The claim walks this index in order, so its cost does not grow with the backlog.
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at, id)
    WHERE state IN ('queued', 'scheduled', 'retrying');
-- When the next delayed job or retry falls due; queued jobs never enter it.
CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN ('scheduled', 'retrying');
CREATE UNIQUE INDEX jobs_key ON jobs (key) WHERE key IS NOT NULL;
CREATE INDEX jobs_running ON jobs (owner) WHERE state = 'running';
CREATE INDEX jobs_ended ON jobs (state, finished_at)
    WHERE state IN ('succeeded', 'dead', 'cancelled');

-- One row per ended attempt: the history `status ID` and `dlq show` print.
CREATE TABLE attempts (
    job_id      INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,
    started_at  REAL,
    finished_at REAL    NOT NULL,
    error       TEXT,
    traceback   TEXT,
    owner       TEXT
);
CREATE INDEX attempts_job ON attempts (job_id);

-- Daemons alive (or that died without unregistering, until rescued).
CREATE TABLE daemons (
    id           TEXT PRIMARY KEY,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   REAL    NOT NULL,
    heartbeat_at REAL    NOT NULL,
    lease_until  REAL    NOT NULL,
    workers      INTEGER NOT NULL,
    queues       TEXT                       -- JSON array, NULL for all
);
