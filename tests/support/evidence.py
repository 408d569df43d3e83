"""Evidence items for the tests that build some by hand: what a test does not look at keeps
the values of one pod on one cluster."""

from __future__ import annotations

from typing import Any

from firebreak.tools.models import KubeFinding


def kube_finding(kind: str, text: str, **changes: Any) -> KubeFinding:
    """A cluster finding `K1` about `pod/checkout-1` on the `prod` cluster, with `changes`."""
    values: dict[str, Any] = {"ref": "K1", "source": "prod", "object": "pod/checkout-1"}
    return KubeFinding(**(values | changes), kind=kind, text=text)
