"""Background processes that kassa starts and later stops, tracked by pid files."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

from common.settings import ENV_PREFIX
from services.exceptions import MissingToolError, ServiceError


def require_tool(name: str, install_hint: str) -> str:
    """The path of program ``name`` on PATH, or :class:`MissingToolError` saying how to get it."""
    path = shutil.which(name)
    if path is None:
        msg = f"'{name}' is not installed or not on PATH; install it with: {install_hint}"
        raise MissingToolError(msg)
    return path


def read_pid(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file`` if that process is still alive, else ``None``."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if is_alive(pid) else None


def is_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def spawn(command: Sequence[str], log_file: Path, pid_file: Path, *, private: bool = False) -> int:
    """Start ``command`` detached in its own session, output to ``log_file``; return its pid.

    The process outlives kassa (``kassa services up`` returns while it runs), so it is not
    tied to a ``Popen`` object; its pid goes to ``pid_file``. A ``private`` process creates
    its files for its user only (umask 077): Redis rewrites its configuration file, with the
    passwords in it, as a new file (``CONFIG REWRITE``, which a Sentinel also sends to the
    master and replicas after a failover). No process gets kassa's ``KASSA_*`` variables:
    they hold passwords, and a server reads its own configuration files only.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    umask = os.umask(0o077) if private else None  # the child inherits it at the spawn
    try:
        pid = os.posix_spawn(
            command[0],
            list(command),
            {name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)},
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(log_file), flags, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
    finally:
        if umask is not None:
            os.umask(umask)
    pid_file.write_text(f"{pid}\n")
    return pid


def exit_status(pid: int) -> int | None:
    """The exit status of our child ``pid`` if it has ended, else ``None``."""
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None if is_alive(pid) else -1
    return os.waitstatus_to_exitcode(status) if reaped else None


def terminate(pid: int, timeout: float = 30.0) -> None:
    """Stop ``pid`` (and its process group) with SIGTERM, then SIGKILL after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if not is_alive(pid):
                return
            time.sleep(0.1)
    msg = f"process {pid} did not exit after SIGKILL; look at it with 'ps -fp {pid}'"
    raise ServiceError(msg)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def await_ready(
    pid: int, ready: Callable[[], bool], what: str, log_file: Path, timeout: float
) -> None:
    """Wait until ``ready()`` while ``pid`` runs; stop it and raise if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = exit_status(pid)
        if status is not None:
            msg = f"{what} exited with status {status} while starting; see {log_file}"
            raise ServiceError(msg)
        if ready():
            return
        time.sleep(0.1)
    terminate(pid)
    msg = f"{what} did not answer within {timeout:.0f} s; see {log_file}"
    raise ServiceError(msg)


def stop_recorded(pid_file: Path, timeout: float = 30.0) -> bool:
    """Stop the live process recorded in ``pid_file``; return whether there was one."""
    pid = read_pid(pid_file)
    if pid is None:
        return False
    terminate(pid, timeout)
    pid_file.unlink(missing_ok=True)
    return True


class RecordedServer:
    """A server kassa starts and tracks by ``<home>/<PID_NAME>``, its data in ``<home>/data``."""

    home: Path
    PID_NAME: ClassVar[str]
    STOP_TIMEOUT: ClassVar[float] = 30.0

    @property
    def pid_file(self) -> Path:
        return self.home / self.PID_NAME

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def pid(self) -> int | None:
        """The pid of the process kassa started while it is alive."""
        return read_pid(self.pid_file)

    def stop(self) -> bool:
        """Stop the server kassa started here; return whether one was running."""
        return stop_recorded(self.pid_file, self.STOP_TIMEOUT)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the system picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def is_local(host: str) -> bool:
    """Whether ``host`` is an address of this machine: a server started here can listen on it."""
    try:
        found = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    for family, kind, protocol, _, address in found:
        with socket.socket(family, kind, protocol) as sock:
            try:
                sock.bind(address)
            except OSError:
                continue
            return True
    return False


def port_in_use(host: str, port: int) -> bool:
    """Whether binding ``host:port`` fails, as it would for a server started there now.

    ``SO_REUSEADDR`` is set as Java's and Redis' servers set it, so connections of a server
    that just stopped (``TIME_WAIT``) do not count as use.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def stop_all(pid_files: Sequence[Path], timeout: float = 30.0) -> list[bool]:
    """Stop the processes recorded in ``pid_files`` together; return, per file, whether one ran.

    SIGTERM goes to all first, so they shut down in parallel rather than one after another.
    """
    pids = [read_pid(pid_file) for pid_file in pid_files]
    for pid in pids:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
    for pid, pid_file in zip(pids, pid_files, strict=True):
        if pid is not None:
            terminate(pid, timeout)
            pid_file.unlink(missing_ok=True)
    return [pid is not None for pid in pids]
