-- Jobs' output kept where every host reads it (docs/architecture.md, "PostgreSQL"): each
-- piece a daemon ships lies at its byte offset in the job's output, so a reader asks for
-- "from offset N on" as it does of a file. (0001's table was never written: replaced.)
DROP TABLE job_output;
CREATE TABLE job_output (
    job_id  bigint  NOT NULL,
    at      bigint  NOT NULL,   -- the offset of data's first byte in the job's output
    data    bytea   NOT NULL,
    PRIMARY KEY (job_id, at)
);
