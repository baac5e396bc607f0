"""Ids in paths: `{call_id:id}` matches only a whole number from 1 to MAX_ID, so an id that cannot exist
is a plain 404 instead of an overflow inside the database driver. The id columns are INTEGER, which
PostgreSQL keeps in 32 bits (SQLite in 64), so MAX_ID is 2**31 - 1 on both. Page offsets go to OFFSET,
a 64-bit number on both.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

MAX_ID = 2**31 - 1
MAX_OFFSET = 2**63 - 1


def _at_most(limit: int) -> str:
    """A regex for the decimal numbers 1..limit, without leading zeros: every shorter number, and each
    number as long as `limit` that is smaller at its first differing digit."""
    digits = str(limit)
    rest = len(digits) - 1
    alternatives = [digits, *([f"[1-9][0-9]{{0,{rest - 1}}}"] if rest else [])]
    for i, digit in enumerate(digits):
        low = 1 if i == 0 else 0
        if int(digit) > low:
            alternatives.append(f"{digits[:i]}[{low}-{int(digit) - 1}][0-9]{{{rest - i}}}")
    return "|".join(alternatives)


class Id(Convertor[int]):
    regex = _at_most(MAX_ID)

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        if not 1 <= value <= MAX_ID:
            raise ValueError(f"an id must be between 1 and {MAX_ID}, not {value}")
        return str(value)


register_url_convertor("id", Id())
