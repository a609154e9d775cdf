"""The user create expression: whether, and with which fields, an unknown user is created.

The expression is CEL (Common Expression Language: sandboxed, not Turing-complete) over two
variables, both maps from string keys:

    claims   the provider's claims (ID token or user-data endpoint), as JSON values
    user     the user fields mapped from the claims by the client's User Fields

It returns either

    a bool   true: create the user (with the mapped fields); false: do not create
    a map    create the user, with these fields set on top of the mapped ones, e.g.
             {"is_staff": "admins" in claims.groups}. The key "create" is reserved: a bool that
             decides (false: do not create, the other keys are ignored; true or absent: create).
             So {} creates with no extra fields, and {"create": false} creates nothing.
             Other keys are field names (a letter, then letters, digits or _); values are plain
             JSON: a string, bool, int or list of strings (no null, double, map, bytes, time).

Which fields may be set is the caller's business (the provisioning code checks the names against
the user model); this module only guarantees the shapes above.

Extra functions beside the CEL standard ones: the strings extension (lowerAscii, split, replace,
trim, ...) and optionals (claims.?department.orValue("")). `matches` uses RE2 (linear time, no
backreferences).

Safety. The library is cel-expr-python (Google's C++ CEL), chosen by bench/cel.py: of the three
on PyPI it alone refuses most of the hostile corpus by itself (nesting over 32 levels, sources
over 100,000 code points, more than 10,000 loop steps in one evaluation: limits fixed inside the
binding), and it is the fastest (about 7 us an evaluation in-process, 5x less than the Rust
binding, 35x less than pure-Python cel-python). It still segfaults on claims nested 100,000 deep
and can scan a 16 MB string with RE2 for minutes within its loop budget, so the web process
never loads it: compiling and evaluating happen in a persistent worker process
(mailgrant.sso.expression_worker; started on first use, one per concurrent call, up to
MAX_IDLE_WORKERS kept) with an empty environment, a 256 MiB address-space limit, no core files
and a CPU limit. The caller's timeout is a wall-clock bound enforced from here: a worker that
does not answer in time is killed (SIGKILL) and replaced, so a hang or a crash there costs this
process only the error. A round trip costs about 0.15 ms; starting a worker some tens of
milliseconds, bounded separately by WORKER_START_SECONDS. Claims are checked here first: JSON
types only, at most 32 levels deep, at most 1 MiB with the user fields.

Errors: ExpressionSyntaxError (a subclass of ExpressionError) for anything refused at compile
time, with a 1-based line and column when the library gives one; ExpressionError for anything
that goes wrong at evaluation (a missing claim, a wrong type, a result that is neither bool nor
map, the time, memory or loop bound). Nothing else escapes either function.

No Django imports: protocol code.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import selectors
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

MAX_SOURCE_CHARS = 4096
MAX_CLAIMS_DEPTH = 32
MAX_INPUT_BYTES = 1 << 20  # claims and user together, as JSON
MAX_ANSWER_BYTES = 1 << 20
WORKER_MEMORY_BYTES = 256 << 20
WORKER_START_SECONDS = 10.0
COMPILE_SECONDS = 5.0
MAX_IDLE_WORKERS = 2
INT64 = (-(1 << 63), (1 << 63) - 1)

FieldValue = str | bool | int | list[str]
ResultType = Literal["bool", "map", "dyn"]


class ExpressionError(Exception):
    """The expression could not decide: the message says why, for the administrator."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ExpressionSyntaxError(ExpressionError):
    """Refused at compile time; line and column are 1-based, None when there is no position."""

    def __init__(self, message: str, line: int | None, column: int | None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


@dataclass(frozen=True)
class CompiledExpression:
    """A source that compiled and type-checked. result_type is "dyn" when only evaluation can
    tell bool from map (e.g. an expression that returns a claim)."""

    source: str
    result_type: ResultType


@dataclass(frozen=True)
class ExpressionResult:
    """decision: create the user or not. fields: None when the expression returned a bool (or
    a map with "create": false), else the fields the map set (possibly none)."""

    decision: bool
    fields: dict[str, FieldValue] | None = None


def expression_compile(source: str) -> CompiledExpression:
    """Compile and type-check source; ExpressionSyntaxError names what and where."""
    _check_source(source)
    reply = _call(_encode({"op": "compile", "source": source}), COMPILE_SECONDS)
    result_type = reply.get("result_type")
    if result_type not in ("bool", "map", "dyn"):
        raise ExpressionError("the expression evaluator gave an unexpected answer")
    return CompiledExpression(source=source, result_type=result_type)


def expression_evaluate(
    compiled_or_source: CompiledExpression | str,
    *,
    claims: dict[str, Any],
    user: dict[str, Any],
    timeout: float,
) -> ExpressionResult:
    """Run the expression over claims and user within timeout seconds (wall clock)."""
    if isinstance(compiled_or_source, CompiledExpression):
        source = compiled_or_source.source
    else:
        source = compiled_or_source
        _check_source(source)
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ExpressionError("the expression's time bound must be a positive number of seconds")
    request = {
        "op": "evaluate",
        "source": source,
        "claims": _json_map(claims, "claims"),
        "user": _json_map(user, "user"),
        "seconds": timeout,
    }
    payload = _encode(request)
    if len(payload) > MAX_INPUT_BYTES + MAX_SOURCE_CHARS * 12:
        raise ExpressionError(f"the claims and fields are larger than {MAX_INPUT_BYTES >> 20} MiB")
    return _result(_call(payload, timeout))


# --- input ---------------------------------------------------------------------------------


def _check_source(source: str) -> None:
    if not isinstance(source, str):
        raise ExpressionSyntaxError("the expression must be text", None, None)
    if not source.strip():
        raise ExpressionSyntaxError("the expression is empty", None, None)
    if len(source) > MAX_SOURCE_CHARS:
        line, column = _position(source, MAX_SOURCE_CHARS)
        raise ExpressionSyntaxError(
            f"line {line}, column {column}: the expression is longer than "
            f"{MAX_SOURCE_CHARS:,} characters",
            line,
            column,
        )
    for index, char in enumerate(source):
        if char == "\x00" or "\ud800" <= char <= "\udfff":
            line, column = _position(source, index)
            raise ExpressionSyntaxError(
                f"line {line}, column {column}: invalid character U+{ord(char):04X}", line, column
            )


def _position(source: str, index: int) -> tuple[int, int]:
    """1-based line and column (in code points) of source[index]."""
    before = source[:index]
    line = before.count("\n") + 1
    return line, index - (before.rfind("\n") + 1) + 1


def _json_map(value: Any, name: str) -> dict[str, Any]:
    """value as CEL-ready JSON: string keys, ints within int64 (larger ones become doubles, as
    in JavaScript), strings without lone surrogates; ExpressionError for anything else."""
    if not isinstance(value, dict):
        raise ExpressionError(f"{name} must be a map, not {type(value).__name__}")
    try:
        return _json_value(value, 0)
    except _BadValue as bad:
        path = name + "".join(
            f"[{step}]" if isinstance(step, int) else f".{step}" for step in reversed(bad.path)
        )
        raise ExpressionError(f"{path:.80}: {bad.problem}") from None


class _BadValue(Exception):
    """Raised deep in _json_value; the path is collected on the way out (free on success)."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        self.path: list[str | int] = []


def _json_value(value: Any, depth: int) -> Any:
    if depth > MAX_CLAIMS_DEPTH:
        raise _BadValue(f"nested deeper than {MAX_CLAIMS_DEPTH} levels")
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return value if INT64[0] <= value <= INT64[1] else float(value)
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list | tuple):
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_json_value(item, depth + 1))
            except _BadValue as bad:
                bad.path.append(index)
                raise
        return items
    if isinstance(value, dict):
        converted = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _BadValue(f"a key that is not a string ({type(key).__name__})")
            try:
                converted[key] = _json_value(item, depth + 1)
            except _BadValue as bad:
                bad.path.append(key)
                raise
        return converted
    raise _BadValue(f"a {type(value).__name__}, not a JSON value")


# --- output --------------------------------------------------------------------------------


def _result(reply: dict[str, Any]) -> ExpressionResult:
    """The worker's answer, checked again here: it was shaped by an untrusted expression."""
    decision, fields = reply.get("decision"), reply.get("fields")
    if not isinstance(decision, bool):
        raise ExpressionError("the expression evaluator gave an unexpected answer")
    if fields is None:
        return ExpressionResult(decision=decision)
    if (
        not isinstance(fields, dict)
        or not decision
        or not all(isinstance(key, str) and _is_field_value(item) for key, item in fields.items())
    ):
        raise ExpressionError("the expression evaluator gave an unexpected answer")
    return ExpressionResult(decision=True, fields=fields)


def _is_field_value(item: Any) -> bool:
    if isinstance(item, bool | int | str):
        return True
    return isinstance(item, list) and all(isinstance(element, str) for element in item)


# --- the worker processes ------------------------------------------------------------------


class _WorkerGone(Exception):
    pass


class _Worker:
    """One child process running mailgrant.sso.expression_worker, talked to over pipes."""

    def __init__(self) -> None:
        # -I and an empty environment: the child sees no secrets from ours and no PYTHON*
        # variables; the virtualenv is found from the interpreter's own path.
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-m",
                "mailgrant.sandbox.expression_worker",
                str(WORKER_MEMORY_BYTES),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={},
            bufsize=0,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin_fd = self.process.stdin.fileno()
        self.stdout_fd = self.process.stdout.fileno()
        os.set_blocking(self.stdin_fd, False)
        os.set_blocking(self.stdout_fd, False)
        self.buffer = b""
        try:
            ready = self._read_line(time.monotonic() + WORKER_START_SECONDS)
        except BaseException:
            self.kill()
            raise
        if ready != {"ready": True}:
            self.kill()
            raise _WorkerGone("did not start")

    def call(self, payload: bytes, deadline: float) -> dict[str, Any]:
        with selectors.DefaultSelector() as selector:
            selector.register(self.stdin_fd, selectors.EVENT_WRITE)
            while payload:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                if not selector.select(remaining):
                    continue
                try:
                    written = os.write(self.stdin_fd, payload)
                except (BrokenPipeError, BlockingIOError) as exc:
                    if isinstance(exc, BlockingIOError):
                        continue
                    raise _WorkerGone("closed its input") from exc
                payload = payload[written:]
        return self._read_line(deadline)

    def _read_line(self, deadline: float) -> dict[str, Any]:
        with selectors.DefaultSelector() as selector:
            selector.register(self.stdout_fd, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                if len(self.buffer) > MAX_ANSWER_BYTES:
                    raise _WorkerGone("answered too much")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                if not selector.select(remaining):
                    continue
                try:
                    chunk = os.read(self.stdout_fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    raise _WorkerGone("exited")
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            answer = json.loads(line)
        except ValueError as exc:
            raise _WorkerGone("answered garbage") from exc
        if not isinstance(answer, dict):
            raise _WorkerGone("answered garbage")
        return answer

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class _Pool:
    """Idle workers, per process (a forked web worker starts its own)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[_Worker] = []
        self.pid = os.getpid()

    def take(self) -> _Worker:
        with self.lock:
            if self.pid != os.getpid():  # inherited through fork: those pipes are not ours
                self.idle, self.pid = [], os.getpid()
            if self.idle:
                return self.idle.pop()
        return _Worker()

    def give_back(self, worker: _Worker) -> None:
        with self.lock:
            if self.pid == os.getpid() and len(self.idle) < MAX_IDLE_WORKERS:
                self.idle.append(worker)
                return
        worker.kill()

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        if self.pid == os.getpid():
            for worker in idle:
                worker.kill()


_pool = _Pool()
atexit.register(_pool.close)


def _encode(request: dict[str, Any]) -> bytes:
    return json.dumps(request).encode() + b"\n"


def _call(payload: bytes, seconds: float) -> dict[str, Any]:
    """Send one encoded request to a worker; its answer's "ok" part, or the error raised."""
    try:
        worker = _pool.take()
    except (OSError, TimeoutError, _WorkerGone) as exc:
        raise ExpressionError("the expression evaluator could not be started") from exc
    deadline = time.monotonic() + seconds
    try:
        reply = worker.call(payload, deadline)
    except TimeoutError:
        worker.kill()
        raise ExpressionError(
            f"the expression took longer than {seconds:g} s and was stopped"
        ) from None
    except (OSError, _WorkerGone):
        worker.kill()
        raise ExpressionError(
            "the expression evaluator stopped (the expression used more than "
            f"{WORKER_MEMORY_BYTES >> 20} MiB or crashed it)"
        ) from None
    _pool.give_back(worker)
    if "error" in reply:
        error = reply["error"]
        message = str(error.get("message") or "the expression failed")
        if error.get("syntax"):
            raise ExpressionSyntaxError(message, error.get("line"), error.get("column"))
        raise ExpressionError(message)
    ok = reply.get("ok")
    if not isinstance(ok, dict):
        raise ExpressionError("the expression evaluator gave an unexpected answer")
    return ok
