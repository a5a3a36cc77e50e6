"""Follow the champion alias: ask the registry every few seconds, and load the version it points at.

The MLflow registry behind this product (SQLite) has no webhooks, so the watch polls. A new version is
loaded beside the old one, which keeps answering until the swap; a version that fails to load is not
served, the old one stays, and the next poll tries again. A rollback (the alias moved back) is a move
like any other.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class AliasWatch:
    def __init__(
        self,
        alias_version: Callable[[], str | None],
        serve_version: Callable[[str], None],
        served_version: Callable[[], str],
        *,
        poll_seconds: float,
        on_poll: Callable[[str], None] = lambda _v: None,
        on_error: Callable[[str, Exception], None] = lambda _what, _e: None,
    ):
        self._alias_version, self._serve, self._served = alias_version, serve_version, served_version
        self._on_poll, self._on_error = on_poll, on_error
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alias-watch", daemon=True)

    def poll_once(self) -> str | None:
        """One poll: the version now served if it changed, else None."""
        try:
            wanted = self._alias_version()
        except Exception as error:  # a registry outage must not stop the watch or the server
            self._on_error("poll", error)
            log.warning("champion alias poll failed: %s", error)
            return None
        if wanted is None:
            self._on_error("poll", LookupError("the champion alias is gone"))
            log.warning("the champion alias points at no version; still serving version %s", self._served())
            return None
        self._on_poll(wanted)
        if wanted == self._served():
            return None
        previous = self._served()
        try:
            self._serve(wanted)
        except Exception as error:
            self._on_error("load", error)
            log.error("champion moved to version %s but it failed to load (%s); still serving version %s",
                      wanted, error, previous)
            return None
        log.info("champion moved: now serving version %s (was %s)", wanted, previous)
        return wanted

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.poll_once()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
