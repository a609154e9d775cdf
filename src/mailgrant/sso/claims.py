"""Reading claims by path and turning them into user fields. Plain values in, plain values out.

A path names a claim, then keys and list positions into it: ``email``, ``address.locality``,
``groups[0]``, ``org.teams[1].name``. A key that itself holds a dot can be quoted:
``["https://example.com/roles"]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# The user fields a provider may set. is_superuser and is_active are deliberately absent: an
# identity provider's claim must not make a superuser nor re-enable a user an admin disabled.
MAPPABLE_FIELDS: dict[str, str] = {
    "username": "text",
    "email": "text",
    "first_name": "text",
    "last_name": "text",
    "is_staff": "bool",
    "groups": "list",
}
TEXT_LIMITS = {"username": 150, "email": 254, "first_name": 150, "last_name": 150}

_STEP = re.compile(r'\.?([A-Za-z_][\w\-:]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


class ClaimPathError(ValueError):
    """The path itself is malformed (a form error, found when the client is saved)."""


class ClaimMissing(LookupError):
    def __init__(self, path: str) -> None:
        super().__init__(f"the provider sent no {path!r} claim")
        self.path = path


class ClaimTypeError(ValueError):
    pass


def claim_path_parse(path: str) -> tuple[str | int, ...]:
    steps: list[str | int] = []
    position = 0
    if not path or len(path) > 200:
        raise ClaimPathError("a claim path is 1 to 200 characters")
    while position < len(path):
        match = _STEP.match(path, position)
        if match is None or (position == 0 and path.startswith(".")):
            raise ClaimPathError(f"cannot read the claim path {path!r} at position {position + 1}")
        name, index, quoted = match.groups()
        if name is not None:
            steps.append(name)
        elif index is not None:
            steps.append(int(index))
        else:
            steps.append(quoted.replace('\\"', '"').replace("\\\\", "\\"))
        position = match.end()
    if not isinstance(steps[0], str):
        raise ClaimPathError(f"the claim path {path!r} must start with a claim name")
    return tuple(steps)


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at `path`, or ClaimMissing when any step is absent (or null)."""
    value: Any = claims
    for step in claim_path_parse(path):
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                raise ClaimMissing(path)
            value = value[step]
        else:
            if not isinstance(value, Mapping) or step not in value:
                raise ClaimMissing(path)
            value = value[step]
        if value is None:
            raise ClaimMissing(path)
    return value


def field_value(field: str, value: Any) -> Any:
    """A claim's value as the user field wants it; ClaimTypeError when it cannot be."""
    kind = MAPPABLE_FIELDS[field]
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"
        raise ClaimTypeError(f"{field} needs true or false, not {type(value).__name__}")
    if kind == "list":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ClaimTypeError(f"{field} needs a list of names")
        return [i[:150] for i in items]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ClaimTypeError(f"{field} needs text, not {type(value).__name__}")
    return str(value)[: TEXT_LIMITS[field]]


def user_fields_check(mapping: Any) -> dict[str, str]:
    """Errors of a user_fields mapping (field -> claim path), keyed by the field it names."""
    if not isinstance(mapping, dict):
        return {"user_fields": 'a JSON object of user field -> claim path, e.g. {"email": "email"}'}
    errors: dict[str, str] = {}
    for field, path in mapping.items():
        if field not in MAPPABLE_FIELDS:
            errors[field] = f"not a field a provider may set (one of {', '.join(MAPPABLE_FIELDS)})"
        elif not isinstance(path, str):
            errors[field] = "the claim path must be text"
        else:
            try:
                claim_path_parse(path)
            except ClaimPathError as exc:
                errors[field] = str(exc)
    return errors


def user_fields_from_claims(
    mapping: Mapping[str, str], claims: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The mapped user fields and, for the ones left out, why (a claim missing or ill-typed)."""
    fields: dict[str, Any] = {}
    notes: list[str] = []
    for field, path in mapping.items():
        try:
            fields[field] = field_value(field, claim_at(claims, path))
        except (ClaimMissing, ClaimTypeError) as exc:
            notes.append(f"{field}: {exc}")
    return fields, notes
