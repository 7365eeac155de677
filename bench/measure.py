"""Run one command as a whole process; measure its wall time and peak resident memory.

Peak RSS comes from ``/usr/bin/time -v`` when it is installed, else from the rusage that
``os.wait4`` returns for the child (the same number: the kernel's ``ru_maxrss``).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GNU_TIME", "Measured", "run_measured"]

GNU_TIME = "/usr/bin/time"
_MAXRSS = re.compile(r"Maximum resident set size \(kbytes\):\s*(\d+)")


@dataclass(frozen=True)
class Measured:
    wall_s: float
    peak_rss_mib: float
    returncode: int
    stdout: str
    stderr: str
    method: str  # "time -v" or "wait4"


def _gnu_time() -> bool:
    return os.access(GNU_TIME, os.X_OK)


def run_measured(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None, timeout_s: float = 3600.0
) -> Measured:
    """Run ``argv`` to completion (killing it after ``timeout_s``) and measure it."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        out, err, rss_file = Path(tmp) / "stdout", Path(tmp) / "stderr", Path(tmp) / "rusage"
        use_time = _gnu_time()
        full = [GNU_TIME, "-v", "-o", str(rss_file), *argv] if use_time else list(argv)
        with out.open("wb") as fo, err.open("wb") as fe:
            started = time.perf_counter()
            proc = subprocess.Popen(full, cwd=cwd, env=dict(env) if env is not None else None, stdout=fo, stderr=fe)
            deadline = started + timeout_s
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.005)
            wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        rss_kib = usage.ru_maxrss
        code = proc.returncode
        if use_time:
            text = rss_file.read_text(errors="replace") if rss_file.exists() else ""
            found = _MAXRSS.search(text)
            if found:
                rss_kib = int(found.group(1))
            exit_line = re.search(r"Exit status:\s*(-?\d+)", text)
            if exit_line:
                code = int(exit_line.group(1))
        return Measured(
            wall_s=wall,
            peak_rss_mib=rss_kib / 1024.0,
            returncode=code,
            stdout=out.read_text(errors="replace"),
            stderr=err.read_text(errors="replace")[-4000:],
            method="time -v" if use_time else "wait4",
        )
