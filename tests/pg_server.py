"""A real, throwaway PostgreSQL server for tests and benchmarks: Debian's `postgresql` binaries (`.ci/run`
installs them), `initdb` into a temporary folder, `pg_ctl start` on a free port of 127.0.0.1, trust login.

    with postgres_server() as url:   # "postgresql://postgres@127.0.0.1:PORT/postgres"
        ...

PostgreSQL refuses to run as root: as root the server runs as the unprivileged `postgres` account (Debian's
package creates it), with `runuser`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def postgres_bin_dir() -> Path | None:
    """The folder of `initdb` and `pg_ctl` (on PATH, else Debian's /usr/lib/postgresql/N/bin), or None."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def why_no_postgres() -> str | None:
    """Why no server can be started here (None when one can)."""
    if postgres_bin_dir() is None:
        return "no PostgreSQL server binaries (apt-get install postgresql; .ci/run does)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a 'postgres' account to run the server as"
        if shutil.which("runuser") is None:
            return "running as root without runuser to drop privileges"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a PostgreSQL server for the duration of the block; yields its URL. Stopped and deleted after."""
    reason = why_no_postgres()
    if reason:
        raise RuntimeError(reason)
    bin_dir = postgres_bin_dir()
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    folder = Path(tempfile.mkdtemp(prefix="pixplan-pg-"))
    data = folder / "data"
    if as_root:
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
    port = free_port()
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, env=env, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}"
            )

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} -c fsync=off"
        )
        run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(folder / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
