-- Named leases: one daemon at a time holds "leader" and runs the scheduler, the rescuer
-- and retention (docs/architecture.md, "The leader lease"). A lease is held until
-- `expires_at` (epoch seconds) unless its owner renews it; a daemon known to be dead
-- holds none.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at REAL NOT NULL
);
