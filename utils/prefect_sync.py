"""The value of a Prefect 2 ``@sync_compatible`` call made from synchronous code, typed as such."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from typing import TypeVar, cast

T = TypeVar("T")


def blocking(result: Awaitable[T]) -> T:
    """Prefect 2 types ``create_table_artifact``, ``Flow.serve``, ``Deployment.build_from_flow`` and
    ``PrefectFuture.wait`` as coroutine functions; called outside an event loop they run to completion and return
    the value itself. This says so to the type checker, and refuses a coroutine (a call made from async code)."""
    if inspect.isawaitable(result):
        msg = "a Prefect sync_compatible call returned an awaitable: it was made from async code, await it there"
        raise TypeError(msg)
    return cast(T, result)
