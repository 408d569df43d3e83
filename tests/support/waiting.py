"""Polling helpers for things that happen in the background."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], within: float = 45) -> T:
    """Poll `probe` until it returns something truthy; fail after `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while not (result := await probe()):
                await asyncio.sleep(0.1)
            return result
    except TimeoutError:
        raise AssertionError(f"condition not reached within {within}s") from None
