"""What to tell someone whose config has a key Firebreak does not know.

Two mistakes account for most unknown keys: a typo (`slack.chanel`), answered with the
closest real key at that place ("did you mean slack.channel?", difflib over the fields of the
section the key sits in, found by walking the config models, so sections added later get the
same help), and a secret pasted into the file (`slack: {bot_token: xoxb-…}`), answered with
the environment variable it belongs in. The pasted value is never repeated back.

Kept apart from `firebreak/config.py` so the section models there stay the only thing that
file grows by; the models are passed in, this module imports none of them.
"""

from __future__ import annotations

import difflib
import itertools
import re
import types
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

__all__ = ["secret_variable", "suggest_key", "unknown_key_message"]

_WORD = re.compile(r"[a-z0-9]+")
_SECRET_WORDS = {"token", "secret", "password", "passwd", "apikey", "credential", "credentials"}
_SECRET_PAIRS = {("api", "key"), ("private", "key"), ("access", "key"), ("signing", "key")}
# Values with a vendor's shape name their variable whatever the key is called.
_SECRET_VALUES = (
    (re.compile(r"^xapp-"), "SLACK_APP_TOKEN"),
    (re.compile(r"^xox[abposr]-"), "SLACK_BOT_TOKEN"),
    (re.compile(r"^sk-[A-Za-z0-9_-]{8,}"), "OPENAI_API_KEY"),
)
# First rule whose words all appear in the key's path wins.
_SECRET_KEYS: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"signing"}), "SLACK_SIGNING_SECRET"),
    (frozenset({"slack", "app"}), "SLACK_APP_TOKEN"),
    (frozenset({"xapp"}), "SLACK_APP_TOKEN"),
    (frozenset({"slack"}), "SLACK_BOT_TOKEN"),
    (frozenset({"bot"}), "SLACK_BOT_TOKEN"),
    (frozenset({"webhook"}), "FIREBREAK_WEBHOOK_TOKEN"),
    (frozenset({"webhooks"}), "FIREBREAK_WEBHOOK_TOKEN"),
    (frozenset({"openai"}), "OPENAI_API_KEY"),
    (frozenset({"llm"}), "OPENAI_API_KEY"),
    (frozenset({"alertmanager"}), "FIREBREAK_ALERTMANAGER_TOKEN"),
    (frozenset({"api"}), "FIREBREAK_API_TOKEN"),
)


def unknown_key_message(
    loc: Sequence[str | int],
    shown: Sequence[str],
    value: Any,
    root: type[BaseModel],
    variables: Iterable[str],
) -> str:
    """The problem text for an unknown key: where its secret belongs, else the closest real
    key, else just "unknown key". `loc` is pydantic's error location (union tags included),
    `shown` the same path as the message prints it."""
    variable = secret_variable(shown, value, variables)
    if variable is not None:
        return f"secrets come from the environment: {variable}, not from the config"
    suggestion = suggest_key(loc, shown, root)
    return f"unknown key (did you mean {suggestion}?)" if suggestion else "unknown key"


def secret_variable(path: Sequence[str | int], value: Any, variables: Iterable[str]) -> str | None:
    """The environment variable a secret at `path` belongs in; None when it is no secret.
    When the key says "secret" but not whose, every variable is named."""
    if isinstance(value, str):
        for shape, variable in _SECRET_VALUES:
            if shape.match(value.strip()):
                return variable
    if not path or not _names_a_secret(str(path[-1])):
        return None
    words = {w for part in path for w in _words(str(part))}
    for needed, variable in _SECRET_KEYS:
        if needed <= words:
            return variable
    return " or ".join(variables)


def suggest_key(
    loc: Sequence[str | int], shown: Sequence[str], root: type[BaseModel]
) -> str | None:
    """The dotted path of the real key closest to the unknown last one, if one is close."""
    if not loc or not shown:
        return None
    model = _model_at(root, loc[:-1])
    if model is None:
        return None
    names = list(model.model_fields)
    by_lower = {name.lower(): name for name in names}
    close = difflib.get_close_matches(str(loc[-1]).lower(), list(by_lower), n=1, cutoff=0.6)
    if not close:
        return None
    return ".".join([*shown[:-1], by_lower[close[0]]])


def _words(key: str) -> list[str]:
    return _WORD.findall(key.lower())


def _names_a_secret(key: str) -> bool:
    words = _words(key)
    if _SECRET_WORDS.intersection(words):
        return True
    return any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words))


def _model_at(root: type[BaseModel], path: Sequence[str | int]) -> type[BaseModel] | None:
    current: Any = root
    for part in path:
        current = _step(current, part)
        if current is None:
            return None
    current = _single_model(current)
    return current if _is_model(current) else None


def _step(annotation: Any, part: str | int) -> Any:
    annotation = _single_model(annotation)
    if _is_model(annotation):
        field = annotation.model_fields.get(str(part))
        return field.annotation if field is not None else None
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset) and isinstance(part, int):
        args = get_args(annotation)
        return args[0] if args else None
    if origin is dict:
        args = get_args(annotation)
        return args[1] if len(args) == 2 else None
    if _is_union(annotation) and isinstance(part, str):  # a tagged member: pick it by its tag
        for member in _members(annotation):
            if _is_model(member) and _has_tag(member, part):
                return member
    return None


def _single_model(annotation: Any) -> Any:
    """`X | None`, `Annotated[X, ...]` → X; a union of several models stays as it is."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if _is_union(annotation):
        members = [m for m in _members(annotation) if m is not type(None)]
        if len(members) == 1:
            return _single_model(members[0])
    return annotation


def _members(annotation: Any) -> list[Any]:
    out = []
    for member in get_args(annotation):
        while get_origin(member) is Annotated:
            member = get_args(member)[0]
        out.append(member)
    return out


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _has_tag(model: type[BaseModel], tag: str) -> bool:
    for field in model.model_fields.values():
        if get_origin(field.annotation) is Literal and tag in get_args(field.annotation):
            return True
    return False
