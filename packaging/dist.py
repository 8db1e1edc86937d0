"""`make dist`: dist/jobrunner, one executable file that runs every command on a Linux
machine with no Python installed.

PyInstaller freezes packaging/entry.py into a folder (an interpreter, jobrunner with its
dependencies and package data, the whole standard library so that Python tasks can import
any of it); that folder, gzipped, goes after a short sh script (packaging/stub.sh) that
unpacks it once per machine and user into a cache folder and executes it from there. A
PyInstaller one-file build unpacks itself to a temporary folder on every start, which costs
far more than the command (docs/deploying.md has the figures).

Run from the repository: python3 packaging/dist.py [--out dist/jobrunner]. It makes its own
virtualenv under build/ (PyInstaller and jobrunner[postgres] from the package index).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
VENV = BUILD / "dist-venv"
PYINSTALLER = "pyinstaller>=6.10,<7"

# Not bundled: the standard library's GUI, test and developer tools, which no job needs.
STDLIB_LEFT_OUT = ("tkinter", "turtle", "turtledemo", "idlelib", "test", "lib2to3", "ensurepip",
                   "pydoc_data", "venv", "this", "antigravity", "distutils")  # fmt: skip
# Never bundled: what the build's virtualenv has but nothing imports; their PyInstaller
# start-up hooks (pkg_resources scans every distribution) would cost each command ~0.2 s.
EXCLUDED = (
    "setuptools",
    "pkg_resources",
    "distutils",
    "_distutils_hack",
    "tkinter",
    "_tkinter",
    "pip",
)


def run(*argv: str | Path, **kwargs: object) -> None:
    subprocess.run([str(a) for a in argv], check=True, **kwargs)  # type: ignore[call-overload]


def virtualenv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        run(sys.executable, "-m", "venv", VENV)
    run(python, "-m", "pip", "install", "-q", PYINSTALLER, f"{REPO}[postgres]")
    return python


def stdlib_modules(python: Path) -> list[str]:
    """Every top-level module of the build interpreter's standard library we bundle."""
    code = "import sys; print('\\n'.join(sorted(sys.stdlib_module_names)))"
    names = subprocess.run(
        [str(python), "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    return [n for n in names if not n.startswith("_") and n not in STDLIB_LEFT_OUT]


def freeze(python: Path) -> Path:
    """The PyInstaller folder build; returns the folder."""
    work = BUILD / "pyinstaller"
    argv: list[str | Path] = [
        python, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
        "--onedir", "--name", "jobrunner",
        "--distpath", work / "dist", "--workpath", work / "work", "--specpath", work,
        # SQL files, templates, static files; modules imported by name at run time
        "--collect-all", "jobrunner",
        "--collect-submodules", "uvicorn", "--collect-submodules", "rich",
        "--collect-submodules", "psycopg", "--collect-submodules", "croniter",
    ]  # fmt: skip
    for name in EXCLUDED:
        argv += ["--exclude-module", name]
    for name in stdlib_modules(python):
        argv += ["--collect-submodules", name]
    argv.append(REPO / "packaging" / "entry.py")
    run(*argv, cwd=REPO)
    return work / "dist" / "jobrunner"


def payload(folder: Path) -> bytes:
    """The folder as a gzipped tar, its members in a fixed order with fixed times (the
    same build gives the same bytes, hence the same cache folder)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(folder.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if info.isfile():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def one_file(body: bytes, out: Path, version: str) -> None:
    digest = hashlib.sha256(body).hexdigest()[:16]
    template = (REPO / "packaging" / "stub.sh").read_text()
    template = template.replace("@ID@", digest).replace("@VERSION@", version)
    offset = 0
    while True:  # the offset's own digits are part of the stub's length
        stub = template.replace("@OFFSET@", str(offset)).encode()
        if offset == len(stub) + 1:
            break
        offset = len(stub) + 1
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(stub + body)
    tmp.chmod(0o755)
    tmp.replace(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "dist" / "jobrunner"))
    args = parser.parse_args()
    started = time.monotonic()
    python = virtualenv()
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('jobrunner'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    folder = freeze(python)
    out = Path(args.out)
    one_file(payload(folder), out, version)
    size = out.stat().st_size
    print(
        f"{out}: {size / 2**20:.1f} MiB, jobrunner {version}, "
        f"built in {time.monotonic() - started:.0f}s",
        file=sys.stderr,
    )
    os.sync()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
