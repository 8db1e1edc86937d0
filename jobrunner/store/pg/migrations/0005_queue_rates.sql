-- Jobs started per queue in the current window of its `rate`, as SQLite's migration 0011.
-- Claims of a rated queue hold its claim lock (running_in_queues), so the row is never
-- contended.
CREATE TABLE queue_rates (
    queue        text             PRIMARY KEY,
    window_start double precision NOT NULL,
    starts       integer          NOT NULL
);
