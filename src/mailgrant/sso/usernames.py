"""The username a sign-in gives a new user: normalized and validated as the user model does,
and refused when it looks like one already taken (case, width, spaces, look-alike letters).

Look-alikes are compared on a skeleton: NFKC, casefolded, then every non-ASCII character that
Unicode's confusables table (through confusable-homoglyphs) maps to an ASCII one replaced by it,
so a case twin, a fullwidth spelling and a dotless-i spelling of "admin" all meet it."""

from __future__ import annotations

import unicodedata
from functools import cache

from confusable_homoglyphs.confusables import confusables_data
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError


def username_normalize(name: str) -> str:
    """The user model's normalization (NFKC), without surrounding white space."""
    return str(get_user_model().normalize_username(name)).strip()


def username_problem(name: str) -> str:
    """Why `name` (normalized) cannot name a user; "" when it can."""
    model = get_user_model()
    max_length = getattr(model._meta.get_field(model.USERNAME_FIELD), "max_length", None)
    if not name:
        return "it is empty"
    if max_length is not None and len(name) > max_length:
        return f"it is longer than {max_length} characters"
    validator = getattr(model, "username_validator", None)
    if validator is not None:
        try:
            validator(name)
        except ValidationError as exc:
            return " ".join(exc.messages)
    return ""


@cache
def _ascii_twin(char: str) -> str:
    twins = sorted(
        entry["c"]
        for entry in confusables_data.get(char, ())
        if entry["c"].isascii() and entry["c"].isprintable()
    )
    return twins[0].casefold() if twins else char


def username_skeleton(name: str) -> str:
    folded = unicodedata.normalize("NFKC", name).casefold().strip()
    return "".join(c if c.isascii() else _ascii_twin(c) for c in folded)


def username_taken(name: str) -> bool:
    """Whether a user exists whose username is `name` or looks like it."""
    model = get_user_model()
    users = model._default_manager
    if users.filter(**{f"{model.USERNAME_FIELD}__iexact": name}).exists():
        return True
    wanted = username_skeleton(name)
    names = users.values_list(model.USERNAME_FIELD, flat=True)
    return any(username_skeleton(existing) == wanted for existing in names.iterator())
