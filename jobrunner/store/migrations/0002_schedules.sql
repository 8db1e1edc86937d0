-- One row per schedule a daemon has seen: where its timetable stands, and pause.
CREATE TABLE schedules (
    name      TEXT PRIMARY KEY,
    last_fire REAL,                       -- the latest fire time accounted for (fired or skipped)
    paused    INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);

-- One fire, one job (invariant 6): a second insert for the same fire does nothing.
CREATE UNIQUE INDEX jobs_fire ON jobs (schedule, scheduled_for) WHERE schedule IS NOT NULL;
