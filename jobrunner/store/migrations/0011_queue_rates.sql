-- Jobs started per queue in the current window of its `rate` ([queues.NAME] rate =
-- "10/s"), across every daemon: each claim adds what it took from the queue and takes no
-- more than the rate leaves (store/sqlite_claims.py, within_limits). One row per rated
-- queue, touched only by claims of that queue.
CREATE TABLE queue_rates (
    queue        TEXT    PRIMARY KEY,
    window_start REAL    NOT NULL,   -- epoch seconds: a multiple of the rate's period
    starts       INTEGER NOT NULL    -- jobs claimed from the queue since window_start
) WITHOUT ROWID;
