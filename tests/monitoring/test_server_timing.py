import re

import pytest


def server_ms(response) -> float:
    match = re.fullmatch(r"app;dur=(\d+\.\d)", response["Server-Timing"])
    assert match, response["Server-Timing"]
    return float(match.group(1))


@pytest.mark.django_db
def test_api_answers_say_how_long_the_server_took_refusals_included(client, api):
    refused = client.post("/api/jobs", data="{}", content_type="application/json")  # no token
    assert refused.status_code == 401 and 0 <= server_ms(refused) < 5_000
    accepted = api.post({"prompt": "Describe the dent on plate 4."})
    assert accepted.status_code == 202 and server_ms(accepted) > 0
