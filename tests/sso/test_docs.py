"""Every CEL example in the SSO guide compiles, so the guide cannot drift from the library."""

import re
from pathlib import Path

import pytest

from mailgrant.sandbox.expression import expression_compile

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "sso.md"


def _examples() -> list[str]:
    blocks = re.findall(r"```cel\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return [
        line
        for block in blocks
        for line in block.splitlines()
        if line.strip() and not line.lstrip().startswith("//")
    ]


def test_the_guide_has_examples() -> None:
    assert len(_examples()) >= 6


@pytest.mark.parametrize("source", _examples())
def test_each_example_compiles(source: str) -> None:
    expression_compile(source)
