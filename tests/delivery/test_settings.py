"""The delivery settings a node starts with, and the clear errors of wrong ones."""

from tests.test_settings import manage, setting


def test_by_default_only_https_is_allowed_and_no_host_until_the_plant_names_its_receivers():
    assert setting("EDGE_DELIVERY_ALLOWED_SCHEMES") == "['https']"
    assert setting("EDGE_DELIVERY_ALLOWED_HOSTS") == "[]"
    hosts = setting("EDGE_DELIVERY_ALLOWED_HOSTS", EDGE_DELIVERY_ALLOWED_HOSTS=" *.Plant.local , 10.0.*,,mes-gw:8443")
    assert hosts == "['*.plant.local', '10.0.*', 'mes-gw:8443']"


def test_an_unknown_scheme_or_a_pattern_that_is_not_a_host_stops_the_node_saying_why():
    result = manage("check", EDGE_DELIVERY_ALLOWED_SCHEMES="https,ftp")
    assert result.returncode != 0 and "EDGE_DELIVERY_ALLOWED_SCHEMES takes http and https, got 'ftp'" in result.stderr
    result = manage("check", EDGE_DELIVERY_ALLOWED_HOSTS="https://mes.plant.local")
    assert (
        result.returncode != 0
        and "EDGE_DELIVERY_ALLOWED_HOSTS: 'https://mes.plant.local' is not a host pattern" in (result.stderr)
    )
