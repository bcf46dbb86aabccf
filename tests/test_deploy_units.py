"""The systemd units in docs/deploy, read as systemd reads their keys."""

import configparser
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy"
SERVICES = sorted(DEPLOY.glob("*.service"))
DEFAULT_CPU_WEIGHT = 100  # systemd's, for a unit that sets none


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)  # a oneshot repeats ExecStart
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


@pytest.mark.parametrize("path", SERVICES, ids=lambda path: path.name)
def test_every_service_runs_unprivileged(path):
    service = unit(path)["Service"]
    assert (service["User"], service["Group"], service["NoNewPrivileges"]) == ("edgeportal", "edgeportal", "yes")


def test_the_worker_weighs_less_on_the_cpu_than_the_web():
    """Each unit has a CPU control group of its own, shared by weight before any nice value counts: the
    worker's EDGE_WORKER_NICE does not reach past its unit, so the weight keeps the web ahead of a batch."""
    weight = {
        path.stem: int(unit(path)["Service"].get("CPUWeight", DEFAULT_CPU_WEIGHT))
        for path in (DEPLOY / "edgeportal-worker.service", DEPLOY / "edgeportal-web.service")
    }
    assert weight["edgeportal-worker"] * 5 <= weight["edgeportal-web"]
