"""Phone numbers: one spelling for storage, and deciding whether a caller's number is a contact's.

Numbers are read with `phonenumbers` (Google's libphonenumber metadata). Stored numbers are normalised:
E.164 ("+390212345678") when the country is known, from a "+" or "00" prefix or from the owner's
region for a national number ("02 1234 5678" in IT); otherwise the digits as written ("201", an
extension; any national number when no region is given). The junk rules stay: "anonymous", "123#" and
"+0123" are not numbers.

Two spellings are one line when they have the same E.164 form. A national spelling is read in the
owner's region when one is given; without one, in the country of the other number, so a trunk that
presents "0212345678" still finds the contact stored as "+39 02 1234 5678", and one that drops only
the "+" ("393331234567") too. Rows stored in older spellings ("+4402079460958", national digits) are
read the same way, so they need no migration. When a national number fits contacts in more than one
country, the caller is unknown.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneNumberFormat
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.store.schema import Contact, ContactNumber

# Digits two spellings of one line always share at the end (the subscriber's number), used only to pick
# the stored rows worth comparing; shorter numbers (extensions, short codes) match only exactly.
MIN_TAIL = 6

_URI = re.compile(r"^(?:tel|sips?):", re.IGNORECASE)
_TRUNK_ZERO = re.compile(r"^(\+\d{1,3})\(0\)")  # "+44 (0)20 ...": the 0 is dialled only nationally
_SEPARATORS = re.compile(r"[\s\-./()\u00a0\u2010-\u2015]")
_DIGITS = re.compile(r"[0-9]+")


class NumberError(ValueError):
    pass


def _clean(raw: str) -> str:
    """`raw` as "+digits" or "digits", or "" when it is not a phone number."""
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


def _e164(text: str, region: str = "", *, valid: bool = True) -> str:
    """The E.164 form of cleaned `text`, read in `region` when it has no "+" ("" when it cannot be
    told, or with `valid` when it is not a valid number: an extension never becomes "+39201")."""
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else (region or None))
    except phonenumbers.NumberParseException:
        return ""
    if valid and not phonenumbers.is_valid_number(number):
        return ""
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def normalise(raw: str, region: str = "") -> str:
    """The stored form of `raw`, or "" when it is not a phone number (empty, "anonymous", "123#").
    `region`: the owner's country (ISO 3166, "IT") for numbers written without a country code."""
    text = _clean(raw)
    if not text:
        return ""
    if text.startswith("+"):
        return _e164(text, valid=False) or text
    return (_e164(text, region) if region else "") or text


def checked(raw: str, region: str = "") -> str:
    """`normalise(raw, region)`, refusing what is not a phone number with an error that says why."""
    number = normalise(raw, region)
    if not number:
        raise NumberError(f"{raw!r} is not a phone number: use digits, with + or 00 before a country code")
    if len(number.lstrip("+")) > 20:
        raise NumberError(f"{raw!r} is too long for a phone number")
    return number


def _readings(number: str, region: str, other_region: str) -> set[str]:
    """The E.164 forms stored or presented `number` may stand for."""
    if number.startswith("+"):
        return {_e164(number, valid=False) or number}
    if region:
        e164 = _e164(number, region)
        return {e164} if e164 else set()
    out = set()
    if other_region:  # a national number, read in the other number's country
        out.add(_e164(number, other_region, valid=False))
    if len(number) >= MIN_TAIL:  # a country code whose "+" the trunk dropped
        out.add(_e164("+" + number))
    return out - {""}


def _region_of(number: str) -> str:
    if not number.startswith("+"):
        return ""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number, None)) or ""
    except phonenumbers.NumberParseException:
        return ""


def same_number(a: str, b: str, region: str = "") -> bool:
    """Whether `a` and `b` (stored or presented spellings) are one line (see the module's rules)."""
    a, b = normalise(a, region) or a, normalise(b, region) or b
    if a == b:
        return bool(a)
    if not a or not b or (a.startswith("+") and b.startswith("+")):
        return False
    return bool(_readings(a, region, _region_of(b)) & _readings(b, region, _region_of(a)))


def find_contact(session: Session, caller_number: str, region: str = "") -> Contact | None:
    """The contact whose number `caller_number` is, if exactly one contact fits."""
    key = normalise(caller_number, region)
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
    contacts = {row.contact_id: row.contact for row in candidates if same_number(key, row.number, region)}
    return next(iter(contacts.values())) if len(contacts) == 1 else None
