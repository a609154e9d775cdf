"""Rewrite README.md's table of reason codes from the reasons registered at import:
`.venv/bin/python -m tests.worker.readme_reasons` (tests/worker/test_status.py checks it)."""

import os

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    from tests.worker.test_status import BEGIN, END, README, reasons_table

    head, rest = README.read_text("utf-8").split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{reasons_table()}\n{END}{tail}", "utf-8")


if __name__ == "__main__":
    main()
