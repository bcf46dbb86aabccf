"""Which webhook URLs the node may post to (no SSRF to hosts the settings do not allow)."""

import pytest

from edgeportal.delivery.addresses import WEB_PORTS, HostPattern, url_refusal

HOSTS = ["*.plant.local", "10.0.*:*", "mes-gw:8443", "[fd00::1]:8080", "127.0.0.1:*"]


def refused(url, *, schemes=("https", "http"), hosts=HOSTS):
    refusal = url_refusal(url, schemes=schemes, hosts=hosts)
    return refusal.code if refusal else None


@pytest.mark.parametrize(
    "url",
    [
        "https://mes.plant.local/hooks",
        "https://MES.Plant.Local./hooks?line=a",  # case and a trailing dot do not matter
        "http://10.0.3.7:8080/x",
        "https://mes-gw:8443/",
        "http://[fd00::1]:8080/hook",
        "http://127.0.0.1:5000/",
    ],
)
def test_a_url_whose_scheme_and_host_are_allowed_is_accepted(url):
    assert refused(url) is None


def test_a_scheme_not_allowed_is_refused_and_https_alone_refuses_plain_http():
    assert refused("ftp://mes.plant.local/x") == "scheme"
    assert refused("file:///etc/passwd") == "scheme"
    assert refused("http://mes.plant.local/x", schemes=["https"]) == "scheme"


@pytest.mark.parametrize(
    "url",
    [
        "https://plant.local/x",  # *.plant.local needs a subdomain
        "https://evil.example/x",
        "https://mes.plant.local.evil.example/x",
        "https://10.0.evil.example/x",  # an IPv4 pattern never matches a host name
        "https://10.1.0.1/x",
        "https://mes-gw/x",  # the pattern names port 8443; https means 443
        "https://mes-gw:9000/x",
        "http://[fd00::2]:8080/x",
        "http://169.254.169.254/latest/meta-data",
        "https://mes.plant.local:6379/x",  # a pattern without a port allows only 80 and 443
    ],
)
def test_a_host_no_pattern_matches_is_refused(url):
    assert refused(url) == "host"


def test_with_no_host_pattern_set_every_url_is_refused():
    assert refused("https://mes.plant.local/x", hosts=[]) == "host"


@pytest.mark.parametrize(
    "url",
    ["https://user:pw@mes.plant.local/x", "https://token@mes.plant.local/x"],
)
def test_credentials_in_the_url_are_refused(url):
    assert refused(url) == "credentials"


@pytest.mark.parametrize(
    "url",
    [
        "https://010.0.0.1/x",  # octal to the resolver: 8.0.0.1
        "https://10.1/x",  # 10.0.0.1 to the resolver
        "https://mes.plant.local:99999/x",
        "https:///x",
        "https://mes.plant.local/a b",
        "https://mes.plant.local/\nx",
        "mes.plant.local/x",
        "https://mes.plant.local/" + "x" * 500,
    ],
)
def test_a_malformed_or_ambiguous_url_is_refused(url):
    assert refused(url) in {"malformed", "scheme"}


def test_a_pattern_with_a_scheme_or_path_is_not_a_host_pattern():
    for text in ("https://mes.plant.local", "mes.plant.local/x", "", "user@host"):
        with pytest.raises(ValueError):
            HostPattern.parse(text)
    assert HostPattern.parse("MES-GW:8443") == HostPattern(host="mes-gw", port="8443")
    assert HostPattern.parse("fd00::*") == HostPattern(host="fd00::*", port=WEB_PORTS)


def test_a_url_outside_ascii_is_refused_as_malformed():
    assert refused("https://mes.plant.local/stößel") == "malformed"
