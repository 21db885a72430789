"""Browser safety of ``rnnzoo serve``: what a web page open in the user's browser may do with a
server on the user's machine.

A server on 127.0.0.1 is reachable from every page the user opens. Three checks, in front of
every route (a raw ASGI wrapper, a few header comparisons per request):

* **Host** (DNS rebinding): a page of ``evil.example`` whose name is made to resolve to
  127.0.0.1 reaches the server with ``Host: evil.example`` and, being same-origin with itself,
  could read the answers. A Host header must be a loopback name (``localhost``,
  ``*.localhost``), an IP address (rebinding needs a name), the address the server is bound to,
  or one of ``--allowed-hosts`` (``.example.com`` also allows its subdomains; ``*`` allows any);
  else 421.
* **Origin** (CORS, off by default): a request from another origin's page (its ``Origin``
  header differs from the server's own) is refused with 403 unless ``--cors-origin`` allows that
  origin; an allowed one gets ``Access-Control-Allow-Origin``. A preflight ``OPTIONS`` is
  answered 204 with the policy (or 403); any other ``OPTIONS`` 204 with ``Allow``.
* **Content type**: a POST must be ``application/json`` (else 415): the types a page may send
  cross-origin without a preflight (``text/plain``, forms, none) are never processed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from rnnzoo.serving.config import ServeConfig
from rnnzoo.serving.data import dumps

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARD_BINDS = ("", "0.0.0.0", "::")
_METHODS = b"GET, POST, OPTIONS"
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def host_name(value: str) -> str:
    """The name of a Host header value or an origin's authority: lowercase, without the port
    and the brackets of an IPv6 address, without a trailing dot."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    name, sep, port = value.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        value = name
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class BrowserGuard:
    """The checks of this module as an ASGI wrapper around ``app``."""

    def __init__(self, app: Any, config: ServeConfig) -> None:
        self.app = app
        names: Iterable[str] = (*LOOPBACK_NAMES, *config.allowed_hosts)
        if config.host.strip().lower() not in _WILDCARD_BINDS:
            names = (*names, config.host)
        self.hosts = {host_name(n) for n in names if not n.startswith(".")}
        self.suffixes = tuple(n.lower().rstrip(".") for n in config.allowed_hosts
                              if n.startswith("."))
        self.any_host = "*" in config.allowed_hosts
        self.origins = {o.lower().rstrip("/") for o in config.cors_origins}
        self.any_origin = "*" in self.origins
        self._seen: dict[bytes, bool] = {}  # Host values already judged (bounded)

    # -- the checks ------------------------------------------------------------------------------
    def host_allowed(self, raw: bytes) -> bool:
        known = self._seen.get(raw)
        if known is not None:
            return known
        name = host_name(raw.decode("latin-1"))
        ok = (self.any_host or name in self.hosts or name.endswith(".localhost")
              or _is_ip(name) or any(name == s[1:] or name.endswith(s) for s in self.suffixes))
        if len(self._seen) < 4096:
            self._seen[raw] = ok
        return ok

    @staticmethod
    def same_origin(origin: str, host: bytes | None, scheme: str) -> bool:
        """Whether ``origin`` is the server's own (as the browser reached it: Host header)."""
        if host is None:
            return False
        o_scheme, sep, authority = origin.partition("://")
        if not sep or o_scheme != scheme:
            return False
        return _authority(authority, scheme) == _authority(host.decode("latin-1"), scheme)

    def origin_allowed(self, origin: str) -> bool:
        return self.any_origin or origin in self.origins

    # -- ASGI ------------------------------------------------------------------------------------
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = origin = ctype = preflight = None
        for key, value in scope["headers"]:
            if key == b"host":
                host = value
            elif key == b"origin":
                origin = value
            elif key == b"content-type":
                ctype = value
            elif key == b"access-control-request-method":
                preflight = value
        if host is not None and not self.host_allowed(host):
            shown = host.decode("latin-1")[:100]
            return await _refuse(send, 421, "host_not_allowed", (
                f"Host {shown!r} is not a name of this server (a page whose name resolves "
                f"here is refused: DNS rebinding); if it is one (a proxy, a LAN name), allow "
                f"it with rnnzoo serve --allowed-hosts {host_name(shown) or 'NAME'}"))
        method = scope["method"]
        cross = None
        if origin is not None:
            text = origin.decode("latin-1").strip().lower().rstrip("/")
            if not self.same_origin(text, host, scope.get("scheme", "http")):
                if not self.origin_allowed(text):
                    return await _refuse(send, 403, "origin_not_allowed", (
                        f"a request from the page of another origin ({text[:100]}) is refused "
                        "(no CORS policy allows it); to allow that origin: rnnzoo serve "
                        f"--cors-origin {text[:100] or 'ORIGIN'}"))
                cross = origin
        if method == "OPTIONS":
            headers = [(b"allow", _METHODS), (b"content-length", b"0")]
            if cross is not None and preflight is not None:
                headers += self._cors_headers(cross) + [
                    (b"access-control-allow-methods", _METHODS),
                    (b"access-control-allow-headers", b"content-type"),
                    (b"access-control-max-age", b"600")]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        if method == "POST" and not _is_json(ctype):
            found = ctype.decode("latin-1")[:80] if ctype is not None else "none"
            return await _refuse(send, 415, "unsupported_media_type", (
                f"a POST body must be JSON sent as Content-Type: application/json (found "
                f"{found}); with curl: -H 'Content-Type: application/json'"))
        if cross is None:
            return await self.app(scope, receive, send)
        extra = self._cors_headers(cross)

        async def send_with_cors(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)
        await self.app(scope, receive, send_with_cors)

    def _cors_headers(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        allow = b"*" if self.any_origin else origin.strip()
        return [(b"access-control-allow-origin", allow), (b"vary", b"Origin")]


def _authority(value: str, scheme: str) -> str:
    value = value.strip().lower().rstrip("/")
    default = _DEFAULT_PORTS.get(scheme)
    if default and value.endswith(":" + default) and not value.endswith("]"):
        value = value[: -len(default) - 1]
    return value


def _is_json(ctype: bytes | None) -> bool:
    if ctype is None:
        return False
    media = ctype.split(b";", 1)[0].strip().lower()
    return media == b"application/json"


async def _refuse(send: Any, status: int, code: str, message: str) -> None:
    body = dumps({"error": message, "code": code})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})
