"""Process supervision by recorded PID, and readiness waits.

Every process the cloud starts is the leader of its own session, its PID and
start time in ``run/<name>.pid``, so a second ``make cloud`` can tell its own
processes from a reused PID, and ``make cloud-stop`` ends exactly those
process groups (a service and the workers it forked) and nothing else.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class CloudError(Exception):
    """A step of the cloud failed; the message names the step and its log."""


class Supervisor:
    """Starts, finds and stops the cloud's processes by their recorded PIDs."""

    def __init__(self, run_dir: Path, log_dir: Path) -> None:
        self.run_dir = run_dir
        self.log_dir = log_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        log_dir.mkdir(parents=True, exist_ok=True)

    def log_of(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def pid_of(self, name: str) -> int | None:
        """The recorded PID of ``name`` if that very process still runs.

        The PID file holds the PID and the process's start time (in clock
        ticks since boot, /proc/PID/stat): a PID the kernel reused for
        another process has another start time. (Command lines do not
        identify: services rewrite theirs with setproctitle.)
        """
        try:
            pid_s, started = (self.run_dir / f"{name}.pid").read_text().split()
            pid = int(pid_s)
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) and _start_time(pid) == started else None

    def running(self, name: str) -> bool:
        return self.pid_of(name) is not None

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> tuple[int, bool]:
        """Start ``argv`` as ``name`` unless it already runs; return (PID, started now)."""
        pid = self.pid_of(name)
        if pid is not None:
            return pid, False
        full_env = dict(os.environ)
        full_env.update(env or {})
        with open(self.log_of(name), "ab") as log:
            proc = subprocess.Popen(  # noqa: S603  (our own argv, no shell)
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
            )
        (self.run_dir / f"{name}.pid").write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
        return proc.pid, True

    def stop(self, name: str, timeout: float = 30.0) -> bool:
        """SIGTERM the process group of ``name``, SIGKILL after ``timeout``."""
        pid = self.pid_of(name)
        (self.run_dir / f"{name}.pid").unlink(missing_ok=True)
        if pid is None:
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (_alive(pid) or _group_alive(pid)):
            time.sleep(0.2)
        if _alive(pid) or _group_alive(pid):
            _signal_group(pid, signal.SIGKILL)
        return True

    def recorded(self) -> list[str]:
        return sorted(p.stem for p in self.run_dir.glob("*.pid"))


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "gone"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    """Signal the group the process leads (started with a new session), which
    also reaches the workers it forked, even once the leader is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def wait_for(check: Callable[[], bool], what: str, timeout: float, log: Path | None = None) -> None:
    """Poll ``check`` until true; fail naming ``what`` and the log to read."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    hint = f" (see {log})" if log else ""
    raise CloudError(f"timed out after {timeout:.0f} s waiting for {what}{hint}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def http_answers(url: str) -> bool:
    """Any HTTP answer (a 401 from an API behind keystonemiddleware counts)."""
    try:
        with urllib.request.urlopen(url, timeout=5):  # noqa: S310  (loopback URLs)
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
