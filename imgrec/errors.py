"""User-facing errors: one line that names the file or value and what is wrong."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ImgrecError(Exception):
    """Bad input or configuration. The entry points print it as one line and exit non-zero."""


def exit_on_user_error(work: Callable[..., T], *args: object) -> T:
    """Run an entry point's ``work``: an ImgrecError, also one wrapped as the cause of another exception
    (Hydra's instantiate wraps them), is logged and ends the process with one line ``error: ...``."""
    try:
        return work(*args)
    except Exception as exc:
        err: BaseException | None = exc
        while err is not None and not isinstance(err, ImgrecError):
            err = err.__cause__
        if err is None:
            raise
        logging.getLogger(work.__module__).error("%s", err)
        raise SystemExit(f"error: {err}") from None
