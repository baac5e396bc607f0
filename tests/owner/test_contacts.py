"""Contacts: number matching, each call's plan from its profile, the vCard import, the CRUD functions."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.config import Config, load
from server.contacts import (
    Conflict,
    Invalid,
    NotFound,
    create_contact,
    create_profile,
    default_plan,
    delete_contact,
    delete_profile,
    ensure_default_profile,
    get_contact,
    get_profile,
    import_vcard,
    list_contacts,
    list_profiles,
    lookup_contact,
    normalise,
    plan_call,
    same_number,
    update_contact,
    update_profile,
)
from server.contacts.vcard import VcardError
from server.store.db import Database, open_database


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:  # SQLite, and Postgres (tests/owner/conftest.py)
    database = open_database(database_url)
    yield database
    database.close()


def _config(tmp_path: Path, text: str = "") -> Config:
    path = tmp_path / "standin.toml"
    path.write_text(text)
    return load(path)


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(("raw", "expected"), [
    ("+39 333 123-4567", "+393331234567"),
    ("0039 (333) 1234567", "+393331234567"),
    ("+44 (0)20 7946 0958", "+442079460958"),
    ("tel:+39-02-1234567", "+39021234567"),
    ("02.123.4567", "021234567"),
    ("", ""), ("anonymous", ""), ("123#", ""), ("+", ""), ("+0123", ""),
])
def test_numbers_are_normalised(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(("a", "b", "same"), [
    ("+393331234567", "3331234567", True),  # the trunk left out the country code
    ("+393331234567", "393331234567", True),  # ... or its plus
    ("+442079460958", "02079460958", True),  # the national trunk 0 is not part of the +44 number
    ("+39021234567", "021234567", True),  # the Italian 0 is
    ("0212345678", "212345678", False),  # two national spellings, no region to read them in
    ("+393331234567", "+413331234567", False),  # both carry a country code: only exactly
    ("+393331234567", "1234567", False),  # too short a tail to tell
    ("12345", "912345", False),
    ("3331234567", "3331234568", False),
])
def test_same_number(a: str, b: str, same: bool) -> None:
    assert same_number(normalise(a), normalise(b)) is same
    assert same_number(normalise(b), normalise(a)) is same


def test_an_ambiguous_tail_matches_nobody(db: Database) -> None:
    with db.session() as s:
        create_contact(s, {"name": "Anna", "numbers": ["+39 333 1234567"]})
        create_contact(s, {"name": "Hans", "numbers": ["+41 333 1234567"]})
        create_contact(s, {"name": "Desk", "numbers": ["201"]})
    with db.session() as s:
        assert lookup_contact(s, "333 1234567") is None  # could be either
        assert lookup_contact(s, "+41 333 123 4567")["name"] == "Hans"  # type: ignore[index]
        assert lookup_contact(s, "201")["name"] == "Desk"  # type: ignore[index]
        assert lookup_contact(s, "1201") is None


# --------------------------------------------------------------------------- the call's plan


def test_unknown_callers_get_the_configuration_when_there_is_no_default_profile(
        tmp_path: Path, db: Database) -> None:
    config = _config(tmp_path, '[call]\ngreeting = "Hi there."\nsilence_timeout_s = 7\n'
                               '[turns]\nbackchannels = false\n[llm]\nowner_name = "Marco"\n')
    plan = plan_call(config, db, "+39 333 7654321")
    assert (plan.contact_name, plan.profile, plan.blocked, plan.language) == ("", "default", False, "en")
    assert plan.conversation.call.greeting == "Hi there."
    assert plan.conversation.call.silence_timeout_s == 7
    assert plan.conversation.turns.backchannels is False
    assert plan.context.caller_number == "+39 333 7654321"
    assert (plan.context.caller_name, plan.context.owner_name, plan.context.manner) == ("", "Marco", "")
    assert plan.contact_id is None
    fallback = default_plan(config, "+39 333 7654321")
    assert dataclasses.replace(plan, context=dataclasses.replace(plan.context, started_at="")) == \
        dataclasses.replace(fallback, context=dataclasses.replace(fallback.context, started_at=""))


def test_a_contacts_profile_shapes_the_call(tmp_path: Path, db: Database) -> None:
    config = _config(tmp_path, '[stt]\nlanguage = "en"\n')
    with db.session() as s:
        create_profile(s, {"name": "family", "greeting": "Ciao! Sono l'assistente di Marco.",
                           "manner": "warm, informal", "language": "it", "silence_timeout_s": 20,
                           "backchannels": False})
        create_profile(s, {"name": "default", "manner": "brief", "end_on_sales": True})
        anna = create_contact(s, {"name": "Anna Rossi", "numbers": ["+39 333 1234567"], "profile": "family",
                                  "notes": "Marco's sister."})
        create_contact(s, {"name": "Bruno", "numbers": ["+39 347 0000001"]})
    plan = plan_call(config, db, "3331234567")
    assert (plan.contact_name, plan.profile, plan.language, plan.contact_id) == (
        "Anna Rossi", "family", "it", anna["id"])
    assert plan.conversation.call.greeting == "Ciao! Sono l'assistente di Marco."
    assert plan.conversation.call.silence_timeout_s == 20
    assert plan.conversation.turns.backchannels is False
    context = plan.context
    assert (context.language, context.caller_name, context.manner, context.caller_notes) == (
        "it", "Anna Rossi", "warm, informal", "Marco's sister.")
    assert context.end_on_sales is False

    bruno = plan_call(config, db, "+393470000001")  # a contact without a profile: the default one
    assert (bruno.contact_name, bruno.profile, bruno.language) == ("Bruno", "default", "en")
    assert (bruno.context.manner, bruno.context.end_on_sales) == ("brief", True)
    assert bruno.conversation.call.greeting == config.call.greeting  # "" in the profile: as configured
    assert plan_call(config, db, "").profile == "default"


def test_blocked_callers(tmp_path: Path, db: Database) -> None:
    with db.session() as s:
        create_profile(s, {"name": "spam", "blocked": True})
        create_contact(s, {"name": "Call centre", "numbers": ["+39 02 9999999"], "profile": "spam"})
    config = _config(tmp_path)
    assert plan_call(config, db, "02 9999999").blocked
    assert not plan_call(config, db, "02 9999998").blocked
    blocked_default = _config(tmp_path, '[contacts]\ndefault_profile = "spam"\n')
    assert plan_call(blocked_default, db, "02 9999998").blocked  # the owner blocks every stranger


# --------------------------------------------------------------------------- CRUD


def test_profile_crud_and_its_errors(db: Database) -> None:
    with db.session() as s:
        family = create_profile(s, {"name": "family", "manner": " warm "})
        assert family["manner"] == "warm" and family["silence_timeout_s"] is None and family["contacts"] == 0
        with pytest.raises(Conflict, match="already exists"):
            create_profile(s, {"name": "Family"})
        with pytest.raises(Invalid, match="unknown profile field 'colour'"):
            create_profile(s, {"name": "x", "colour": "red"})
        with pytest.raises(Invalid, match="silence_timeout_s"):
            create_profile(s, {"name": "x", "silence_timeout_s": 0})
        with pytest.raises(Invalid, match="language"):
            create_profile(s, {"name": "x", "language": "Italian"})
        with pytest.raises(Invalid, match="true or false"):
            create_profile(s, {"name": "x", "blocked": "yes"})
        with pytest.raises(Invalid, match="needs a name"):
            create_profile(s, {"manner": "brief"})
        update_profile(s, family["id"], {"silence_timeout_s": 15, "language": "it-IT"})
        create_contact(s, {"name": "Anna", "numbers": ["3331234567"], "profile": "family"})
    with db.session() as s:
        assert get_profile(s, family["id"])["silence_timeout_s"] == 15.0
        assert [(p["name"], p["contacts"]) for p in list_profiles(s)] == [("family", 1)]
        delete_profile(s, family["id"])
    with db.session() as s:
        assert list_profiles(s) == []
        assert list_contacts(s)[0]["profile"] is None  # back to the default profile
        with pytest.raises(NotFound):
            get_profile(s, family["id"])


def test_contact_crud_and_its_errors(db: Database) -> None:
    with db.session() as s:
        anna = create_contact(s, {"name": "Anna", "numbers": ["+39 333 123 4567", "0039 3331234567"]})
        assert anna["numbers"] == ["+393331234567"] and anna["source"] == "manual"
        with pytest.raises(Conflict, match="already belongs to 'Anna'"):
            create_contact(s, {"name": "Other", "numbers": ["+393331234567"]})
        with pytest.raises(Invalid, match="no profile named 'vip'"):
            create_contact(s, {"name": "Other", "numbers": ["123456789"], "profile": "vip"})
        with pytest.raises(Invalid, match="not a phone number"):
            create_contact(s, {"name": "Other", "numbers": ["call me"]})
        with pytest.raises(Invalid, match="at least one"):
            create_contact(s, {"name": "Other", "numbers": []})
        with pytest.raises(Invalid, match="needs a name"):
            create_contact(s, {"name": " ", "numbers": ["123456789"]})
        updated = update_contact(s, anna["id"], {"numbers": ["+393331234567", "02 1234567"], "notes": "hi"})
        assert updated["numbers"] == ["+393331234567", "021234567"] and updated["name"] == "Anna"
    with db.session() as s:
        assert [c["name"] for c in list_contacts(s, search="021 234")] == ["Anna"]
        assert [c["name"] for c in list_contacts(s, search="ann")] == ["Anna"]
        assert list_contacts(s, search="bob") == []
        delete_contact(s, anna["id"])
        with pytest.raises(NotFound):
            get_contact(s, anna["id"])


def test_the_default_profile_is_made_from_the_configuration(tmp_path: Path, db: Database) -> None:
    config = _config(tmp_path, '[turns]\nbackchannels = false\n[contacts]\ndefault_profile = "others"\n')
    with db.session() as s:
        made = ensure_default_profile(s, config)
        assert (made["name"], made["backchannels"]) == ("others", False)
        assert ensure_default_profile(s, config)["id"] == made["id"]


# --------------------------------------------------------------------------- vCard


CARDS = """BEGIN:VCARD
VERSION:3.0
UID:anna-1
FN:Anna Rossi
TEL;TYPE=CELL:+39 333 123 4567
TEL;TYPE=HOME:02 1234567
CATEGORIES:friends,family
NOTE:Marco's sister\\, calls about the kids.
END:VCARD
BEGIN:VCARD
VERSION:3.0
N:Bianchi;Bruno;;;
TEL:347 000 0001
END:VCARD
BEGIN:VCARD
VERSION:3.0
UID:spam-1
FN:Call centre
TEL:+39 02 9999999
CATEGORIES:Blocked
END:VCARD
BEGIN:VCARD
VERSION:3.0
UID:mail-only
FN:Newsletter
EMAIL:news@example.com
END:VCARD
BEGIN:VCARD
VERSION:3.0
UID:broken-1
FN:Broken
TEL;TYPE=CELL:+39 333 555 5555
this line is not a property
END:VCARD
BEGIN:VCARD
VERSION:3.0
UID:noname
TEL:+39 333 666 6666
END:VCARD
"""


def test_vcard_import_and_reimport_in_place(tmp_path: Path, db: Database) -> None:
    with db.session() as s:
        create_profile(s, {"name": "family", "manner": "warm"})
        create_contact(s, {"name": "Plumber", "numbers": ["+39 333 777 7777"]})
    path = tmp_path / "contacts.vcf"
    path.write_text(CARDS)
    summary = import_vcard(db, path)
    assert (summary.added, summary.updated, summary.removed, summary.skipped, summary.without_numbers) == \
        (3, 0, 0, 2, 1)
    assert any(p.startswith("card 5 (line 28): skipped, it cannot be read (Failed to parse line")
               for p in summary.problems)
    assert any("card 6 (line 35)" in p and "no name" in p for p in summary.problems)
    with db.session() as s:
        contacts = {c["name"]: c for c in list_contacts(s)}
        assert set(contacts) == {"Anna Rossi", "Bruno Bianchi", "Call centre", "Plumber"}
        anna = contacts["Anna Rossi"]
        assert (anna["numbers"], anna["profile"], anna["notes"], anna["source"]) == (
            ["+393331234567", "021234567"], "family", "Marco's sister, calls about the kids.", "vcard")
        assert contacts["Call centre"]["profile"] == "blocked"
    config = Config()
    assert plan_call(config, db, "+39 02 9999999").blocked
    assert plan_call(config, db, "+39 333 1234567").context.manner == "warm"
    again = import_vcard(db, path)
    assert (again.added, again.updated, again.unchanged, again.removed) == (0, 0, 3, 0)

    # Anna's home number moves to Bruno, Anna gets a new name, the call centre leaves the file, and a new
    # card claims the plumber's number (entered by hand, so it stays his)
    cards = CARDS.replace("TEL;TYPE=HOME:02 1234567\n", "").replace("FN:Anna Rossi", "FN:Anna R.") \
        .replace("TEL:347 000 0001", "TEL:347 000 0001\nTEL:02 1234567") \
        .replace("UID:spam-1\nFN:Call centre\nTEL:+39 02 9999999",
                 "UID:new-1\nFN:Carla\nTEL:+39 333 777 7777\nTEL:+39 333 888 8888")
    path.write_text(cards)
    third = import_vcard(db, path)
    assert (third.added, third.updated, third.unchanged, third.removed) == (1, 2, 0, 1)
    assert any("Carla" in p and "+393337777777 already belongs to 'Plumber'" in p for p in third.problems)
    with db.session() as s:
        contacts = {c["name"]: c for c in list_contacts(s)}
        assert set(contacts) == {"Anna R.", "Bruno Bianchi", "Carla", "Plumber"}
        assert contacts["Anna R."]["id"] == anna["id"]  # updated in place
        assert contacts["Anna R."]["numbers"] == ["+393331234567"]
        assert contacts["Bruno Bianchi"]["numbers"] == ["3470000001", "021234567"]
        assert contacts["Carla"]["numbers"] == ["+393338888888"]
        assert contacts["Plumber"]["numbers"] == ["+393337777777"]
    assert not plan_call(config, db, "+39 02 9999999").blocked

    # a card that breaks leaves its contact as it was, rather than deleting it
    path.write_text(cards.replace("UID:anna-1\n", "UID:anna-1\nnot a property\n"))
    fourth = import_vcard(db, path)
    assert (fourth.added, fourth.updated, fourth.unchanged, fourth.removed) == (0, 0, 2, 0)
    assert any("card 1 (line 1): skipped" in p for p in fourth.problems)
    assert plan_call(config, db, "+39 333 1234567").contact_name == "Anna R."


def test_a_vcard_file_that_cannot_be_read_is_a_clear_error(tmp_path: Path, db: Database) -> None:
    with pytest.raises(VcardError, match="does not exist"):
        import_vcard(db, tmp_path / "missing.vcf")
