"""Ending a long-running HTTP stream (a watch, a followed log) from another thread, at once.

Ctrl-C must not wait for a watch window or a quiet log to end: ``cancel_all``
calls ``stop`` on each stream's handle, which shuts the socket down under the
reading thread.
"""
from __future__ import annotations

import socket
import threading
from typing import Any


class WatchHandle:
    """Lets another thread end a running watch, or a pause between watches, at once (cancel_all)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._response: Any = None
        self._stopped = threading.Event()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def pause(self, seconds: float) -> None:
        """Sleep, but wake up as soon as ``stop`` is called."""
        self._stopped.wait(seconds)

    def attach(self, response: Any) -> None:
        with self._lock:
            self._response = response
            if self.stopped:
                _shutdown(response)

    def detach(self) -> None:
        with self._lock:
            self._response = None

    def stop(self) -> None:
        with self._lock:
            self._stopped.set()
            if self._response is not None:
                _shutdown(self._response)


def _shutdown(response: Any) -> None:
    """Unblock a thread reading this response (closing alone may wait on the socket lock)."""
    sock = getattr(getattr(response, "connection", None), "sock", None)
    try:
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
