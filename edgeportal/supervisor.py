"""A small process supervisor for `make run`: it restarts a process that exits, with backoff and a log line,
and stops every process cleanly on SIGTERM or Ctrl-C."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

log = logging.getLogger("edgeportal.supervisor")

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Called in a child process: Linux sends it SIGTERM when its parent dies (even by kill -9)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: children outlive a killed supervisor there
        pass


@dataclass
class Program:
    name: str
    command: list[str]
    env: dict[str, str] | None = None
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    starts: int = 0
    exits_in_a_row: int = 0  # exits each within Supervisor.steady_s of their start
    restart_at: float | None = None
    delays: list[float] = field(default_factory=list)  # each restart's backoff, in order


class Supervisor:
    """Runs programs, each in a process group of its own, and keeps them running.

    A program that exits (with any code) is started again after a backoff: first_delay_s, doubled for each
    exit in a row, at most max_delay_s; a run of steady_s or longer resets it. What it leaves behind in its
    process group (the worker's embedded beat, a web server's workers) is killed first, so a restart never
    runs two beats or finds its port held by orphans. Ctrl-C reaches only the
    supervisor (the children have their own process groups), which then stops the programs in reverse
    order (the web server first, so nothing new arrives; then the worker, which finishes its batch):
    SIGTERM to the group, SIGKILL after stop_timeout_s.
    """

    def __init__(
        self,
        programs: list[Program],
        *,
        first_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        steady_s: float = 60.0,
        stop_timeout_s: float = 30.0,
        poll_s: float = 0.2,
    ):
        self.programs = programs
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.steady_s = steady_s
        self.stop_timeout_s = stop_timeout_s
        self.poll_s = poll_s
        self.stopping = False

    def backoff_s(self, exits_in_a_row: int) -> float:
        """The wait before the next start of a program that exited this many times in a row (1, 2, ...)."""
        return min(self.max_delay_s, self.first_delay_s * 2 ** (exits_in_a_row - 1))

    def start(self, program: Program) -> None:
        program.process = subprocess.Popen(
            program.command, env=program.env, start_new_session=True, preexec_fn=die_with_parent
        )
        program.started_at = time.monotonic()
        program.starts += 1
        program.restart_at = None

    def step(self) -> bool:
        """Notice exits and start what is due; True when something happened."""
        now = time.monotonic()
        did = False
        for program in self.programs:
            if program.process is not None and program.restart_at is None:
                code = program.process.poll()
                if code is None:
                    continue
                _signal_group(program.process, signal.SIGKILL)  # its orphans, if any
                ran_s = now - program.started_at
                program.exits_in_a_row = 1 if ran_s >= self.steady_s else program.exits_in_a_row + 1
                delay = self.backoff_s(program.exits_in_a_row)
                program.delays.append(delay)
                program.restart_at = now + delay
                how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                log.warning(
                    "%s %s after %.0f s; restarting in %.0f s (exit %d in a row)",
                    program.name, how, ran_s, delay, program.exits_in_a_row,
                )  # fmt: skip
                did = True
            if program.restart_at is not None and now >= program.restart_at:
                log.warning("starting %s again", program.name)
                self.start(program)
                did = True
        return did

    def stop(self) -> None:
        """SIGTERM to every program's process group, last started first; SIGKILL to what outlives the timeout."""
        self.stopping = True
        for program in reversed(self.programs):
            if program.process is None or program.process.poll() is not None:
                continue
            log.info("stopping %s", program.name)
            _signal_group(program.process, signal.SIGTERM)
            try:
                program.process.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s: killing it", program.name, self.stop_timeout_s)
                _signal_group(program.process, signal.SIGKILL)
                program.process.wait()
            _signal_group(program.process, signal.SIGKILL)  # what the program left behind in its group

    def run(self) -> int:
        """Start every program and keep them running until SIGTERM or SIGINT; then stop them all. Returns 0."""

        def request_stop(signum, frame):
            self.stopping = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        try:
            for program in self.programs:
                self.start(program)
            while not self.stopping:
                self.step()
                time.sleep(self.poll_s)
        finally:
            self.stop()
        return 0


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)  # the group's id is the program's pid (start_new_session)
    except ProcessLookupError:
        pass
