"""`python -m edgeportal.serving` (make run's last step)."""

import logging
import socket

from edgeportal.serving import main


def test_a_port_in_use_stops_make_run_with_a_message_instead_of_restarting_forever(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="edgeportal.supervisor"):
            assert main(["--port", str(port)]) == 1
    assert f"127.0.0.1:{port} is in use" in caplog.text
