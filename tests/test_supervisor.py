"""The supervisor `make run` runs under: restarts with backoff, stops every process on SIGTERM or Ctrl-C."""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeportal.supervisor import Program, Supervisor
from tests.integration.workers import wait_until

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import os, signal, subprocess, sys, time
pid_file, mode = sys.argv[1], sys.argv[2]
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "grandchild":  # like runserver's reloader: the program's own child must stop with it
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open(pid_file + ".grandchild", "w").write(str(grandchild.pid))
open(pid_file, "w").write(str(os.getpid()))
time.sleep(600)
"""

SUPERVISOR = """
import sys
from edgeportal.supervisor import Program, Supervisor
child, folder = sys.argv[1], sys.argv[2]
programs = [
    Program(mode, [sys.executable, child, f"{folder}/{mode}.pid", mode])
    for mode in ("plain", "grandchild", "ignore-term")
]
sys.exit(Supervisor(programs, stop_timeout_s=1).run())
"""


def alive(pid: int) -> bool:
    """Running, not a zombie (a container's first process may never reap orphans)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def step_until(supervisor: Supervisor, done, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        supervisor.step()
        time.sleep(0.005)


def read_pid(path: Path) -> int:
    wait_until(lambda: path.exists() and path.read_text(), timeout=30, what=str(path))
    return int(path.read_text())


@pytest.fixture
def supervised(tmp_path):
    """A supervisor process running three programs; returns it and the pids of what it started."""
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    process = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(child), str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    names = ["plain.pid", "grandchild.pid", "grandchild.pid.grandchild", "ignore-term.pid"]
    pids = [read_pid(tmp_path / name) for name in names]
    yield process, pids
    if process.poll() is None:
        process.kill()
        process.wait()
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_program_that_keeps_exiting_is_restarted_with_a_doubling_backoff(caplog):
    program = Program("flaky", [sys.executable, "-c", "import sys; sys.exit(3)"])
    supervisor = Supervisor([program], first_delay_s=0.01, max_delay_s=0.04, steady_s=60, poll_s=0.01)
    caplog.set_level(logging.WARNING, logger="edgeportal.supervisor")
    supervisor.start(program)
    step_until(supervisor, lambda: program.starts >= 5)
    assert program.delays[:4] == [0.01, 0.02, 0.04, 0.04]
    assert "flaky exited with code 3" in caplog.text and "restarting in" in caplog.text
    program.process.wait()


def test_a_program_that_ran_steadily_is_restarted_after_the_first_delay_again():
    program = Program("steady", [sys.executable, "-c", "pass"])
    supervisor = Supervisor([program], first_delay_s=0.01, steady_s=0, poll_s=0.01)
    supervisor.start(program)
    step_until(supervisor, lambda: program.starts >= 4)
    assert program.delays[:3] == [0.01, 0.01, 0.01]
    program.process.wait()


def test_a_killed_program_is_logged_with_its_signal(caplog):
    program = Program("victim", [sys.executable, "-c", "import time; time.sleep(600)"])
    supervisor = Supervisor([program], first_delay_s=60)
    caplog.set_level(logging.WARNING, logger="edgeportal.supervisor")
    supervisor.start(program)
    program.process.kill()
    program.process.wait()
    assert supervisor.step()
    assert "victim was killed by signal 9" in caplog.text
    assert program.restart_at is not None and program.starts == 1  # not yet: after its backoff


def test_what_a_dead_program_left_in_its_group_is_killed_before_it_starts_again(tmp_path):
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    program = Program("worker", [sys.executable, str(child), str(tmp_path / "worker.pid"), "grandchild"])
    supervisor = Supervisor([program], first_delay_s=60)
    supervisor.start(program)
    grandchild = read_pid(tmp_path / "worker.pid.grandchild")  # like the worker's embedded beat
    read_pid(tmp_path / "worker.pid")
    program.process.kill()
    program.process.wait()
    supervisor.step()
    try:
        wait_until(lambda: not alive(grandchild), timeout=30, what="the orphan killed")
    finally:
        if alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_stops_every_program_and_their_children_and_exits_0(supervised, signum):
    process, pids = supervised
    process.send_signal(signum)
    assert process.wait(60) == 0
    # One program ignores SIGTERM: it is killed after the stop timeout; the grandchild goes with its group.
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=30, what="every program stopped")


def test_programs_stop_when_the_supervisor_itself_is_killed(supervised):
    process, pids = supervised
    process.kill()
    process.wait()
    plain, grandchild_program = pids[0], pids[1]
    # The kernel sends SIGTERM to each program (PR_SET_PDEATHSIG); nobody is left to stop their children.
    wait_until(lambda: not alive(plain) and not alive(grandchild_program), timeout=30, what="programs stopped")
