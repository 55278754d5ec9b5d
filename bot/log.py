"""structlog set-up, done once per process: JSON lines off a terminal, readable lines on one."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from bot.redaction import redact_log_event


class NamedWriteLogger(structlog.WriteLogger):
    """structlog's plain writer (a line and a flush, no stdlib `LogRecord`s, no frame walk),
    carrying the name the logger was asked for, as stdlib loggers do."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


def configure_logging(level: str = "INFO", *, json: bool | None = None) -> None:
    """Our structlog loggers write straight to stderr; the stdlib loggers (uvicorn, arq, httpx)
    go through the same processors and renderer by way of `ProcessorFormatter`.

    The direct path matters on the receiver, which writes a line per delivery: through stdlib
    `logging` that line was a third of an ignored delivery's CPU (benchmarks/README.md)."""
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    stream = sys.stderr

    def our_logger(*args: Any) -> NamedWriteLogger:
        return NamedWriteLogger(stream, str(args[0]) if args else "qwen_fix")

    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, redact_log_event, renderer],
        logger_factory=our_logger,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_log_event,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq", "arq.worker"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # One line per webhook is ours to write; uvicorn's access log would double it.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
