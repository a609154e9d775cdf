"""The child process that compiles and evaluates user create expressions (CEL).

Started by mailgrant.sso.expression, never imported by the web process: the CEL library (Google's
C++ implementation, cel-expr-python) and whatever a hostile expression makes it do stay in here,
under resource limits, where a hang is ended by a kill and a crash costs one child process.

Protocol: one JSON object per line on stdin, one JSON object per line on stdout; the first line
out is {"ready": true} once the library is loaded. Requests:
  {"op": "compile", "source": "..."}
  {"op": "evaluate", "source": "...", "claims": {...}, "user": {...}, "seconds": 1.0}
Answers: {"ok": {...}} or {"error": {"message": "...", "syntax": bool, "line": int|null,
"column": int|null}}.

Django-free and dependency-free apart from the CEL library; run as
`python -I -m mailgrant.sso.expression_worker MEMORY_BYTES`.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import resource
import sys
from collections import OrderedDict
from typing import Any

# Kept in step with mailgrant.sso.expression (which re-checks every answer).
RESERVED_CREATE_KEY = "create"
FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
ITERATION_BUDGET = 10_000  # fixed inside cel-expr-python: the sum of all comprehension steps
NESTING_LIMIT = 32  # fixed inside cel-expr-python: parse depth, counting each chained call
NESTING_MESSAGE = (
    f"the expression nests too deeply (at most {NESTING_LIMIT} levels; brackets, calls and "
    "chained macros such as .map(...).map(...) each count)"
)
COMPILED_CACHE_SIZE = 64
MAX_ANSWER_BYTES = 1 << 20

POSITION = re.compile(r"<input>:(-?\d+):(-?\d+): (.*)")
STATUS_PREFIX = re.compile(r"^[A-Z_]+: ")
KEY_NOT_FOUND = re.compile(r'Key not found in map : "(.*)"$')
NO_OVERLOAD = re.compile(r"No matching overloads found : (.*)$")


class Refusal(Exception):
    """An expression or its result that is refused, with a sentence for the administrator."""

    def __init__(
        self,
        message: str,
        *,
        syntax: bool = False,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.syntax = syntax
        self.line = line
        self.column = column


def limit_resources(memory_bytes: int) -> None:
    # Address space bounds memory (allocation failures surface as MemoryError or kill the child);
    # no core files (they would hold claims), no files written, few descriptors.
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))


def bound_cpu(seconds: float) -> None:
    """A CPU limit a little past the caller's deadline: the parent kills us at the deadline, this
    ends the evaluation even if the parent is gone. The limit counts all CPU used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    soft = math.ceil(used + seconds) + 2
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


class Evaluator:
    def __init__(self) -> None:
        from cel_expr_python import cel
        from cel_expr_python.ext import ext_optional, ext_strings

        self.cel = cel
        any_map = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
        self.env = cel.NewEnv(
            variables={"claims": any_map, "user": any_map},
            extensions=[ext_strings.ExtStrings(), ext_optional.ExtOptional()],
        )
        self.compiled: OrderedDict[str, Any] = OrderedDict()

    def compile(self, source: str) -> tuple[Any, str]:
        """The compiled expression and its checked result type: "bool", "map" or "dyn"."""
        cached = self.compiled.get(source)
        if cached is not None:
            self.compiled.move_to_end(source)
            return cached
        try:
            expression = self.env.compile(source)
        except MemoryError as exc:
            raise Refusal("the expression is too large to compile", syntax=True) from exc
        except Exception as exc:  # the library reports every compile error as RuntimeError
            raise compile_refusal(str(exc)) from exc
        try:
            returned = expression.return_type().name()
        except RuntimeError as exc:  # e.g. "Unsupported map key type: DOUBLE"
            message = re.sub(r"\s*\[[A-Z_]+\]$", "", STATUS_PREFIX.sub("", str(exc).strip()))
            raise Refusal(
                f"the expression's result: {message}; a map's keys must be field names (strings)",
                syntax=True,
            ) from exc
        result_type = checked_result_type(returned)
        self.compiled[source] = (expression, result_type)
        if len(self.compiled) > COMPILED_CACHE_SIZE:
            self.compiled.popitem(last=False)
        return expression, result_type

    def evaluate(self, source: str, claims: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
        expression, _ = self.compile(source)
        try:
            value = expression.eval(data={"claims": claims, "user": user})
            if value.type().name() == "ERROR":
                raise Refusal(runtime_message(str(value.value())))
            plain = value.plain_value()
        except MemoryError as exc:
            raise Refusal("the expression ran out of memory") from exc
        except Refusal:
            raise
        except Exception as exc:  # budget and other evaluation limits come as RuntimeError
            raise Refusal(runtime_message(str(exc))) from exc
        return interpret(plain)


def compile_refusal(text: str) -> Refusal:
    """The library's first compile error as a sentence with its 1-based line and column."""
    text = STATUS_PREFIX.sub("", text.strip())
    if "codepoint limit" in text:
        return Refusal("the expression is too long", syntax=True)
    for raw in text.splitlines():
        found = POSITION.search(raw)
        if not found:
            continue
        line, column, message = int(found[1]), int(found[2]), found[3].strip()
        message = re.sub(r"\s*\[[A-Z_]+\]$", "", message).replace(" (in container '')", "")
        if "max recursion depth" in message:
            return Refusal(NESTING_MESSAGE, syntax=True)
        if line < 1 or column < 1:
            return Refusal(message, syntax=True)
        return Refusal(
            f"line {line}, column {column}: {message}", syntax=True, line=line, column=column
        )
    if "recursion limit" in text:
        return Refusal(NESTING_MESSAGE, syntax=True)
    return Refusal(re.sub(r"\s*\[[A-Z_]+\]$", "", text)[:300] or "invalid expression", syntax=True)


def checked_result_type(name: str) -> str:
    if name == "BOOL":
        return "bool"
    if name == "DYN":
        return "dyn"
    if name.startswith("MAP<"):
        if not (name.startswith("MAP<STRING,") or name.startswith("MAP<DYN,")):
            raise Refusal(
                f"the expression returns {name.lower()}; a map's keys must be "
                "field names (strings)",
                syntax=True,
            )
        return "map"
    raise Refusal(
        f"the expression returns {name.lower()}; it must return a bool (create the user or "
        "not) or a map of user fields (create the user with them)",
        syntax=True,
    )


def runtime_message(text: str) -> str:
    text = STATUS_PREFIX.sub("", text.strip())
    if "Iteration budget exceeded" in text:
        return (
            f"the expression ran more than {ITERATION_BUDGET:,} loop steps "
            "(all/exists/map/filter together)"
        )
    missing = KEY_NOT_FOUND.search(text)
    if missing:
        key = missing[1]
        return (
            f'no such key "{key}": a claim or field it reads is missing (test optional '
            f"ones first, e.g. has(claims.{key}) && ...)"
        )
    overload = NO_OVERLOAD.search(text)
    if overload:
        return f"wrong types: no operation {overload[1]}"
    if "Applying SELECT to non-message type" in text:
        return "wrong type: reading a field (a.b) of a value that is not a map"
    return text[:300] or "the expression failed"


def interpret(value: Any) -> dict[str, Any]:
    """A bool decides; a map decides "create" and gives field values (see the parent's rules)."""
    if isinstance(value, bool):
        return {"decision": value, "fields": None}
    if not isinstance(value, dict):
        raise Refusal(f"the expression returned {type_name(value)}, not a bool or a map")
    decision = True
    fields: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise Refusal(f"the map's keys must be field names, not {type_name(key)}")
        if key == RESERVED_CREATE_KEY:
            if not isinstance(item, bool):
                raise Refusal(f'"create" must be a bool, not {type_name(item)}')
            decision = item
            continue
        if not FIELD_NAME.fullmatch(key):
            raise Refusal(
                f'"{key[:64]}" is not a field name (a letter, then letters, digits '
                "or _, at most 64)"
            )
        fields[key] = field_value(key, item)
    return {"decision": decision, "fields": fields if decision else None}


def field_value(key: str, item: Any) -> Any:
    if isinstance(item, bool | int | str):
        return item
    if isinstance(item, list) and all(isinstance(element, str) for element in item):
        return item
    kind = "a list with a non-string element" if isinstance(item, list) else type_name(item)
    raise Refusal(
        f'field "{key}" is {kind}; a field value is a string, bool, int or list of strings'
    )


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes | bytearray):
        return "bytes"
    if isinstance(value, datetime.datetime):
        return "timestamp"
    if isinstance(value, datetime.timedelta):
        return "duration"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return "a CEL type"


def answer(request: dict[str, Any], evaluator: Evaluator) -> dict[str, Any]:
    source = request["source"]
    if request["op"] == "compile":
        _, result_type = evaluator.compile(source)
        return {"result_type": result_type}
    bound_cpu(float(request["seconds"]))
    return evaluator.evaluate(source, request["claims"], request["user"])


def serve(memory_bytes: int) -> None:
    limit_resources(memory_bytes)
    evaluator = Evaluator()
    out = sys.stdout
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        try:
            reply: dict[str, Any] = {"ok": answer(json.loads(line), evaluator)}
        except Refusal as refusal:
            reply = {
                "error": {
                    "message": refusal.message,
                    "syntax": refusal.syntax,
                    "line": refusal.line,
                    "column": refusal.column,
                }
            }
        except MemoryError:
            reply = {"error": {"message": "the expression ran out of memory", "syntax": False}}
        except Exception as exc:  # never die on one request: say what broke
            reply = {
                "error": {
                    "message": f"the evaluator failed ({type(exc).__name__})",
                    "syntax": False,
                }
            }
        encoded = json.dumps(reply)
        if len(encoded) > MAX_ANSWER_BYTES:
            encoded = json.dumps(
                {"error": {"message": "the expression's result is too large", "syntax": False}}
            )
        out.write(encoded + "\n")
        out.flush()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
