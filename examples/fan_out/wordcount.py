"""Fan-out / fan-in: count the words of a large text in parallel parts, then merge.

`split` cuts the text into parts, submits a `count` job per part and one `merge` job
that runs after all of them (`after=`): the merge is blocked until every part has
succeeded, and starts the moment the last one does. Were a part to end dead, the merge
would be cancelled, saying which part.
"""

from __future__ import annotations

import collections
import json
import random
from pathlib import Path

from jobrunner import Client, current_job, progress

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
]


def make_text(path: str, lines: int) -> int:
    """A deterministic sample text: `lines` lines of words drawn with a Zipf-like skew."""
    rng = random.Random(7)
    weights = [1 / (rank + 1) for rank in range(len(WORDS))]
    with open(path, "w") as f:
        for _ in range(lines):
            f.write(" ".join(rng.choices(WORDS, weights, k=12)) + "\n")
    return lines


def split(path: str, parts: int) -> dict[str, object]:
    """Cut `path` into `parts` files, one count job each, and the merge after them all."""
    lines = Path(path).read_text().splitlines(keepends=True)
    size = -(-len(lines) // parts)
    client = Client()  # the daemon's database: this job's working directory's
    names = []
    for n in range(parts):
        name = f"{path}.part{n}"
        Path(name).write_text("".join(lines[n * size : (n + 1) * size]))
        names.append(name)
    counts = [client.submit("wordcount:count", [name]) for name in names]
    merge = client.submit("wordcount:merge", [names], after=counts)
    print(f"job {current_job().id}: {parts} parts, merge is job {merge.id}")
    return {"parts": [h.id for h in counts], "merge": merge.id}


def count(part: str) -> int:
    """Count one part's words into PART.json; returns how many words it had."""
    words: collections.Counter[str] = collections.Counter()
    text = Path(part).read_text().splitlines()
    for i, line in enumerate(text):
        words.update(line.split())
        if i % 5000 == 0:
            progress(i / len(text), part)
    Path(f"{part}.json").write_text(json.dumps(words))
    return sum(words.values())


def merge(parts: list[str]) -> dict[str, object]:
    """Add up the parts' counts: the five commonest words and the total."""
    total: collections.Counter[str] = collections.Counter()
    for part in parts:
        total.update(json.loads(Path(f"{part}.json").read_text()))
    return {"words": sum(total.values()), "top": total.most_common(5)}
