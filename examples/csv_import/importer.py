"""Import a large CSV into an SQLite table, reporting progress as it goes (`jobrunner
status ID` and the dashboard show the bar; `jobrunner logs ID --follow` the lines)."""

from __future__ import annotations

import csv
import os
import random
import sqlite3

from jobrunner import progress

BATCH = 10_000


def make_sample(path: str, rows: int = 200_000) -> str:
    """A CSV of sales to import: id, day, region, amount."""
    rng = random.Random(7)
    regions = ["north", "south", "east", "west"]
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "day", "region", "amount"])
        for n in range(rows):
            day = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            out.writerow([n, day, rng.choice(regions), f"{rng.uniform(1, 500):.2f}"])
    return path


def import_csv(path: str, database: str, table: str = "sales") -> dict:
    """Every row of `path` into `table` of the SQLite file `database`, in one transaction
    (a job that dies halfway leaves the table as it was, and its retry starts clean)."""
    size = os.path.getsize(path)
    db = sqlite3.connect(database)
    rows = 0
    with open(path, newline="") as f, db:
        reader = csv.reader(f)
        header = next(reader)
        columns = ", ".join(f'"{c}"' for c in header)
        db.execute(f'DROP TABLE IF EXISTS "{table}"')
        db.execute(f'CREATE TABLE "{table}" ({columns})')
        insert = f'INSERT INTO "{table}" VALUES ({", ".join("?" for _ in header)})'
        batch = []
        for row in reader:
            batch.append(row)
            if len(batch) == BATCH:
                db.executemany(insert, batch)
                rows += len(batch)
                batch.clear()
                progress(f.buffer.tell() / size, f"{rows:,} rows")  # read ahead: near enough
        db.executemany(insert, batch)
        rows += len(batch)
    progress(1.0, f"{rows:,} rows")
    total = db.execute(f'SELECT round(sum(amount), 2) FROM "{table}"').fetchone()[0]
    db.close()
    print(f"imported {rows} rows into {database}:{table}")
    return {"rows": rows, "table": table, "total_amount": total}
