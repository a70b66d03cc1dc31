"""HTTP for DICOMweb with a connect timeout and a total deadline on every call.

requests' timeouts bound each socket operation, not a request: a server that sends one byte
every 10 s never trips a 30 s read timeout and is waited on for ever. Here a call (one
:func:`deadline` block, however many requests and body reads it makes) also has a deadline: a
timer shuts the call's sockets down when it passes, which wakes the blocked read, and
:attr:`Watch.expired` tells the caller why the read failed. Retries are off: a clinician waiting
on a dialog wants the failure in seconds, not after a back-off.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..settings import env_number

# defaults and ranges in settings.NUMBERS: a PACS on the hospital network connects in
# milliseconds, so 3 s reports a dropped connection well within the 5 s a user waits; 30 s per
# call fetches a 40 MB radiograph at 11 Mbit/s
CONNECT_ENV = "LUNG_UNET_DICOMWEB_CONNECT_TIMEOUT"
DEADLINE_ENV = "LUNG_UNET_DICOMWEB_DEADLINE"


def connect_timeout() -> float:
    return env_number(CONNECT_ENV)


def deadline_seconds() -> float:
    return env_number(DEADLINE_ENV)


@dataclass
class Watch:
    """One call's deadline: the sockets it opened, shut down when the time is up."""

    seconds: float
    expired: bool = False
    _sockets: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:  # registered after the time was up: stop it at once
                _shut(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:  # shutdown, not close: it wakes a recv() blocked in another thread
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


_current = threading.local()  # the Watch of the call running in this thread, if any


@contextmanager
def deadline(seconds: float | None = None) -> Iterator[Watch]:
    """Every request this thread makes inside the block ends by ``seconds`` (default :func:`deadline_seconds`)."""
    watch = Watch(deadline_seconds() if seconds is None else seconds)
    timer = threading.Timer(watch.seconds, watch.expire)
    timer.daemon = True
    outer = getattr(_current, "watch", None)
    _current.watch = watch
    timer.start()
    try:
        yield watch
    finally:
        timer.cancel()
        _current.watch = outer


def _register(sock: socket.socket | None) -> None:
    watch = getattr(_current, "watch", None)
    if watch is not None:
        watch.add(sock)


class _Watched:
    """Mixed into urllib3's connections: each socket joins the running call's :class:`Watch`."""

    sock: socket.socket | None

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _register(self.sock)

    def getresponse(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201 (urllib3's signature)
        _register(self.sock)  # a kept-alive connection was opened by an earlier call
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


class Session(requests.Session):
    """A requests session whose every request has the connect timeout, no retries, and watched sockets."""

    def __init__(self) -> None:
        super().__init__()
        self.connect_s = connect_timeout()
        self.deadline_s = deadline_seconds()
        for prefix in ("http://", "https://"):
            self.mount(prefix, _Adapter(max_retries=0))

    def request(self, method, url, **kwargs):  # noqa: ANN001, ANN003, ANN201 (requests' signature)
        # the watch, not the socket, ends a slow answer: the read timeout only backs it up
        kwargs["timeout"] = (self.connect_s, self.deadline_s + 1.0)
        return super().request(method, url, **kwargs)
