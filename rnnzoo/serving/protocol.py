"""uvicorn's HTTP protocol with two limits on a request's headers, which uvicorn does not bound:
the time a client takes to send them (a client trickling a header byte at a time would hold
its connection open forever) and their size (httptools keeps every header it is sent).

Past ``header_timeout_s`` (counted from the connection or from the first byte of a next
request) the client gets 408 and the connection is closed; past ``max_header_bytes`` before the
headers end, 431. Read from the uvicorn ``Config`` (attributes ``rnnzoo_header_timeout_s`` and
``rnnzoo_max_header_bytes``), so worker processes get them with it. Imports uvicorn: only
``rnnzoo.serving.run`` imports this module.
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    HttpToolsProtocol = None

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _HeaderLimits:
    """Mixed into a uvicorn HTTP protocol class (httptools or h11): both set ``self.cycle`` to a
    new request cycle when a request's headers are complete."""

    cycle: Any
    loop: Any
    transport: Any

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)  # type: ignore[call-arg]
        self._rz_timeout = float(getattr(config, "rnnzoo_header_timeout_s", 10.0))
        self._rz_max = int(getattr(config, "rnnzoo_max_header_bytes", 64 * 1024))
        self._rz_timer: Any = None
        self._rz_seen: Any = None
        self._rz_bytes = 0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._rz_arm()

    def _rz_arm(self) -> None:
        self._rz_bytes = 0
        self._rz_timer = self.loop.call_later(self._rz_timeout, self._rz_expired)

    def _rz_disarm(self) -> None:
        if self._rz_timer is not None:
            self._rz_timer.cancel()
            self._rz_timer = None

    def _rz_waiting(self) -> bool:
        """No request is being answered: the bytes that come are a request's headers."""
        return self.cycle is None or self.cycle is self._rz_seen and self.cycle.response_complete

    def data_received(self, data: bytes) -> None:
        waiting = self._rz_waiting()
        if waiting:
            if self._rz_timer is None:
                self._rz_arm()
            self._rz_bytes += len(data)
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not None and self.cycle is not self._rz_seen:
            self._rz_seen = self.cycle  # the headers are complete: a request runs
            self._rz_disarm()
        elif waiting and self._rz_bytes > self._rz_max and not self.transport.is_closing():
            self._rz_refuse(431, f"the request headers exceed {self._rz_max} bytes")

    def connection_lost(self, exc: Exception | None) -> None:
        self._rz_disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _rz_expired(self) -> None:
        self._rz_timer = None
        if self.transport.is_closing() or not self._rz_waiting():
            return
        if self._rz_bytes == 0:  # an idle connection: close it, nothing to answer
            self.transport.close()
            return
        self._rz_refuse(408, f"the request headers did not arrive within "
                             f"{self._rz_timeout:g} s")

    def _rz_refuse(self, status: int, message: str) -> None:
        self._rz_disarm()
        code = "header_timeout" if status == 408 else "headers_too_large"
        body = json.dumps({"error": message, "code": code}).encode()
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                             % (status, _REASONS[status], len(body), body))
        self.transport.close()


class H11WithLimits(_HeaderLimits, H11Protocol):
    """uvicorn's h11 protocol with the header limits."""


if HttpToolsProtocol is not None:
    class HttpToolsWithLimits(_HeaderLimits, HttpToolsProtocol):
        """uvicorn's httptools protocol with the header limits."""


def protocol_class() -> type:
    """The fastest protocol installed (httptools, else h11), with the header limits."""
    if HttpToolsProtocol is not None:
        return HttpToolsWithLimits
    return H11WithLimits  # pragma: no cover
