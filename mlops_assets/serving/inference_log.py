"""The inference log: one JSON line per forecast request and its answer, in rotated files of bounded size.

Lines are written by a background thread (a queue in between), so a slow disk never delays an answer. The
answer's predictions are embedded as the JSON the client received, unless it is larger than
``max_answer_bytes`` (then ``answer_truncated`` is true). ``monitoring.serving_requests`` reads these files.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FILE_NAME = "requests.jsonl"


class InferenceLog:
    def __init__(self, folder: Path, *, max_file_bytes: int = 20_000_000, backups: int = 10,
                 max_answer_bytes: int = 262_144):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / FILE_NAME
        self.max_answer_bytes = max_answer_bytes
        handler = logging.handlers.RotatingFileHandler(
            self.path, maxBytes=max_file_bytes, backupCount=backups, encoding="utf-8"
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._logger = logging.Logger(f"inference_log:{self.path}")
        self._logger.addHandler(logging.handlers.QueueHandler(self._queue))
        self._listener = logging.handlers.QueueListener(self._queue, handler)
        self._handler = handler
        self._listener.start()

    def write(self, record: dict[str, Any], answer: bytes | None) -> None:
        """Append a request's record; `answer` (the JSON body returned on success) is embedded as-is."""
        line = json.dumps({"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **record})
        if answer is not None:
            if len(answer) <= self.max_answer_bytes:
                line = f'{line[:-1]}, "answer": {answer.decode()}}}'
            else:
                line = f'{line[:-1]}, "answer_truncated": true}}'
        self._logger.info(line)

    def close(self) -> None:
        """Write what is queued and close the file."""
        self._listener.stop()
        self._handler.close()


def log_files(folder: Path) -> list[Path]:
    """The log and its rotated copies, oldest first (requests.jsonl.3, .2, .1, then requests.jsonl)."""
    rotated = sorted(folder.glob(f"{FILE_NAME}.*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    current = folder / FILE_NAME
    return [*rotated, *([current] if current.exists() else [])]
