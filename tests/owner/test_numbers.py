"""Contacts' numbers through phonenumbers: E.164 with the owner's region, and a trunk's national and
international spellings of one line matching exactly (server/contacts/numbers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.contacts.numbers import NumberError, checked, find_contact, normalise, same_number
from server.store.db import Database, open_database
from server.store.schema import Contact, ContactNumber


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:  # SQLite, and Postgres (tests/owner/conftest.py)
    database = open_database(database_url)
    yield database
    database.close()


@pytest.mark.parametrize(("raw", "region", "expected"), [
    ("02 1234 5678", "IT", "+390212345678"),  # the Italian 0 stays in the number
    ("+39 02 1234 5678", "IT", "+390212345678"),
    ("0039 02 1234 5678", "", "+390212345678"),
    ("347 123 4567", "IT", "+393471234567"),
    ("020 7946 0958", "GB", "+442079460958"),  # the British trunk 0 does not
    ("+44 020 7946 0958", "", "+442079460958"),  # ... not even written after the country code
    ("(212) 555-1234", "US", "+12125551234"),
    ("02 1234 5678", "", "0212345678"),  # no region: kept as written
    ("201", "IT", "201"),  # an extension is not an Italian number
])
def test_numbers_are_stored_in_e164_with_the_owners_region(raw: str, region: str, expected: str) -> None:
    assert normalise(raw, region) == expected
    assert checked(raw, region) == expected


@pytest.mark.parametrize("junk", ["", "call me", "anonymous", "123#", "+0123", "1" * 21])
def test_junk_is_a_number_error(junk: str) -> None:
    with pytest.raises(NumberError):
        checked(junk, "IT")


@pytest.mark.parametrize(("a", "b", "region", "same"), [
    ("0212345678", "+39 02 1234 5678", "IT", True),
    ("0212345678", "+39 02 1234 5678", "", True),  # read in the other number's country
    ("02079460958", "+442079460958", "IT", False),  # in Italy "020..." is not a British number
    ("02079460958", "+442079460958", "", True),
    ("02079460958", "2079460958", "GB", True),  # with and without the British trunk 0
    ("0212345678", "212345678", "IT", False),  # the Italian 0 is part of the number
    ("+4402079460958", "+442079460958", "", True),  # an older stored spelling
    ("3471234567", "3471234568", "IT", False),
])
def test_national_and_international_spellings(a: str, b: str, region: str, same: bool) -> None:
    assert same_number(a, b, region) is same
    assert same_number(b, a, region) is same


def _add(db: Database, name: str, *numbers: str) -> None:
    """A contact stored as given: rows written by older versions kept numbers in other spellings."""
    with db.session() as s:
        s.add(Contact(name=name, notes="", source="manual", uid="",
                      numbers=[ContactNumber(number=n) for n in numbers]))


def _found(db: Database, number: str, region: str = "") -> str | None:
    with db.session() as s:
        contact = find_contact(s, number, region)
        return contact.name if contact is not None else None


def test_a_trunks_national_and_international_spellings_find_one_contact(db: Database) -> None:
    _add(db, "Office", normalise("+39 02 1234 5678", "IT"))
    _add(db, "Anna", normalise("347 123 4567", "IT"))
    for presented in ("0212345678", "+390212345678", "0039 02 1234 5678", "tel:+39-02-12345678"):
        assert _found(db, presented, "IT") == "Office"
        assert _found(db, presented) == "Office"  # without a region too: read in the contact's country
    assert _found(db, "3471234567", "IT") == "Anna"
    assert _found(db, "393471234567") == "Anna"  # the trunk dropped the "+"
    assert _found(db, "212345678", "IT") is None


def test_rows_in_older_spellings_still_match(db: Database) -> None:
    _add(db, "Bruno", "021234567")  # national digits, stored before the region was known
    _add(db, "London", "+4402079460958")  # the trunk 0 kept after the country code
    assert _found(db, "+39 02 123 4567", "IT") == "Bruno"
    assert _found(db, "+39021234567") == "Bruno"
    assert _found(db, "+44 20 7946 0958", "IT") == "London"
    assert _found(db, "020 7946 0958", "GB") == "London"


def test_the_owners_region_settles_a_number_two_countries_share(db: Database) -> None:
    _add(db, "Anna", "+393331234567")
    _add(db, "Hans", "+413331234567")
    assert _found(db, "333 1234567") is None  # Italian or Swiss: nobody can tell
    assert _found(db, "333 1234567", "IT") == "Anna"
