"""Which components `serve` starts, in order. Each later issue adds its own here."""

from __future__ import annotations

from firebreak.app import Component, Runtime


def default_components(runtime: Runtime) -> list[Component]:
    return []
