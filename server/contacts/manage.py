"""Contacts and profiles as the dashboard and API edit them: plain functions over a Session.

Each returns plain dicts (JSON-ready) and raises `NotFound`, `Conflict` or `Invalid` (all
`ContactsError`, a ValueError) with a message fit to show the owner. The caller's session commits.

A profile dict: {id, name, greeting, manner, language, silence_timeout_s, backchannels, end_on_sales,
blocked, contacts (how many use it)}. A contact dict: {id, name, numbers (normalised), profile (a name or
None: the default profile), notes, source ("manual" | "vcard" | "carddav"), uid}. A vCard or CardDAV
contact edited here is overwritten by the next import of its file or address book.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from server.config import Config
from server.contacts.numbers import NumberError, checked, find_contact
from server.store.schema import Contact, ContactNumber, Profile


class ContactsError(ValueError):
    pass


class NotFound(ContactsError):
    pass


class Conflict(ContactsError):
    pass


class Invalid(ContactsError):
    pass


_LANGUAGE = re.compile(r"[a-z]{2,3}([-_][A-Za-z0-9]{2,8})?")
_MAX_TEXT = 4000
_PROFILE_TEXT = {"name": 64, "greeting": 1000, "manner": 1000, "language": 16}
_PROFILE_FLAGS = ("backchannels", "end_on_sales", "blocked")
_PROFILE_KEYS = (*_PROFILE_TEXT, "silence_timeout_s", *_PROFILE_FLAGS)
_CONTACT_KEYS = ("name", "numbers", "profile", "notes")


# --------------------------------------------------------------------------- profiles


def list_profiles(session: Session) -> list[dict[str, Any]]:
    counts = dict(session.execute(
        select(Contact.profile_id, func.count()).group_by(Contact.profile_id)).all())
    profiles = session.scalars(select(Profile).order_by(Profile.name))
    return [_profile_dict(p, counts.get(p.id, 0)) for p in profiles]


def get_profile(session: Session, profile_id: int) -> dict[str, Any]:
    return _profile_dict(_profile(session, profile_id), _users(session, profile_id))


def create_profile(session: Session, data: Mapping[str, Any]) -> dict[str, Any]:
    values = _profile_values(data, required=("name",))
    _check_profile_name(session, values["name"], None)
    profile = Profile(**{"greeting": "", "manner": "", "language": "", "silence_timeout_s": None,
                         "backchannels": True, "end_on_sales": False, "blocked": False, **values})
    session.add(profile)
    session.flush()
    return _profile_dict(profile, 0)


def update_profile(session: Session, profile_id: int, data: Mapping[str, Any]) -> dict[str, Any]:
    """Changes only the keys `data` has."""
    profile = _profile(session, profile_id)
    values = _profile_values(data, required=())
    if "name" in values:
        _check_profile_name(session, values["name"], profile.id)
    for key, value in values.items():
        setattr(profile, key, value)
    session.flush()
    return _profile_dict(profile, _users(session, profile_id))


def delete_profile(session: Session, profile_id: int) -> None:
    """Its contacts fall back to the default profile."""
    profile = _profile(session, profile_id)
    session.execute(update(Contact).where(Contact.profile_id == profile.id).values(profile_id=None))
    session.delete(profile)
    session.flush()
    session.expire_all()


def ensure_default_profile(session: Session, config: Config) -> dict[str, Any]:
    """The profile unknown callers get, made from the configuration when it does not exist yet."""
    name = config.contacts.default_profile
    profile = session.scalar(select(Profile).where(Profile.name == name))
    if profile is None:
        return create_profile(session, {"name": name, "backchannels": config.turns.backchannels})
    return _profile_dict(profile, _users(session, profile.id))


def _profile(session: Session, profile_id: int) -> Profile:
    profile = session.get(Profile, profile_id)
    if profile is None:
        raise NotFound(f"there is no profile {profile_id}")
    return profile


def _users(session: Session, profile_id: int) -> int:
    count = select(func.count()).select_from(Contact).where(Contact.profile_id == profile_id)
    return session.scalar(count) or 0


def _check_profile_name(session: Session, name: str, own_id: int | None) -> None:
    other = session.scalar(select(Profile).where(func.lower(Profile.name) == name.lower()))
    if other is not None and other.id != own_id:
        raise Conflict(f"a profile named {other.name!r} already exists")


def _profile_values(data: Mapping[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    _known(data, _PROFILE_KEYS, "profile")
    values: dict[str, Any] = {}
    for key, limit in _PROFILE_TEXT.items():
        if key in data:
            values[key] = _text(data[key], key, limit)
    if "name" in values and not values["name"]:
        raise Invalid("a profile needs a name")
    language = values.get("language", "")
    if language and not _LANGUAGE.fullmatch(language):
        raise Invalid(f"language must be a code like 'en' or 'it-IT' (or empty for the owner's), "
                      f"not {language!r}")
    if "silence_timeout_s" in data:
        timeout = data["silence_timeout_s"]
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                    or not 1 <= timeout <= 600):
            raise Invalid("silence_timeout_s must be a number of seconds from 1 to 600, or null for the "
                          "configured one")
        values["silence_timeout_s"] = None if timeout is None else float(timeout)
    for key in _PROFILE_FLAGS:
        if key in data:
            if not isinstance(data[key], bool):
                raise Invalid(f"{key} must be true or false")
            values[key] = data[key]
    for key in required:
        if key not in values:
            raise Invalid(f"a profile needs a {key}")
    return values


def _profile_dict(profile: Profile, users: int) -> dict[str, Any]:
    return {"id": profile.id, "name": profile.name, "greeting": profile.greeting, "manner": profile.manner,
            "language": profile.language, "silence_timeout_s": profile.silence_timeout_s,
            "backchannels": profile.backchannels, "end_on_sales": profile.end_on_sales,
            "blocked": profile.blocked, "contacts": users}


# --------------------------------------------------------------------------- contacts


def list_contacts(session: Session, search: str = "", profile: str | None = None) -> list[dict[str, Any]]:
    """All contacts by name; `search` matches names and numbers, `profile` keeps one profile's
    ("" = the contacts without one)."""
    query = select(Contact).order_by(func.lower(Contact.name), Contact.id)
    if search.strip():
        matches: list[ColumnElement[bool]] = [func.lower(Contact.name).like(f"%{search.strip().lower()}%")]
        digits = re.sub(r"\D", "", search)
        if len(digits) >= 3:
            matches.append(Contact.numbers.any(ContactNumber.number.like(f"%{digits}%")))
        query = query.where(or_(*matches))
    if profile == "":
        query = query.where(Contact.profile_id.is_(None))
    elif profile is not None:
        query = query.join(Profile).where(Profile.name == profile)
    return [contact_dict(c) for c in session.scalars(query).unique()]


def get_contact(session: Session, contact_id: int) -> dict[str, Any]:
    return contact_dict(_contact(session, contact_id))


def lookup_contact(session: Session, number: str) -> dict[str, Any] | None:
    """The contact a call from `number` would be taken for."""
    contact = find_contact(session, number)
    return contact_dict(contact) if contact else None


def create_contact(session: Session, data: Mapping[str, Any]) -> dict[str, Any]:
    """`data`: name (required), numbers (a list of strings, at least one), profile (a profile's name,
    or None/"" for the default one), notes."""
    _known(data, _CONTACT_KEYS, "contact")
    for key in ("name", "numbers"):
        if key not in data:
            raise Invalid(f"a contact needs {'a name' if key == 'name' else 'at least one number'}")
    contact = Contact(name="", notes="", source="manual", uid="")
    _apply(session, contact, data)
    session.add(contact)
    session.flush()
    return contact_dict(contact)


def update_contact(session: Session, contact_id: int, data: Mapping[str, Any]) -> dict[str, Any]:
    """Changes only the keys `data` has; `numbers` replaces all of them."""
    _known(data, _CONTACT_KEYS, "contact")
    contact = _contact(session, contact_id)
    _apply(session, contact, data)
    session.flush()
    return contact_dict(contact)


def delete_contact(session: Session, contact_id: int) -> None:
    session.delete(_contact(session, contact_id))
    session.flush()


def contact_dict(contact: Contact) -> dict[str, Any]:
    return {"id": contact.id, "name": contact.name, "numbers": [n.number for n in contact.numbers],
            "profile": contact.profile.name if contact.profile else None, "notes": contact.notes,
            "source": contact.source, "uid": contact.uid}


def _contact(session: Session, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"there is no contact {contact_id}")
    return contact


def _apply(session: Session, contact: Contact, data: Mapping[str, Any]) -> None:
    if "name" in data:
        name = _text(data["name"], "name", 200)
        if not name:
            raise Invalid("a contact needs a name")
        contact.name = name
    if "notes" in data:
        contact.notes = _text(data["notes"], "notes", _MAX_TEXT)
    if "profile" in data:
        contact.profile = profile_named(session, data["profile"])
    if "numbers" in data:
        numbers = numbers_of(data["numbers"])
        for number in numbers:
            owner = session.scalar(select(ContactNumber).where(ContactNumber.number == number))
            if owner is not None and owner.contact_id != contact.id:
                raise Conflict(f"{number} already belongs to {owner.contact.name!r}")
        kept = {n.number: n for n in contact.numbers}
        contact.numbers = [kept.get(n) or ContactNumber(number=n) for n in numbers]


def profile_named(session: Session, name: Any) -> Profile | None:
    if name is None or name == "":
        return None
    if not isinstance(name, str):
        raise Invalid("profile must be a profile's name")
    profile = session.scalar(select(Profile).where(Profile.name == name.strip()))
    if profile is None:
        raise Invalid(f"there is no profile named {name.strip()!r}")
    return profile


def numbers_of(value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not value or not all(isinstance(n, str) for n in value):
        raise Invalid("numbers must be a list of at least one phone number")
    numbers: list[str] = []
    for raw in value:
        try:
            number = checked(raw)
        except NumberError as exc:
            raise Invalid(str(exc)) from None
        if number not in numbers:
            numbers.append(number)
    return numbers


def _known(data: Mapping[str, Any], keys: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise Invalid(f"unknown {what} field {unknown[0]!r}; known: {', '.join(keys)}")


def _text(value: Any, key: str, limit: int) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{key} must be text")
    text = value.strip()
    if len(text) > limit:
        raise Invalid(f"{key} is longer than {limit} characters")
    return text
