"""bench/pg.py's report: the PostgreSQL section of docs/benchmarks.md, from a result."""

from __future__ import annotations

from pathlib import Path

from bench.pg import markdown, write_section

RESULT = {
    "server": "127.0.0.1:5432/postgres",
    "repeat": 4,
    "sizes": {"drain": 20_000, "pickup": 200, "scale": 3_000, "backlog": 1_000_000, "probe": 5_000},
    "drain": {
        "jobrunner": {"median": 2400.0, "spread": [2000.0, 2600.0], "failed": 0},
        "procrastinate": {"median": 300.0, "spread": [280.0, 310.0], "failed": 0},
    },
    "pickup": {
        "jobrunner": {"median": 4.5, "spread": [4.0, 5.0], "failed": 0},
        "procrastinate": {"median": 6.0, "spread": [5.5, 7.0], "failed": 0},
        "jobrunner_p95": {"median": 9.0, "spread": [8.0, 10.0], "failed": 0},
        "procrastinate_p95": {"median": 12.0, "spread": [11.0, 13.0], "failed": 0},
    },
    "scale": {
        "one": {"median": 150.0, "spread": [140.0, 160.0], "failed": 0},
        "three": {"median": 400.0, "spread": [380.0, 420.0], "failed": 0},
    },
    "backlog": {
        "small": {"median": 2000.0, "spread": [1900.0, 2100.0], "failed": 0},
        "large": {"median": None, "runs": [], "failed": 4},
    },
}


def test_each_target_is_judged_from_the_medians() -> None:
    text = markdown(RESULT)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    drain, pickup, scale, backlog = rows[1:]
    assert "2,400.0 jobs/s [2,000.0, 2,600.0]" in drain and "8.0x" in drain
    assert drain.endswith("| missed |")  # 8x and under 4,000 jobs/s
    assert "1.3x" in pickup and pickup.endswith("| met |")  # 4.5 ms <= 5 ms
    assert "2.67x" in scale and scale.endswith("| met |")
    assert "failed" in backlog and backlog.endswith("| n/a |")  # no median: no verdict


def test_the_section_is_replaced_in_place(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nhuey tables\n")
    write_section(str(doc), "first\n")
    write_section(str(doc), "second\n")
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nhuey tables\n")
    assert "second" in text and "first" not in text
    assert text.count("<!-- postgres:begin -->") == 1
