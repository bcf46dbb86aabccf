"""Which webhook URLs the node may post to: an allowed scheme, no credentials in the URL, and a host (and port)
that matches one of the allowed host patterns. Pure functions: the settings come in as arguments."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import SplitResult, urlsplit

MAX_URL_CHARS = 500
# "10.0.*", "192.168.1.?": a pattern written like an IPv4 address matches IPv4 addresses only, never a host
# name such as "10.0.evil.example" that happens to start with the same characters.
IPV4_PATTERN = re.compile(r"[0-9.*?\[\]-]+")
NUMERIC_HOST = re.compile(r"[0-9.]+")


@dataclass(frozen=True)
class HostPattern:
    host: str  # an fnmatch pattern, lower case, IPv6 without brackets
    port: str  # an fnmatch pattern of the port ("8443", "*"); "*" when the pattern names none

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        """ "host", "host:port", "[v6]" or "[v6]:port"; a bare IPv6 pattern ("fd00::*") has no port."""
        text = text.strip().lower()
        if not text or "/" in text or "@" in text:
            raise ValueError(f"{text!r} is not a host pattern (a host name or address, optionally :port)")
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = rest.removeprefix(":") if rest.startswith(":") else WEB_PORTS
            if rest and not rest.startswith(":"):
                raise ValueError(f"{text!r} is not a host pattern: text after the closing bracket")
        elif text.count(":") == 1:
            host, port = text.split(":")
        else:
            host, port = text, WEB_PORTS
        if not host or not port:
            raise ValueError(f"{text!r} is not a host pattern: empty host or port")
        return cls(host=host, port=port)

    def matches(self, host: str, port: int) -> bool:
        if self.port == WEB_PORTS:
            if port not in (80, 443):  # a pattern without a port never opens the host's other services
                return False
        elif not fnmatchcase(str(port), self.port):
            return False
        if IPV4_PATTERN.fullmatch(self.host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                return False
        return fnmatchcase(host, self.host)


WEB_PORTS = "80,443"  # the ports a pattern without one allows ("host:*" allows every port)


def host_patterns(texts: Iterable[str]) -> list[HostPattern]:
    return [HostPattern.parse(text) for text in texts]


@dataclass(frozen=True)
class UrlRefused:
    """Why a URL may not be used: code is stable (tests, logs), message is for people."""

    code: str
    message: str


def url_refusal(url: str, *, schemes: Iterable[str], hosts: Iterable[str]) -> UrlRefused | None:
    """None when the node may post to url, else why not.

    The scheme must be in schemes; the URL may carry no user or password (a secret that would show in every
    list: use the destination's headers); its host, with its port (the scheme's default when none), must match
    one of hosts. A host written as digits and dots must be a plain IPv4 address ("010.0.0.1" and "10.1" mean
    other addresses to the resolver than they seem to). Names are trusted as DNS answers them.
    """
    try:
        parts = _split(url)
    except ValueError as error:
        return UrlRefused("malformed", f"not a valid URL ({error})")
    scheme = parts.scheme.lower()
    allowed_schemes = [each.lower() for each in schemes]
    if scheme not in allowed_schemes:
        allowed = ", ".join(allowed_schemes) or "none"
        return UrlRefused(
            "scheme", f"the scheme {scheme or '(none)'!r} is not allowed (EDGE_DELIVERY_ALLOWED_SCHEMES: {allowed})"
        )
    if parts.username is not None or parts.password is not None:
        return UrlRefused("credentials", "a user or password in the URL is not allowed: send it in a header")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return UrlRefused("malformed", "the URL has no host")
    if NUMERIC_HOST.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return UrlRefused("malformed", f"{host!r} is not a plain IPv4 address")
    port = parts.port or (443 if scheme == "https" else 80)
    patterns = host_patterns(hosts)
    if not any(pattern.matches(host, port) for pattern in patterns):
        listed = ", ".join(hosts) or "empty"
        return UrlRefused(
            "host", f"the host {host}:{port} matches no pattern of EDGE_DELIVERY_ALLOWED_HOSTS ({listed})"
        )
    return None


def _split(url: str) -> SplitResult:
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"longer than {MAX_URL_CHARS} characters")
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        raise ValueError("spaces or control characters")
    if not url.isascii():  # never sendable as is (http.client refuses it): write it percent-encoded, or punycode
        raise ValueError("characters outside ASCII")
    parts = urlsplit(url)
    parts.port  # noqa: B018 (raises ValueError for a port that is not a number from 0 to 65535)
    return parts
