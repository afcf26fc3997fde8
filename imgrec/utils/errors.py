"""User-facing errors: one line that names the file or value and what is wrong."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ImgrecError(Exception):
    """Bad input or configuration. The entry points print it as one line and exit non-zero."""


def user_error(exc: BaseException | None) -> ImgrecError | None:
    """The ImgrecError behind ``exc``, also when it is the cause of another (Hydra's instantiate wraps them)."""
    while exc is not None and not isinstance(exc, ImgrecError):
        exc = exc.__cause__
    return exc


def exit_on_user_error(work: Callable[..., T], *args: object) -> T:
    """Run an entry point's ``work``: an ImgrecError (see :func:`user_error`) is logged and ends the
    process with one line ``error: ...``."""
    try:
        return work(*args)
    except Exception as exc:
        err = user_error(exc)
        if err is None:
            raise
        logging.getLogger(work.__module__).error("%s", err)
        raise SystemExit(f"error: {err}") from None
