"""Where a daemon keeps the processes its jobs start, so that it can end all of them.

A process group is not enough: `setsid`, `start_new_session=True` or any daemonizing
tool leaves it. Two ways to find such processes again (docs/architecture.md, "Ending a
job's processes"):

- A cgroup v2 per worker, when the daemon can make them (root, or a delegated
  hierarchy): `<own cgroup>/jobrunner-<pidns>-<pid>-<start>/w<worker pid>`. The worker
  is moved in before it gets its first job, so everything a job starts is in it,
  whatever its session; `cgroup.kill` ends them all at once. The daemon's cgroup is
  named after the pid namespace, the pid and the start time of the daemon, so a later
  daemon can tell that its owner is gone and end what it left (sweep_stale).
- Without cgroups: the supervisor is a subreaper (as each worker is), so the job
  processes of a dead worker become its children, whatever their session; it ends
  them and their descendants. A live worker's job processes are its descendants.
  After kill -9 of the daemon they go to init: nothing can find them then.

Nothing here blocks: a cgroup that is not empty yet (its processes still exiting) is
removed on a later try.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import signal

from jobrunner.node import pid_alive

log = logging.getLogger("jobrunner.daemon")

NAME_PREFIX = "jobrunner-"
_NAME = re.compile(r"^jobrunner-(\d+)-(\d+)-(\d+)$")  # pidns inode, pid, start time
PR_SET_CHILD_SUBREAPER = 36
KILL_ROUNDS = 20  # bounded: a tree that keeps forking faster than this is killed is absurd
REMOVE_TRIES = 1000  # a killed cgroup not empty after this many loop steps is left


# -- finding our cgroup --------------------------------------------------------------------


def own_cgroup_dir() -> str | None:
    """This process's cgroup v2 directory, or None without a mounted cgroup2."""
    try:
        with open("/proc/self/cgroup") as f:
            own = next((line[3:].rstrip("\n") for line in f if line.startswith("0::")), None)
        with open("/proc/self/mountinfo") as f:
            mounts = f.read().splitlines()
    except OSError:
        return None
    if own is None or not own.startswith("/"):
        return None
    for line in mounts:
        fields = line.split(" ")
        try:
            fstype = fields[fields.index("-") + 1]
        except (ValueError, IndexError):
            continue
        if fstype != "cgroup2":
            continue
        root, mount_point = _unescape(fields[3]), _unescape(fields[4])
        # The mount shows the hierarchy from `root` (a bind mount or another cgroup
        # namespace): our path must lie below it.
        if root == "/":
            rest = own
        elif own == root or own.startswith(root + "/"):
            rest = own[len(root) :]
        else:
            continue
        path = mount_point.rstrip("/") + rest.rstrip("/")
        if os.path.isdir(path):
            return path
    return None


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _start_time(pid: int) -> int | None:
    """A process's start time in clock ticks since boot: with the pid, who it is."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2 :].split()[19])


def _daemon_gone(pid: int, started: int) -> bool:
    """Whether the daemon that made a cgroup is gone: its pid is free, or used by a
    process that started at another time. One we cannot see (hidepid) is not gone."""
    now = _start_time(pid)
    if now is not None:
        return now != started
    return not pid_alive(pid)


def _pid_namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def daemon_cgroup_name(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{NAME_PREFIX}{_pid_namespace()}-{pid}-{_start_time(pid) or 0}"


# -- one cgroup ----------------------------------------------------------------------------


def enter_cgroup(path: str) -> str | None:
    """Move this process into the cgroup at `path` (made if missing); None when it
    did, else why not (and `path` is removed: a worker's cgroup exists only if the
    worker went in, so the supervisor knows how to end its jobs: in_cgroup)."""
    try:
        with contextlib.suppress(FileExistsError):  # a worker pid used again
            os.mkdir(path, 0o755)
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write("0")
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.rmdir(path)
        return f"cannot move a process into {path}: {exc.strerror}"
    return None


def in_cgroup(path: str | None) -> bool:
    """Whether a worker told to enter `path` did (see enter_cgroup)."""
    return path is not None and os.path.isdir(path)


def _probe(root: str) -> str | None:
    """Whether processes can be moved into cgroups under `root`: a child tries."""
    path = os.path.join(root, "probe")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - in the child
        os.close(r)
        problem = enter_cgroup(path)
        with contextlib.suppress(OSError):
            os.write(w, (problem or "").encode(errors="replace"))
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        problem = f.read().decode(errors="replace") or None
    os.waitpid(pid, 0)
    with contextlib.suppress(OSError):
        os.rmdir(path)
    return problem


def cgroup_pids(path: str) -> list[int]:
    """The processes in a cgroup and in every cgroup below it."""
    pids: list[int] = []
    for where, _dirs, _files in os.walk(path):
        with contextlib.suppress(OSError), open(os.path.join(where, "cgroup.procs")) as f:
            pids += [int(p) for p in f.read().split()]
    return pids


def signal_cgroup(path: str, sig: int) -> None:
    """Send `sig` to every process in the cgroup (and below)."""
    for pid in cgroup_pids(path):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_cgroup(path: str) -> None:
    """SIGKILL every process in the cgroup and below, also those forking meanwhile."""
    try:
        with open(os.path.join(path, "cgroup.kill"), "w") as f:
            f.write("1")
        return
    except FileNotFoundError:
        if not os.path.isdir(path):
            return
    except OSError as exc:
        log.warning("cannot kill cgroup %s: %s", path, exc.strerror)
    # Before Linux 5.14: freeze it (no new forks), SIGKILL what is listed, thaw.
    freeze = os.path.join(path, "cgroup.freeze")
    with contextlib.suppress(OSError), open(freeze, "w") as f:
        f.write("1")
    for _ in range(KILL_ROUNDS):
        pids = cgroup_pids(path)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError), open(freeze, "w") as f:
        f.write("0")


def remove_cgroup(path: str) -> bool:
    """rmdir the cgroup and the ones below it, deepest first; False while one still
    holds processes (or, on older kernels, unreaped zombies): try again later."""
    for where, _dirs, _files in sorted(os.walk(path), key=lambda x: -x[0].count("/")):
        try:
            os.rmdir(where)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                log.warning("cannot remove cgroup %s: %s", where, exc.strerror)
            return False
    return True


def sweep_stale(base: str) -> list[str]:
    """End the processes in the cgroups that daemons now gone left under `base` (their
    guard died with them) and remove them; returns those not empty yet, to remove
    later. Only daemons of our pid namespace can be judged; others' are left alone."""
    ours = _pid_namespace()
    busy: list[str] = []
    try:
        names = os.listdir(base)
    except OSError:
        return busy
    for name in names:
        m = _NAME.match(name)
        if m is None or int(m.group(1)) != ours:
            continue
        pid, started = int(m.group(2)), int(m.group(3))
        if pid == os.getpid() or not _daemon_gone(pid, started):
            continue
        path = os.path.join(base, name)
        left = cgroup_pids(path)
        kill_cgroup(path)
        if left:
            log.warning(
                "ended %d process(es) that jobs of a daemon now gone (pid %d) left running",
                len(left),
                pid,
            )
        if not remove_cgroup(path):
            busy.append(path)
    return busy


# -- process trees (without cgroups) --------------------------------------------------------


def become_subreaper() -> bool:
    """Adopt the orphans among our descendants (Linux 3.4+)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def children_of(pid: int) -> list[int]:
    """The children of a process (zombies included)."""
    if not _HAS_CHILDREN_FILES:  # a kernel without CONFIG_PROC_CHILDREN
        return _children_by_scan(pid)
    found: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(p) for p in f.read().split()]
    return found


_HAS_CHILDREN_FILES = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def _children_by_scan(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                text = f.read()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(name))
    return found


def descendants(pid: int) -> list[int]:
    """Every descendant of a process, parents before their children."""
    found: list[int] = []
    level = children_of(pid)
    while level and len(found) < 100_000:
        found += level
        level = [c for p in level for c in children_of(p)]
    return found


def signal_tree(pid: int, sig: int, rounds: int = 1) -> None:
    """Send `sig` to a process and all its descendants; with SIGKILL, again until none
    is left (a child forked meanwhile), at most `rounds` times."""
    for _ in range(rounds):
        targets = [pid, *descendants(pid)]
        for target in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(target, sig)
        if not descendants(pid):
            return


def kill_adopted(keep: set[int]) -> int:
    """SIGKILL our children other than `keep` (our own workers and guard), with their
    descendants: jobs' processes adopted from a dead worker. Returns how many."""
    count = 0
    for _ in range(KILL_ROUNDS):
        adopted = [p for p in children_of(os.getpid()) if p not in keep]
        adopted = [p for p in adopted if not _is_zombie(p)]
        if not adopted:
            break
        for pid in adopted:
            signal_tree(pid, signal.SIGKILL, rounds=KILL_ROUNDS)
        count += len(adopted)
    return count


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return True
    return text[text.rindex(")") + 2 :].split()[0] in ("Z", "X")


# -- a daemon's containment -----------------------------------------------------------------


class Containment:
    """One daemon's way of keeping its jobs' processes: its cgroup (`root`, None without)
    and what it still has to remove; the supervisor becomes a subreaper either way."""

    def __init__(self, use_cgroups: bool) -> None:
        self.subreaper = become_subreaper()
        # Children a library caller had before the daemon forked any are not jobs'.
        self.foreign_children = set(children_of(os.getpid()))
        self.root: str | None = None
        self.why_not = "off in the config (cgroups = false)"
        self.worker_cgroups: dict[int, str] = {}  # worker pid -> its cgroup
        self.to_remove: dict[str, int] = {}  # killed, not empty when last tried: tries left
        if use_cgroups:
            self._make_root()

    def _make_root(self) -> None:
        base = own_cgroup_dir()
        if base is None:
            self.why_not = "no cgroup2 hierarchy mounted"
            return
        for path in sweep_stale(base):  # what daemons now gone left
            self.to_remove[path] = REMOVE_TRIES
        path = os.path.join(base, daemon_cgroup_name())
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            pass  # named after our pid and start time: ours from an earlier Supervisor
        except OSError as exc:
            self.why_not = f"cannot create a cgroup in {base}: {exc.strerror}"
            return
        self.root = path
        problem = _probe(path)
        if problem is not None:
            self.why_not = problem
            with contextlib.suppress(OSError):
                os.rmdir(path)
            self.root = None

    def describe(self) -> str:
        if self.root is not None:
            return f"jobs run in cgroup {self.root}"
        reaper = "a subreaper" if self.subreaper else "not a subreaper"
        return f"jobs run in process groups, {reaper} (no cgroup: {self.why_not})"

    def worker_cgroup(self, pid: int) -> str | None:
        """The cgroup a just-forked worker moves itself into (enter_cgroup, before it
        reads its first job: the move can take milliseconds, not the loop's)."""
        if self.root is None:
            return None
        path = os.path.join(self.root, f"w{pid}")
        self.worker_cgroups[pid] = path
        self.to_remove.pop(path, None)  # a pid used again: the worker takes it over
        return path

    def end_worker(self, pid: int, keep: set[int]) -> None:
        """A worker is gone (reaped): SIGKILL whatever its jobs left, in its cgroup or,
        without, among the processes we adopted (`keep`: our workers and guard)."""
        path = self.worker_cgroups.pop(pid, None)
        if in_cgroup(path):
            assert path is not None
            kill_cgroup(path)
            if not remove_cgroup(path):
                self.to_remove[path] = REMOVE_TRIES
        else:
            self.kill_adopted(keep)

    def kill_adopted(self, keep: set[int]) -> None:
        if self.subreaper:
            kill_adopted(keep | self.foreign_children)

    def retry_removals(self) -> None:
        for path, tries in list(self.to_remove.items()):
            if remove_cgroup(path):
                del self.to_remove[path]
            elif tries <= 1:  # stuck (a process in uninterruptible sleep?): leave it
                del self.to_remove[path]
                log.warning("cgroup %s is still not empty; left for the next daemon", path)
            else:
                self.to_remove[path] = tries - 1

    def close(self) -> None:
        """The daemon stops: what is left is killed (by the guard or here), then removed;
        a cgroup still busy is left to the guard, or to the next daemon's sweep."""
        if self.root is not None:
            kill_cgroup(self.root)
            remove_cgroup(self.root)
