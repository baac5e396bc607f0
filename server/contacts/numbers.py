"""Phone numbers: one spelling for storage, and deciding whether a caller's number is a contact's.

Stored numbers are normalised: digits only, with a leading "+" when the country code is known ("00" is
read as "+"). A trunk may present a caller with or without the country code, so when no stored number
matches exactly, the shorter of the two numbers may match as the tail of the longer one, with or
without the national trunk "0" ("020 7946 0958" is "+44 20 7946 0958"; "02 1234567" is
"+39 02 1234567"). Such a tail must have at least `MIN_TAIL` digits; two numbers that both carry a
country code match only exactly; and when the tail fits more than one contact, the caller is unknown.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.store.schema import Contact, ContactNumber

MIN_TAIL = 9  # digits; shorter numbers (extensions, short codes) match only exactly

_URI = re.compile(r"^(?:tel|sips?):", re.IGNORECASE)
_TRUNK_ZERO = re.compile(r"^(\+\d{1,3})\(0\)")  # "+44 (0)20 ...": the 0 is dialled only nationally
_SEPARATORS = re.compile(r"[\s\-./()\u00a0\u2010-\u2015]")
_DIGITS = re.compile(r"[0-9]+")


class NumberError(ValueError):
    pass


def normalise(raw: str) -> str:
    """The stored form of `raw`, or "" when it is not a phone number (empty, "anonymous", "123#")."""
    text = _URI.sub("", raw.strip()).split(";", 1)[0]
    text = _TRUNK_ZERO.sub(r"\1", re.sub(r"\s+", "", text))
    text = _SEPARATORS.sub("", text)
    if text.startswith("+"):
        plus, digits = "+", text[1:]
    elif text.startswith("00"):
        plus, digits = "+", text[2:]
    else:
        plus, digits = "", text
    if not _DIGITS.fullmatch(digits) or (plus and digits.startswith("0")):
        return ""
    return plus + digits


def checked(raw: str) -> str:
    """`normalise(raw)`, refusing what is not a phone number with an error that says why."""
    number = normalise(raw)
    if not number:
        raise NumberError(f"{raw!r} is not a phone number: use digits, with + or 00 before a country code")
    if len(number.lstrip("+")) > 20:
        raise NumberError(f"{raw!r} is too long for a phone number")
    return number


def same_number(a: str, b: str) -> bool:
    """Whether normalised `a` and `b` are one line (see the module's rules)."""
    if a == b:
        return True
    if not a or not b or (a.startswith("+") and b.startswith("+")):
        return False
    for national, other in ((a, b), (b, a)):
        if national.startswith("+"):
            continue
        for tail in {national, national.lstrip("0")}:
            if len(tail) >= MIN_TAIL and other.lstrip("+").endswith(tail):
                return True
    return False


def find_contact(session: Session, caller_number: str) -> Contact | None:
    """The contact whose number `caller_number` is, if exactly one contact fits."""
    key = normalise(caller_number)
    if not key:
        return None
    exact = session.scalar(select(ContactNumber).where(ContactNumber.number == key))
    if exact is not None:
        return exact.contact
    digits = key.lstrip("+")
    if len(digits) < MIN_TAIL:
        return None
    candidates = session.scalars(
        select(ContactNumber).where(ContactNumber.number.like(f"%{digits[-MIN_TAIL:]}"))).all()
    contacts = {row.contact_id: row.contact for row in candidates if same_number(key, row.number)}
    return next(iter(contacts.values())) if len(contacts) == 1 else None
