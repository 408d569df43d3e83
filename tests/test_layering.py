"""The rooms and who may import whom, read from the source (every import: module level,
TYPE_CHECKING and function-local alike).

- `store/` imports nothing of ours but itself; `tools/` nothing but itself;
- `agents/` imports neither `bot/` nor the composition root (`firebreak/*.py`);
- nothing imports the composition root but the root itself;
- no import cycle, between rooms or between modules;
- Block Kit (Slack rendering) is built in `bot/` only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROOMS = [
    "store",
    "tools",
    "scheduler",
    "incidents",
    "escalation",
    "remediation",
    "oncall",
    "access",
    "agents",
    "bot",
    "prompts",
]
COMPOSITION = "firebreak"  # the composition root: firebreak/*.py
MAY_NOT_IMPORT = {
    "store": set(ROOMS) - {"store"} | {COMPOSITION},
    "tools": set(ROOMS) - {"tools"} | {COMPOSITION},
    "agents": {"bot", COMPOSITION},
}


def _module_name(path: Path) -> str:
    """The installed name: `bot/cards.py` is `firebreak.bot.cards`, `firebreak/app.py` is
    `firebreak.app` (pyproject.toml maps the top-level rooms under `firebreak`)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts if parts[0] == COMPOSITION else [COMPOSITION, *parts])


def _room(module: str) -> str | None:
    """The room a `firebreak.…` module lives in (`firebreak` for the composition root)."""
    parts = module.split(".")
    if parts[0] != COMPOSITION:
        return None
    if len(parts) > 1 and parts[1] in ROOMS:
        return parts[1]
    return COMPOSITION


def _sources() -> Iterator[tuple[str, Path]]:
    for folder in [*ROOMS, COMPOSITION]:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" not in path.parts:
                yield _module_name(path), path


def _imports(path: Path, module: str) -> set[str]:
    """Every module `path` imports, wherever the import statement stands."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


MODULES = dict(_sources())
GRAPH = {
    module: {name for name in _imports(path, module) if name in MODULES and name != module}
    for module, path in MODULES.items()
}


def test_the_rooms_exist_and_are_read() -> None:
    assert len(MODULES) > 60
    assert {_room(m) for m in MODULES} >= {"store", "tools", "agents", "bot", COMPOSITION}


@pytest.mark.parametrize("room", sorted(MAY_NOT_IMPORT))
def test_a_room_imports_only_what_it_may(room: str) -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if _room(module) == room
        for target in targets
        if _room(target) in MAY_NOT_IMPORT[room]
    )
    assert wrong == []


def test_nothing_imports_the_composition_root_but_itself() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if _room(module) != COMPOSITION
        for target in targets
        if _room(target) == COMPOSITION
    )
    assert wrong == []


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph`, or None (depth-first search, colouring the nodes)."""
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_modules() -> None:
    assert _cycle(GRAPH) is None


def test_no_import_cycle_between_rooms() -> None:
    rooms: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        source = _room(module)
        assert source is not None
        rooms.setdefault(source, set()).update(
            room for target in targets if (room := _room(target)) not in (None, source)
        )
    assert _cycle(rooms) is None


def test_block_kit_is_built_in_bot_only() -> None:
    outside = sorted(
        module
        for module, path in MODULES.items()
        if _room(module) != "bot"
        and any(name.startswith("slack_sdk.models") for name in _imports(path, module))
    )
    assert outside == []


def test_the_checker_sees_each_kind_of_import(tmp_path: Path) -> None:
    """A check that cannot fail proves nothing: every form of import is found."""
    source = tmp_path / "probe.py"
    source.write_text(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import firebreak.bot.cards\n"
        "if TYPE_CHECKING:\n"
        "    from firebreak.app import create_app\n"
        "def late() -> None:\n"
        "    from firebreak.bot import replies\n"
    )
    found = _imports(source, "firebreak.agents.probe")
    assert {"firebreak.bot.cards", "firebreak.app", "firebreak.bot.replies"} <= found
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
