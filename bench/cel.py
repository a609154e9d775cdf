"""CEL on PyPI for the user create expression: cel-python, common-expression-language and
cel-expr-python, measured for speed and for what a hostile expression does to them.

The candidates go into a throwaway virtualenv of the bench's own (var/bench/cel-venv, made on the
first run; --fresh remakes it), never into the project. Three parts:

  speed     compile time (median of single compiles) and cost of one evaluation including the
            conversion of the claims (median over batches) for four realistic expressions, with
            the same decision written as plain Python over the claims dict as the baseline: "x
            dict" is the library's cost / that baseline's; "x fastest" against the fastest library
  hostile   each case of the corpus in a child process of its own, under a 1 GiB address-space
            limit and a wall-clock bound (--case-seconds): refused (an error, in time), accepted
            (it evaluated: the input was harmless to it), memory (MemoryError or allocation
            failure at the limit), CRASH (killed by a signal: in a web process, the process is
            gone) or HANG (still running at the bound, killed). Peak RSS is the child's own.
  mailgrant the chosen library through mailgrant.sso.expression: in-process, through the
            persistent worker it uses, and with a process per evaluation (spawned, or forked
            from a single-threaded parent) for comparison; then the hostile corpus through
            expression_evaluate with a 2 s bound, each refused with an ExpressionError.

The children run with -P: this file is named cel.py, like the Rust binding's module.
The machine is shared (2 cores): trust ratios more than microseconds.

    .venv/bin/python bench/cel.py [--case-seconds 5] [--fresh] [--skip-hostile]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "var" / "bench" / "cel-venv"
VENV_PYTHON = VENV / "bin" / "python"
LIBRARIES = {  # bench name -> PyPI name
    "cel-python": "cel-python",
    "cel-rust": "common-expression-language",
    "cel-cpp": "cel-expr-python",
}
CHILD_MEMORY_BYTES = 1 << 30

CLAIMS: dict[str, Any] = {
    "sub": "248289761001",
    "email": "jane.doe@example.com",
    "email_verified": True,
    "name": "Jane Doe",
    "groups": [f"group-{n}" for n in range(18)] + ["staff", "admins"],
    "org": {"department": {"name": "IT", "code": 42}, "level": 4},
}
USER: dict[str, Any] = {"username": "jane.doe", "email": "jane.doe@example.com"}

EMAIL_PATTERN = re.compile(r"^[a-z0-9.]+@(example|corp)\.com$")

# name -> (CEL source, the same decision in plain Python: the baseline)
REALISTIC: dict[str, tuple[str, Callable[[dict[str, Any], dict[str, Any]], Any]]] = {
    "example": (
        'claims.email.endsWith("@example.com") && "staff" in claims.groups',
        lambda c, u: c["email"].endswith("@example.com") and "staff" in c["groups"],
    ),
    "map": (
        '{"is_staff": "admins" in claims.groups}',
        lambda c, u: {"is_staff": "admins" in c["groups"]},
    ),
    "nested": (
        'claims.org.department.name == "IT" && claims.org.level >= 3',
        lambda c, u: c["org"]["department"]["name"] == "IT" and c["org"]["level"] >= 3,
    ),
    "matches": (
        r'claims.email.matches("^[a-z0-9.]+@(example|corp)\\.com$")',
        lambda c, u: bool(EMAIL_PATTERN.search(c["email"])),
    ),
}

DIGITS = "[0,1,2,3,4,5,6,7,8,9]"
NINETY = "[" + ",".join(str(n) for n in range(90)) + "]"


def _deep_claims(depth: int) -> dict[str, Any]:
    deep: dict[str, Any] = {"a": 1}
    for _ in range(depth):
        deep = {"a": deep}
    return {"deep": deep}


# name -> (what it tries, CEL source, claims builder or None for the realistic claims)
HOSTILE: dict[str, tuple[str, str, Callable[[], dict[str, Any]] | None]] = {
    "parens-1000": ("deep nesting", "(" * 1000 + "true" + ")" * 1000, None),
    "lists-10000": ("deep nesting", "[" * 10_000 + "]" * 10_000 + " == []", None),
    "not-100000": ("deep nesting", "!" * 100_000 + "true", None),
    "plus-100000": ("long operator chain", " + ".join(["1"] * 100_000) + " > 0", None),
    "select-10000": ("long member chain", "claims" + ".a" * 10_000 + " == 1", None),
    "size-5000": ("nested calls", "size(" * 5000 + "claims" + ")" * 5000 + " > 0", None),
    "string-doubling": (
        "huge string via + in comprehensions",
        '["a"]' + ".map(x, x + x)" * 40 + "[0].size() > 0",
        None,
    ),
    "list-doubling": (
        "huge list via + in comprehensions",
        "[[1]]" + ".map(x, x + x)" * 40 + "[0].size() > 0",
        None,
    ),
    "map-10^8": (
        "exponential nested map macros",
        f"{DIGITS}.map(a, " * 8 + "a" + ")" * 8 + ".size() > 0",
        None,
    ),
    "exists-10^8": (
        "exponential nested exists",
        f"{DIGITS}.exists(a, " * 8 + "a == 11" + ")" * 8,
        None,
    ),
    "size-of-10^7": (
        "size of a huge built list",
        "size(" + f"{DIGITS}.map(a, " * 7 + "a" + ")" * 7 + ") > 0",
        None,
    ),
    "size-claims-10^6": (
        "size of a huge claim list",
        "size(claims.groups) > 0",
        lambda: {"groups": [f"g{n}" for n in range(1_000_000)]},
    ),
    "dunder-class": ("Python internals", "claims.__class__ == claims", None),
    "dunder-index": ("Python internals", 'claims["__class__"] == claims', None),
    "dunder-globals": ("Python internals", "user.__init__.__globals__ == user", None),
    "regex-backtrack": (
        "catastrophic backtracking",
        '"' + "a" * 40 + '!".matches("^(a+)+$")',
        None,
    ),
    "regex-backref": (
        "a regex RE2 cannot run in linear time",
        '"aa".matches("(a)\\\\1")',
        None,
    ),
    "regex-scan": (
        "RE2 over a 16 MB string, 8,100 times",
        '["a"]'
        + ".map(x, x + x)" * 24
        + f'.exists(s, {NINETY}.exists(i, {NINETY}.exists(j, s.matches("b"))))',
        None,
    ),
    "int-overflow": ("integer overflow", "9223372036854775807 + 1 > 0", None),
    "int-squaring": (
        "integer growth",
        "[3]" + ".map(x, x * x)" * 12 + "[0] > 0",
        None,
    ),
    "huge-literal": ("10 MB literal", '"' + "a" * 10_000_000 + '".size() > 0', None),
    "deep-claims": (
        "recursion: claims nested 100,000 deep",
        "has(claims.deep)",
        lambda: _deep_claims(100_000),
    ),
}


# --- the libraries (run inside the bench virtualenv) ---------------------------------------


class Adapter:
    """compile(source) -> program; evaluate(program, claims, user) -> a Python value or raise."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "cel-python":
            import celpy

            self.celpy = celpy
            self.env = celpy.Environment()
        elif name == "cel-rust":
            import cel

            self.cel = cel
        else:
            from cel_expr_python import cel as cx

            self.cx = cx
            any_map = cx.Type.Map(cx.Type.STRING, cx.Type.DYN)
            self.env = cx.NewEnv(variables={"claims": any_map, "user": any_map})

    def compile(self, source: str) -> Any:
        if self.name == "cel-python":
            return self.env.program(self.env.compile(source))
        if self.name == "cel-rust":
            return self.cel.compile(source)
        return self.env.compile(source)

    def evaluate(self, program: Any, claims: dict[str, Any], user: dict[str, Any]) -> Any:
        if self.name == "cel-python":
            to_cel = self.celpy.json_to_cel
            return program.evaluate({"claims": to_cel(claims), "user": to_cel(user)})
        if self.name == "cel-rust":
            return program.execute({"claims": claims, "user": user})
        value = program.eval(data={"claims": claims, "user": user})
        if value.type().name() == "ERROR":
            raise RuntimeError(str(value.value()))
        return value.plain_value()


def per_call_seconds(call: Callable[[], Any], repeats: int = 15, batch_seconds: float = 0.04):
    """Median over `repeats` batches of the time of one call; a batch lasts ~batch_seconds."""
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < batch_seconds / 4:
        call()
        count += 1
    batch = max(1, int(count * 4))
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        for _ in range(batch):
            call()
        samples.append((time.perf_counter() - began) / batch)
    return statistics.median(samples)


def role_speed() -> None:
    results: dict[str, Any] = {"baseline": {}, "libraries": {}}
    for expression, (_, python) in REALISTIC.items():
        results["baseline"][expression] = per_call_seconds(lambda p=python: p(CLAIMS, USER))
    for library in LIBRARIES:
        adapter = Adapter(library)
        rows = {}
        for expression, (source, python) in REALISTIC.items():
            program = adapter.compile(source)
            got = adapter.evaluate(program, CLAIMS, USER)
            want = python(CLAIMS, USER)
            compile_samples = []
            for _ in range(101):
                began = time.perf_counter()
                adapter.compile(source)
                compile_samples.append(time.perf_counter() - began)
            rows[expression] = {
                "compile": statistics.median(compile_samples),
                "evaluate": per_call_seconds(
                    lambda a=adapter, p=program: a.evaluate(p, CLAIMS, USER)
                ),
                "agrees": _plain(got) == want,
            }
        results["libraries"][library] = rows
    print(json.dumps(results))


def _plain(value: Any) -> Any:
    """cel-python's own types (BoolType, MapType, ...) as plain Python, to compare results."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, bool) or type(value).__name__ == "BoolType":
        return bool(value)
    return value


def role_hostile(library: str, case: str) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, CHILD_MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _, source, claims_builder = HOSTILE[case]
    claims = claims_builder() if claims_builder else CLAIMS
    adapter = Adapter(library)
    began = time.perf_counter()
    try:
        value = adapter.evaluate(adapter.compile(source), claims, USER)
        outcome, detail = "accepted", f"= {_plain(value)!r:.40}"
    except MemoryError as exc:
        outcome, detail = "memory", f"MemoryError {exc}"[:60]
    except BaseException as exc:  # what each library raises is part of what is measured
        text = " ".join(str(exc).split())
        outcome, detail = "refused", f"{type(exc).__name__}: {text}"[:60]
    seconds = time.perf_counter() - began
    print(json.dumps({"outcome": outcome, "detail": detail, "seconds": seconds}), flush=True)


# --- the parent ----------------------------------------------------------------------------


def ensure_venv(fresh: bool) -> dict[str, str]:
    stamp = VENV / ".bench-installed"
    if fresh or not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run(
            [str(VENV_PYTHON), "-m", "pip", "install", "--quiet", *LIBRARIES.values()],
            check=True,
        )
        stamp.touch()
    listing = subprocess.run(
        [str(VENV_PYTHON), "-m", "pip", "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    versions = {row["name"].lower(): row["version"] for row in json.loads(listing)}
    return {name: versions.get(pypi, "?") for name, pypi in LIBRARIES.items()}


def run_case(library: str, case: str, seconds: float) -> dict[str, Any]:
    began = time.monotonic()
    child = subprocess.Popen(
        [str(VENV_PYTHON), "-P", __file__, "--role", "hostile", library, case],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    status, usage, hung = 0, None, False
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - began > seconds:
            child.kill()
            _, status, usage = os.wait4(child.pid, 0)
            hung = True
            break
        time.sleep(0.01)
    child.returncode = 0  # reaped above; keep Popen from waiting again
    assert child.stdout is not None
    output = child.stdout.read().decode(errors="replace").strip().splitlines()
    child.stdout.close()
    wall = time.monotonic() - began
    rss = usage.ru_maxrss // 1024 if usage else 0
    if hung:
        return {
            "outcome": "HANG",
            "detail": f"killed at {seconds:g} s",
            "seconds": wall,
            "rss": rss,
        }
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        detail = f"killed by {name}"
        if name == "SIGABRT" and rss > CHILD_MEMORY_BYTES * 0.75 / (1 << 20):
            detail += " (aborted when an allocation failed)"
        return {"outcome": "CRASH", "detail": detail, "seconds": wall, "rss": rss}
    if not output:
        return {
            "outcome": "CRASH",
            "detail": f"exit {os.WEXITSTATUS(status)}, no answer",
            "seconds": wall,
            "rss": rss,
        }
    answer = json.loads(output[-1])
    answer["rss"] = rss
    return answer


def print_speed(speed: dict[str, Any], versions: dict[str, str]) -> None:
    print("\n## Speed (claims converted on every call; medians)\n")
    print(
        "| library | version | expression | compile µs | evaluate µs | x dict | x fastest "
        "| same result |"
    )
    print("|---|---|---|---:|---:|---:|---:|---|")
    for expression in REALISTIC:
        fastest = min(rows[expression]["evaluate"] for rows in speed["libraries"].values())
        baseline = speed["baseline"][expression]
        print(f"| python dict (baseline) | | {expression} | | {baseline * 1e6:.2f} | 1.0 | | |")
        for library, rows in speed["libraries"].items():
            row = rows[expression]
            print(
                f"| {library} | {versions[library]} | {expression} | {row['compile'] * 1e6:,.0f}"
                f" | {row['evaluate'] * 1e6:,.2f} | {row['evaluate'] / baseline:,.0f}"
                f" | {row['evaluate'] / fastest:,.1f} | {'yes' if row['agrees'] else 'NO'} |"
            )


def print_hostile(case_seconds: float) -> dict[str, dict[str, str]]:
    print(f"\n## Hostile corpus (child process each, 1 GiB limit, {case_seconds:g} s bound)\n")
    print("| case | tries | " + " | ".join(LIBRARIES) + " |")
    print("|---|---|" + "---|" * len(LIBRARIES))
    summary: dict[str, dict[str, str]] = {library: {} for library in LIBRARIES}
    for case, (tries, _, _) in HOSTILE.items():
        cells = []
        for library in LIBRARIES:
            result = run_case(library, case, case_seconds)
            summary[library][case] = result["outcome"]
            cells.append(
                f"**{result['outcome']}** {result['seconds']:.2f} s {result['rss']} MB "
                f"<br>{result['detail']}".replace("|", "/")
            )
        print(f"| {case} | {tries} | " + " | ".join(cells) + " |", flush=True)
    print("\n| library | refused | accepted | memory | CRASH | HANG |")
    print("|---|---:|---:|---:|---:|---:|")
    for library, outcomes in summary.items():
        counts = [
            list(outcomes.values()).count(kind)
            for kind in ("refused", "accepted", "memory", "CRASH", "HANG")
        ]
        print(f"| {library} | " + " | ".join(str(count) for count in counts) + " |")
    return summary


def bench_mailgrant(case_seconds: float, skip_hostile: bool) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from mailgrant.sandbox import expression as mx
    from mailgrant.sandbox.expression_worker import Evaluator

    print("\n## mailgrant.sso.expression (cel-cpp), per evaluation\n")
    source = REALISTIC["example"][0]
    compiled = mx.expression_compile(source)
    baseline = per_call_seconds(lambda: REALISTIC["example"][1](CLAIMS, USER))
    evaluator = Evaluator()
    in_process = per_call_seconds(lambda: evaluator.evaluate(source, CLAIMS, USER))
    worker = per_call_seconds(
        lambda: mx.expression_evaluate(compiled, claims=CLAIMS, user=USER, timeout=5)
    )

    def spawned() -> None:
        one = mx._Worker()
        try:
            one.call(
                mx._encode(
                    {
                        "op": "evaluate",
                        "source": source,
                        "claims": CLAIMS,
                        "user": USER,
                        "seconds": 5,
                    }
                ),
                time.monotonic() + 10,
            )
        finally:
            one.kill()

    def forked() -> None:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: evaluate with the already loaded library, answer, vanish
            os.close(read_end)
            os.write(write_end, json.dumps(evaluator.evaluate(source, CLAIMS, USER)).encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as answer:
            answer.read()
        os.waitpid(pid, 0)

    spawn = per_call_seconds(spawned, repeats=5, batch_seconds=0.5)
    fork = per_call_seconds(forked, repeats=7, batch_seconds=0.2)
    print("| how | µs per evaluation | x dict | x in-process |")
    print("|---|---:|---:|---:|")
    for label, cost in (
        ("python dict (baseline)", baseline),
        ("in-process (cel-cpp, result checked)", in_process),
        ("persistent worker process (chosen)", worker),
        ("fork per evaluation (single-threaded parent only)", fork),
        ("spawn a worker per evaluation", spawn),
    ):
        ratios = f"{cost / baseline:,.0f} | {cost / in_process:,.1f}"
        print(f"| {label} | {cost * 1e6:,.1f} | {ratios} |")

    if skip_hostile:
        return
    print("\n## The hostile corpus through expression_evaluate (timeout 2 s)\n")
    print("| case | outcome | seconds | message |")
    print("|---|---|---:|---|")
    for case, (_, hostile_source, claims_builder) in HOSTILE.items():
        claims = claims_builder() if claims_builder else CLAIMS
        began = time.monotonic()
        try:
            result = mx.expression_evaluate(hostile_source, claims=claims, user=USER, timeout=2)
            outcome, message = "accepted", repr(result)
        except mx.ExpressionError as exc:
            outcome, message = type(exc).__name__, exc.message
        print(
            f"| {case} | {outcome} | {time.monotonic() - began:.2f} | {message[:90]} |", flush=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--case-seconds", type=float, default=5.0)
    parser.add_argument("--fresh", action="store_true", help="remake the bench virtualenv")
    parser.add_argument("--skip-hostile", action="store_true")
    args = parser.parse_args()
    if args.role:
        role, *rest = args.role
        role_speed() if role == "speed" else role_hostile(*rest)
        return
    versions = ensure_venv(args.fresh)
    print(f"# CEL libraries: {', '.join(f'{k} {v}' for k, v in versions.items())}")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    speed = subprocess.run(
        [str(VENV_PYTHON), "-P", __file__, "--role", "speed"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    print_speed(json.loads(speed), versions)
    if not args.skip_hostile:
        print_hostile(args.case_seconds)
    bench_mailgrant(args.case_seconds, args.skip_hostile)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
