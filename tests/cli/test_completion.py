"""Shell completion: bash's completion function, loaded from `jobrunner completion bash`,
run on partial command lines as a TAB would run it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import cli

BIN = Path(sys.executable).parent  # where `jobrunner` is installed beside this Python

DRIVER = r"""
source "$1"
line="$2"
COMP_LINE="$line"; COMP_POINT=${#line}; COMP_TYPE=9
read -ra COMP_WORDS <<< "$line"
[[ "$line" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
_python_argcomplete jobrunner "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


@pytest.fixture
def bash_completion(tmp_path: Path) -> Path:
    if shutil.which("bash") is None:
        pytest.skip("no bash here")
    res = cli(tmp_path, tmp_path / "jobs.db", "completion", "bash")
    assert res.code == 0, res.err
    script = tmp_path / "jobrunner.bash"
    script.write_text(res.out)
    return script


def complete(script: Path, line: str, cwd: Path) -> list[str]:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    env.pop("JOBRUNNER_CONFIG", None)
    res = subprocess.run(
        ["bash", "-c", DRIVER, "driver", str(script), line],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return [word.strip() for word in res.stdout.splitlines() if word.strip()]


def test_bash_completes_commands_options_and_actions(bash_completion: Path, tmp_path: Path) -> None:
    assert complete(bash_completion, "jobrunner su", tmp_path) == ["submit"]
    assert set(complete(bash_completion, "jobrunner d", tmp_path)) == {"daemon", "dlq"}
    assert {"stop", "reload", "--workers", "--log-file"} <= set(
        complete(bash_completion, "jobrunner daemon ", tmp_path)
    )
    assert complete(bash_completion, "jobrunner list --li", tmp_path) == ["--limit"]


def test_bash_completes_states_in_a_list_and_the_configs_tasks(
    bash_completion: Path, tmp_path: Path
) -> None:
    assert complete(bash_completion, "jobrunner list --state queued,ru", tmp_path) == [
        "queued,running"
    ]
    (tmp_path / "jobrunner.toml").write_text(
        '[tasks.nightly-report]\ncommand = ["true"]\n[tasks.thumbnail]\ncommand = ["true"]\n'
    )
    assert complete(bash_completion, "jobrunner submit ni", tmp_path) == ["nightly-report"]
    assert {"nightly-report", "thumbnail", "--queue"} <= set(
        complete(bash_completion, "jobrunner submit ", tmp_path)
    )


def test_zsh_and_fish_scripts_and_an_unknown_shell(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    zsh = cli(tmp_path, db, "completion", "zsh")
    assert zsh.code == 0 and zsh.out.startswith("#compdef jobrunner")
    fish = cli(tmp_path, db, "completion", "fish")
    assert fish.code == 0 and "complete --command jobrunner" in fish.out
    res = cli(tmp_path, db, "completion", "tcsh")
    assert res.code == 2 and "invalid choice: 'tcsh'" in res.err
    assert not db.exists()
