"""The path converter for database ids in the HTML routes (`<id:name>`).

Django's `int` takes any run of digits, and an id past a 64-bit integer then fails inside the
database driver (a 500). This one takes 1..2**63-1, the range of a BigAutoField, so anything
else is simply no route: a 404.
"""

MAX_ID = 2**63 - 1


class IdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= MAX_ID:
            raise ValueError(f"{value} is not a database id")  # Django: no match, a 404
        return number

    def to_url(self, value: int | str) -> str:
        return str(self.to_python(str(value)))
