"""The user create expression (CEL): compile errors, decisions, evaluation errors, the hostile
corpus, the worker process that runs it, and property tests over random input."""

from __future__ import annotations

import datetime
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailgrant.sandbox import expression as expression_module
from mailgrant.sandbox.expression import (
    MAX_SOURCE_CHARS,
    WORKER_MEMORY_BYTES,
    CompiledExpression,
    ExpressionError,
    ExpressionResult,
    ExpressionSyntaxError,
    expression_compile,
    expression_evaluate,
)

CLAIMS: dict[str, Any] = {
    "sub": "248289761001",
    "email": "jane.doe@example.com",
    "email_verified": True,
    "groups": ["staff", "admins", "group-3"],
    "org": {"department": {"name": "IT", "code": 42}, "level": 4},
}
USER: dict[str, Any] = {"username": "jane.doe", "email": "jane.doe@example.com"}
EXAMPLE = 'claims.email.endsWith("@example.com") && "staff" in claims.groups'


def evaluate(
    source: str | CompiledExpression,
    claims: dict[str, Any] | None = None,
    user: dict[str, Any] | None = None,
    timeout: float = 10.0,
) -> ExpressionResult:
    return expression_evaluate(
        source,
        claims=CLAIMS if claims is None else claims,
        user=USER if user is None else user,
        timeout=timeout,
    )


# --- compile -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line", "column", "says"),
    [
        ("claims.email +", 1, 15, "Syntax error"),
        ('claims.email == "a"\n  && )', 2, 6, "Syntax error"),
        ('claims.email == "unterminated', 1, 17, "Syntax error"),
        ("foo == 1", 1, 1, "undeclared reference to 'foo'"),
        ('claims.email == "a" && session.admin', 1, 31, "undeclared reference to 'session.admin'"),
        ('claims.email.nosuchfunction("x")', 1, 28, "nosuchfunction"),
        ('1 + "a" == 2', 1, 3, "no matching overload for '_+_' applied to '(int, string)'"),
    ],
)
def test_compile_error_names_line_and_column(
    source: str, line: int, column: int, says: str
) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        expression_compile(source)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert caught.value.message.startswith(f"line {line}, column {column}: ")
    assert says in caught.value.message


def test_source_over_the_length_limit_is_refused_at_the_limit() -> None:
    source = "true && " * (MAX_SOURCE_CHARS // 8) + "true"
    with pytest.raises(ExpressionSyntaxError) as caught:
        expression_compile(source)
    assert (caught.value.line, caught.value.column) == (1, MAX_SOURCE_CHARS + 1)
    assert "longer than 4,096 characters" in caught.value.message


def test_source_at_the_length_limit_compiles() -> None:
    source = "true" + " " * (MAX_SOURCE_CHARS - 4)
    assert expression_compile(source).result_type == "bool"


@pytest.mark.parametrize("source", ["", "   \n\t "])
def test_empty_source_is_refused(source: str) -> None:
    with pytest.raises(ExpressionSyntaxError, match="empty"):
        expression_compile(source)


@pytest.mark.parametrize(
    ("source", "line", "column"), [("true\n&& tr\x00ue", 2, 6), ("true || \ud800", 1, 9)]
)
def test_invalid_characters_are_refused_with_their_position(
    source: str, line: int, column: int
) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        expression_compile(source)
    assert (caught.value.line, caught.value.column) == (line, column)


def test_source_that_is_not_text_is_refused() -> None:
    with pytest.raises(ExpressionSyntaxError, match="text"):
        expression_compile(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "returns"),
    [
        ("1 + 1", "int"),
        ('"yes"', "string"),
        ("claims.groups.size()", "int"),
        ('["a"]', "list"),
        ("null", "null"),
    ],
)
def test_result_that_can_only_be_neither_bool_nor_map_is_refused_at_compile(
    source: str, returns: str
) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        expression_compile(source)
    assert caught.value.message.startswith(f"the expression returns {returns}")
    assert "bool" in caught.value.message and "map" in caught.value.message


@pytest.mark.parametrize("source", ["{1: true}", "{2.5: true}", "{claims: true}"])
def test_map_with_keys_that_are_not_strings_is_refused_at_compile(source: str) -> None:
    with pytest.raises(ExpressionSyntaxError, match="keys must be field names"):
        expression_compile(source)


def test_nesting_over_the_limit_is_refused() -> None:
    with pytest.raises(ExpressionSyntaxError, match="nests too deeply") as caught:
        expression_compile("(" * 40 + "true" + ")" * 40)
    assert caught.value.line is None


@pytest.mark.parametrize(
    ("source", "result_type"),
    [
        (EXAMPLE, "bool"),
        ('{"is_staff": "admins" in claims.groups}', "map"),
        ("claims.email_verified", "dyn"),
    ],
)
def test_compile_reports_the_checked_result_type(source: str, result_type: str) -> None:
    assert expression_compile(source) == CompiledExpression(source, result_type)  # type: ignore


def test_syntax_error_is_an_expression_error() -> None:
    assert issubclass(ExpressionSyntaxError, ExpressionError)
    with pytest.raises(ExpressionSyntaxError):
        evaluate("claims.email +")


# --- decisions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "claims", "decision"),
    [
        ("true", CLAIMS, True),
        ("false", CLAIMS, False),
        (EXAMPLE, CLAIMS, True),
        (EXAMPLE, {**CLAIMS, "email": "jane@elsewhere.org"}, False),
        (EXAMPLE, {**CLAIMS, "groups": ["admins"]}, False),
        ('"staff" in claims.groups', CLAIMS, True),
        ('claims.org.department.name == "IT" && claims.org.level >= 3', CLAIMS, True),
        ('claims["org"]["department"]["code"] == 41', CLAIMS, False),
        ('user.username.startsWith("jane")', CLAIMS, True),
        ('claims.email.matches("^[a-z.]+@(example|corp)\\\\.com$")', CLAIMS, True),
        (
            'claims.email.lowerAscii().endsWith("@example.com")',
            {**CLAIMS, "email": "Jane.Doe@EXAMPLE.com"},
            True,
        ),
        ('claims.email.split("@")[1] == "example.com"', CLAIMS, True),
        ('has(claims.tenant) && claims.tenant == "x"', CLAIMS, False),
        ('claims.?tenant.orValue("none") == "none"', CLAIMS, True),
        ("claims.email_verified", CLAIMS, True),
        ("claims.huge > 1.0", {"huge": 2**70}, True),
        ('claims.groups.exists(g, g.startsWith("group-"))', CLAIMS, True),
    ],
)
def test_bool_result_decides_without_fields(
    source: str, claims: dict[str, Any], decision: bool
) -> None:
    assert evaluate(source, claims) == ExpressionResult(decision=decision, fields=None)


@pytest.mark.parametrize(
    ("source", "fields"),
    [
        ('{"is_staff": "admins" in claims.groups}', {"is_staff": True}),
        ('{"is_staff": "root" in claims.groups}', {"is_staff": False}),
        ("{}", {}),
        ('{"create": true}', {}),
        (
            '{"create": claims.email_verified, "department": claims.org.department.name,'
            ' "level": claims.org.level, "groups": claims.groups}',
            {"department": "IT", "level": 4, "groups": ["staff", "admins", "group-3"]},
        ),
        (
            '{"first_name": claims.email.split(".")[0], "tags": []}',
            {"first_name": "jane", "tags": []},
        ),
    ],
)
def test_map_result_creates_with_its_fields(source: str, fields: dict[str, Any]) -> None:
    assert evaluate(source) == ExpressionResult(decision=True, fields=fields)


def test_map_with_create_false_creates_nothing() -> None:
    result = evaluate('{"create": "staff" in claims.groups && false, "is_staff": true}')
    assert result == ExpressionResult(decision=False, fields=None)


def test_compiled_expression_and_source_give_the_same_result() -> None:
    compiled = expression_compile(EXAMPLE)
    assert evaluate(compiled) == evaluate(EXAMPLE) == ExpressionResult(decision=True)


def test_claims_of_every_json_type_reach_the_expression() -> None:
    claims = {
        "s": "x",
        "i": -3,
        "f": 2.5,
        "b": False,
        "n": None,
        "l": [1, "a", None],
        "m": {"k": [{"deep": True}]},
        "t": ("tuple", "as list"),
    }
    source = (
        'claims.s == "x" && claims.i == -3 && claims.f == 2.5 && !claims.b && '
        "claims.n == null && size(claims.l) == 3 && claims.m.k[0].deep && "
        'claims.t[1] == "as list"'
    )
    assert evaluate(source, claims).decision is True


# --- evaluation errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "claims", "says"),
    [
        ('claims.department == "IT"', CLAIMS, 'no such key "department"'),
        ('claims.org.team == "x"', CLAIMS, 'no such key "team"'),
        ('user.missing == "x"', CLAIMS, 'no such key "missing"'),
        ("dyn(claims.email) > 1", CLAIMS, "wrong types"),
        ("claims.email.domain == 1", CLAIMS, "not a map"),
        ("claims.email_verified", {"email_verified": "yes"}, "returned string, not a bool"),
        ("claims.org", {"org": ["a"]}, "returned list, not a bool or a map"),
        ("claims.level / 0 == 1", {"level": 1}, "divide by zero"),
        ('claims.groups[7] == "x"', CLAIMS, "index"),
        ('claims.email.matches("(a)\\\\1")', CLAIMS, "invalid regular expression"),
        ('{"level": 1.5}', CLAIMS, 'field "level" is double'),
        ('{"manager": null}', CLAIMS, 'field "manager" is null'),
        ('{"org": claims.org}', CLAIMS, 'field "org" is map'),
        ('{"codes": [1, 2]}', CLAIMS, 'field "codes" is a list with a non-string element'),
        ('{"at": timestamp("2026-01-01T00:00:00Z")}', CLAIMS, 'field "at" is timestamp'),
        ('{"create": "yes"}', CLAIMS, '"create" must be a bool'),
        ('{"bad-name": true}', CLAIMS, '"bad-name" is not a field name'),
        ('{"_private": true}', CLAIMS, '"_private" is not a field name'),
        ("claims.org", {"org": {"1": True}}, '"1" is not a field name'),
    ],
)
def test_evaluation_error_says_what_went_wrong(
    source: str, claims: dict[str, Any], says: str
) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate(source, claims)
    assert not isinstance(caught.value, ExpressionSyntaxError)
    assert says in caught.value.message


def test_missing_claim_message_suggests_has() -> None:
    with pytest.raises(ExpressionError, match=r"has\(claims.department\)"):
        evaluate('claims.department == "IT"')


@pytest.mark.parametrize(
    ("claims", "says"),
    [
        ({"when": datetime.date(2026, 1, 1)}, "claims.when: a date, not a JSON value"),
        ({"org": {"tags": [1, object()]}}, "claims.org.tags[1]: a object, not a JSON value"),
        ({"org": {2: "x"}}, "claims.org: a key that is not a string (int)"),
        ({"blob": b"bytes"}, "claims.blob: a bytes, not a JSON value"),
    ],
)
def test_claims_that_are_not_json_are_refused_naming_the_path(
    claims: dict[str, Any], says: str
) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate("true", claims)
    assert caught.value.message == says


def test_claims_that_are_not_a_map_are_refused() -> None:
    with pytest.raises(ExpressionError, match="claims must be a map, not list"):
        evaluate("true", ["a"])  # type: ignore[arg-type]


def test_user_fields_are_checked_like_claims() -> None:
    with pytest.raises(ExpressionError, match=r"user\.joined: a datetime"):
        evaluate("true", user={"joined": datetime.datetime(2026, 1, 1)})


def test_claims_nested_too_deeply_are_refused() -> None:
    deep: dict[str, Any] = {"a": 1}
    for _ in range(100_000):  # in-process, this depth crashes every native CEL binding
        deep = {"a": deep}
    with pytest.raises(ExpressionError, match="nested deeper than 32 levels"):
        evaluate("has(claims.deep)", {"deep": deep})


def test_claims_over_the_size_limit_are_refused() -> None:
    with pytest.raises(ExpressionError, match="larger than 1 MiB"):
        evaluate("true", {"groups": ["g" * 100] * 20_000})


def test_lone_surrogates_in_claims_are_replaced_not_fatal() -> None:
    assert evaluate('claims.name.startsWith("a")', {"name": "a\ud800b"}).decision is True


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_time_bound_must_be_a_positive_number(timeout: float) -> None:
    with pytest.raises(ExpressionError, match="positive number of seconds"):
        evaluate("true", timeout=timeout)


# --- the hostile corpus --------------------------------------------------------------------

DIGITS = "[0,1,2,3,4,5,6,7,8,9]"
NINETY = "[" + ",".join(str(n) for n in range(90)) + "]"
HOSTILE = {
    "parentheses nested 1,000 deep": "(" * 1000 + "true" + ")" * 1000,
    "parentheses nested 33 deep": "(" * 33 + "true" + ")" * 33,
    "lists nested 1,000 deep": "[" * 1000 + "]" * 1000 + " == []",
    "100,000 negations": "!" * 100_000 + "true",
    "an operator chain of 2,000": " + ".join(["1"] * 2000) + " > 0",
    "a member chain of 1,000": "claims" + ".a" * 1000 + " == 1",
    "string doubled 40 times": '["a"]' + ".map(x, x + x)" * 40 + "[0].size() > 0",
    "string doubled 27 times": '["a"]' + ".map(x, x + x)" * 27 + "[0].size() > 0",
    "list doubled 27 times": "[[1]]" + ".map(x, x + x)" * 27 + "[0].size() > 0",
    "string replace blow-up": '"ab"' + '.replace("", "' + "x" * 32 + '")' * 6 + ".size() > 0",
    "10^8 nested map steps": f"{DIGITS}.map(a, " * 8 + "a" + ")" * 8 + ".size() > 0",
    "10^8 nested exists steps": f"{DIGITS}.exists(a, " * 8 + "a == 11" + ")" * 8,
    "size of a 10^7 list": "size(" + f"{DIGITS}.map(a, " * 7 + "a" + ")" * 7 + ") > 0",
    "a loop over a large claim list": "claims.many.all(x, x >= 0)",
    "claims.__class__": "claims.__class__ == claims",
    'claims["__class__"]': 'claims["__class__"] == claims',
    "user.__init__.__globals__": "user.__init__.__globals__ == user",
    "claims.__dict__ via has": "has(claims.__dict__.items) ",
    "a regex backreference": '"aa".matches("(a)\\\\1")',
    "RE2 over a 16 MB string 8,100 times": '["a"]'
    + ".map(x, x + x)" * 24
    + f'.exists(s, {NINETY}.exists(i, {NINETY}.exists(j, s.matches("b"))))',
    "int64 overflow": "9223372036854775807 + 1 > 0",
    "int growth by squaring": "[3]" + ".map(x, x * x)" * 12 + "[0] > 0",
    "an int literal over int64": "99999999999999999999 > 0",
    "a 10 MB literal": '"' + "a" * 10_000_000 + '".size() > 0',
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("source", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_expression_is_refused_within_the_time_bound(source: str) -> None:
    claims = {**CLAIMS, "many": list(range(20_000))}
    with pytest.raises(ExpressionError) as caught:
        evaluate(source, claims, timeout=2.0)
    assert caught.value.message
    # the next evaluation works: whatever happened in the worker did not reach this process
    assert evaluate(EXAMPLE).decision is True


@pytest.mark.timeout(120)
def test_catastrophic_backtracking_regex_answers_at_once_under_re2() -> None:
    source = '"' + "a" * 60 + '!".matches("^(a+)+$")'
    assert evaluate(source, timeout=2.0) == ExpressionResult(decision=False)


@pytest.mark.timeout(120)
def test_time_bound_stops_the_evaluation_and_says_so() -> None:
    with pytest.raises(ExpressionError, match="took longer than 1 s and was stopped"):
        evaluate(HOSTILE["RE2 over a 16 MB string 8,100 times"], timeout=1.0)


@pytest.mark.timeout(120)
def test_one_hostile_evaluation_does_not_hold_up_others() -> None:
    outcomes: dict[str, Any] = {}

    def run(name: str, source: str, timeout: float) -> None:
        try:
            outcomes[name] = evaluate(source, timeout=timeout).decision
        except ExpressionError as exc:
            outcomes[name] = exc.message

    threads = [
        threading.Thread(
            target=run, args=("hostile", HOSTILE["RE2 over a 16 MB string 8,100 times"], 3.0)
        )
    ]
    threads += [threading.Thread(target=run, args=(f"login-{n}", EXAMPLE, 30.0)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert "took longer than 3 s" in outcomes.pop("hostile")
    assert outcomes == {"login-0": True, "login-1": True, "login-2": True}


# --- the worker process --------------------------------------------------------------------


@pytest.fixture
def worker() -> Any:
    started = expression_module._Worker()
    yield started
    started.kill()


def test_worker_has_no_environment_and_bounded_resources(worker: Any) -> None:
    proc = Path(f"/proc/{worker.process.pid}")
    assert proc.joinpath("environ").read_bytes() == b""
    limits = proc.joinpath("limits").read_text()
    address_space = next(
        line for line in limits.splitlines() if line.startswith("Max address space")
    )
    assert address_space.split()[3:5] == [str(WORKER_MEMORY_BYTES)] * 2
    core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core.split()[4:6] == ["0", "0"]


def test_worker_environment_keeps_web_process_secrets_out(monkeypatch: Any) -> None:
    monkeypatch.setenv("MAILGRANT_SECRET_KEY", "canary-secret-5f3a")
    started = expression_module._Worker()
    try:
        environ = Path(f"/proc/{started.process.pid}/environ").read_bytes()
    finally:
        started.kill()
    assert b"canary-secret-5f3a" not in environ


def test_worker_that_died_gives_an_error_and_is_replaced() -> None:
    dead = expression_module._Worker()
    dead.process.kill()
    dead.process.wait()
    expression_module._pool.idle.append(dead)
    try:
        with pytest.raises(ExpressionError, match="evaluator stopped"):
            evaluate(EXAMPLE)
    finally:
        if dead in expression_module._pool.idle:
            expression_module._pool.idle.remove(dead)
    assert evaluate(EXAMPLE).decision is True


def test_timed_out_worker_is_killed() -> None:
    before = set(_worker_pids())
    with pytest.raises(ExpressionError, match="took longer"):
        evaluate(HOSTILE["RE2 over a 16 MB string 8,100 times"], timeout=0.5)
    assert not (set(_worker_pids()) - before)


def _worker_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = entry.joinpath("status").read_text()
            cmdline = entry.joinpath("cmdline").read_bytes()
        except OSError:
            continue
        if f"PPid:\t{os.getpid()}\n" in status and b"expression_worker" in cmdline:
            pids.append(int(entry.name))
    return pids


# --- properties ----------------------------------------------------------------------------

TOKENS = [
    "claims",
    "user",
    ".",
    "email",
    "groups",
    "org",
    "__class__",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "?",
    '"staff"',
    '"a"',
    "'b'",
    "1",
    "0",
    "-1",
    "1.5",
    "9223372036854775807",
    "u",
    "true",
    "false",
    "null",
    "+",
    "-",
    "*",
    "/",
    "%",
    "==",
    "!=",
    "<",
    ">=",
    "&&",
    "||",
    "!",
    " in ",
    "has(",
    "size(",
    ".size()",
    ".map(x, ",
    ".exists(x, ",
    ".all(x, ",
    ".filter(x, ",
    "x",
    ".endsWith(",
    ".matches(",
    '"^a+$"',
    ".lowerAscii()",
    ".split(",
    ".?",
    ".orValue(",
    "dyn(",
    "int(",
    "string(",
    "type(",
    "\n",
    " ",
    "\\",
    '"',
    "create",
    "is_staff",
]
token_soup = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)
ATOMS = [
    "claims",
    "user",
    "claims.email",
    "claims.groups",
    "claims.org",
    "claims.x",
    "user.username",
    "x",
    '"staff"',
    '"a@example.com"',
    "'^[a-z]+$'",
    "1",
    "-7",
    "0",
    "2.5",
    "true",
    "false",
    "null",
    "[]",
    "{}",
    "9223372036854775807",
    '"__class__"',
    'b"raw"',
    "1u",
]
UNARY = [
    "!{}",
    "-{}",
    "size({})",
    "dyn({})",
    "({})",
    "{}.size()",
    "string({})",
    "int({})",
    "{}.lowerAscii()",
    "{}.email",
    "{}.groups",
    "{}.__class__",
    "has({}.org)",
    "{}.?org.orValue(1)",
]
BINARY = [
    "{} + {}",
    "{} - {}",
    "{} * {}",
    "{} / {}",
    "{} % {}",
    "{} == {}",
    "{} != {}",
    "{} < {}",
    "{} >= {}",
    "{} && {}",
    "{} || {}",
    "{} in {}",
    "{}[{}]",
    "{}.endsWith({})",
    "{}.matches({})",
    "{}.split({})",
    "{}.map(x, {})",
    "{}.exists(x, {})",
    "{}.all(x, {})",
    "{}.filter(x, {})",
    "[{}, {}]",
    '{{"is_staff": {}, "create": {}}}',
    '{{"groups": {}, "name": {}}}',
    "{{{}: {}}}",
]


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    unary = st.tuples(st.sampled_from(UNARY), children).map(lambda t: t[0].format(t[1]))
    binary = st.tuples(st.sampled_from(BINARY), children, children).map(
        lambda t: t[0].format(t[1], t[2])
    )
    ternary = st.tuples(children, children, children).map(lambda t: f"{t[0]} ? {t[1]} : {t[2]}")
    return unary | binary | ternary


# well-formed CEL of every type (about one in five also type-checks), to reach evaluation
cel_expressions = st.recursive(st.sampled_from(ATOMS), _combine, max_leaves=8)
expressions = cel_expressions | token_soup
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
claim_sets = st.fixed_dictionaries(
    {},
    optional={"email": json_values, "groups": json_values, "org": json_values, "x": json_values},
)
PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.mark.timeout(600)
@PROPERTY_SETTINGS
@given(source=st.text(max_size=200) | expressions)
def test_any_text_compiles_or_raises_a_syntax_error(source: str) -> None:
    try:
        compiled = expression_compile(source)
    except ExpressionSyntaxError as exc:
        assert exc.message
        assert (exc.line is None) == (exc.column is None)
        if exc.line is not None:
            assert exc.line >= 1 and exc.column >= 1
            assert exc.message.startswith(f"line {exc.line}, column {exc.column}: ")
    else:
        assert compiled.source == source
        assert compiled.result_type in ("bool", "map", "dyn")


@pytest.mark.timeout(600)
@PROPERTY_SETTINGS
@given(source=cel_expressions, claims=claim_sets)
def test_evaluation_returns_a_result_or_raises_an_expression_error(
    source: str, claims: dict[str, Any]
) -> None:
    try:
        compiled = expression_compile(source)
    except ExpressionSyntaxError:
        return
    try:
        result = evaluate(compiled, claims, timeout=10.0)
    except ExpressionError as exc:
        assert exc.message
        return
    assert isinstance(result.decision, bool)
    if result.fields is not None:
        assert result.decision
        for name, value in result.fields.items():
            assert isinstance(name, str) and name != "create"
            assert isinstance(value, str | bool | int) or (
                isinstance(value, list) and all(isinstance(item, str) for item in value)
            )


@pytest.mark.timeout(600)
@PROPERTY_SETTINGS
@given(claims=claim_sets, user=st.dictionaries(st.text(max_size=8), json_values, max_size=3))
def test_any_json_claims_give_a_result_or_an_expression_error(
    claims: dict[str, Any], user: dict[str, Any]
) -> None:
    for source in (
        EXAMPLE,
        '{"is_staff": "admins" in claims.groups}',
        'has(claims.org) && claims.org.department.name == "IT"',
        "claims.x",
    ):
        try:
            evaluate(source, claims, user)
        except ExpressionError as exc:
            assert exc.message
