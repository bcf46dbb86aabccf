"""docs/prometheus/alerts.yml: promtool accepts the rules and /metrics, the rules' own unit tests pass, and every
series an alert reads is one /metrics exports, so no alert can silently watch nothing."""

import ast
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from edgeportal.core import metrics
from edgeportal.jobs.entry import JobRejected, job_submit
from tests.monitoring.scrape import scrape

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "docs" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "docs" / "prometheus" / "alerts_test.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed: scripts/ensure-promtool.sh installs it (Debian's prometheus)"
)


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True, timeout=60)


@pytest.fixture
def exposition(client, make_worker):
    """/metrics with every kind of series the rules read: a batch run, a refusal, outputs and deliveries."""
    job_submit(prompt="A job that runs.", allow_free_prompt=True)
    make_worker().batch_step()
    with pytest.raises(JobRejected):
        job_submit(prompt="", allow_free_prompt=True)
    metrics.outputs_finished([SimpleNamespace(name="ticket", status="language_mismatch")])
    metrics.delivery_attempted("failed")
    metrics.delivery_dead()
    return scrape(client)


@needs_promtool
def test_the_alert_rules_pass_promtool_with_lint_fatal():
    result = promtool("check", "rules", "--lint-fatal", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_alert_rules_own_unit_tests_pass():
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.django_db(transaction=True)
def test_the_exposition_passes_promtool_check_metrics(exposition):
    # Lint problems (a counter without _total, a missing HELP, a unit in the wrong place) fail too: exit 3.
    result = promtool("check", "metrics", stdin=exposition.text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == result.stderr.strip() == ""


@pytest.mark.django_db(transaction=True)
def test_every_series_an_alert_reads_is_exported(exposition):
    # Sample names, so a histogram is read as its _bucket, _count and _sum series, as PromQL names them.
    queried = {name for rule in alert_rules() for name in re.findall(r"edgeportal_\w+", rule["expr"])}
    assert queried - exposition.names() == set()
    assert {"edgeportal_workers_alive", "edgeportal_queue_limit", "edgeportal_delivery_dead_letters_total"} <= queried


def test_every_alert_has_a_duration_a_severity_and_both_annotations():
    for rule in alert_rules():
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def _codes_refused_with_429() -> set[str]:
    """The entry's literal codes raised with status=429, and admission's refusals (all answered 429)."""
    codes = set()
    for node in ast.walk(ast.parse((ROOT / "edgeportal" / "jobs" / "entry.py").read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "JobRejected":
            keywords = {keyword.arg: keyword.value for keyword in node.keywords}
            status, code = keywords.get("status"), keywords.get("code")
            if isinstance(status, ast.Constant) and status.value == 429 and isinstance(code, ast.Constant):
                codes.add(code.value)
    for node in ast.walk(ast.parse((ROOT / "inference" / "planning.py").read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Refusal":
            codes.add(node.args[0].value)
    return codes


def test_the_refusal_alert_counts_exactly_the_rules_answered_with_429():
    (rule,) = [rule for rule in alert_rules() if rule["alert"] == "EdgePortalManyRefusals"]
    selections = set(re.findall(r'rule=~"([^"]+)"', rule["expr"]))
    assert len(selections) == 1  # numerator and denominator select the same rules
    assert set(selections.pop().split("|")) == _codes_refused_with_429()
