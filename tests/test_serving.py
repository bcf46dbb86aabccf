"""`python -m edgeportal.serving` (make run's last step)."""

import logging
import os
import socket

from edgeportal.serving import GUNICORN_CONFIG, main, node_programs


def test_a_port_in_use_stops_make_run_with_a_message_instead_of_restarting_forever(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="edgeportal.supervisor"):
            assert main(["--port", str(port)]) == 1
    assert f"127.0.0.1:{port} is in use" in caplog.text


def test_a_web_worker_loads_the_tokenizer_when_it_starts(settings):
    import runpy

    from edgeportal.prompts.tokens import _tokenizer

    hooks = runpy.run_path(str(GUNICORN_CONFIG))
    _tokenizer.cache_clear()
    hooks["post_worker_init"](None)
    assert _tokenizer.cache_info().currsize == 1  # the conftest points the web side at the tiny model


def test_the_production_server_keeps_database_connections_unless_told_otherwise(monkeypatch):
    import runpy

    monkeypatch.delenv("DB_CONN_MAX_AGE", raising=False)
    runpy.run_path(str(GUNICORN_CONFIG))
    assert os.environ["DB_CONN_MAX_AGE"] == "60"  # read by the workers' settings, after the fork
    monkeypatch.setenv("DB_CONN_MAX_AGE", "0")  # an operator's choice stands
    runpy.run_path(str(GUNICORN_CONFIG))
    assert os.environ["DB_CONN_MAX_AGE"] == "0"


def test_make_run_runs_beat_as_a_process_of_its_own_never_inside_the_worker():
    # A worker's --beat is forked from the worker: on SQLite every connection the fork opened then failed
    # ("disk I/O error", "locking protocol"), and no periodic task ran under `make run`.
    programs = node_programs(host="127.0.0.1", port=8000, dev=False, worker_name="w1@%h", exits_worker_name="x1@%h")
    commands = {program.name: program.command for program in programs}
    assert set(commands) == {"worker", "exits", "beat", "web"}
    assert not any("--beat" in command for command in commands.values())
    assert commands["beat"][commands["beat"].index("-A") + 1 :][:2] == ["edgeportal", "beat"]
