"""Contacts from a vCard file (`[contacts] vcard`), imported again and again in place.

Each card is one contact: FN (else N) is the name, every TEL a number, NOTE the notes, and the first
CATEGORIES value that names a profile its profile ("blocked" is the blocked profile, made when missing).
A card's UID (or, without one, its name) identifies it across imports: a re-import updates its contact,
and removes the vCard contacts whose card has left the file. Contacts entered by hand are never touched,
and their numbers stay theirs. A card that cannot be read is reported and skipped; the rest go in.

Each source imports its own contacts: `import_vcard_text` takes the source's name ("vcard" for the file,
"carddav" for the address book of server/contacts/carddav.py), and only updates and removes that
source's contacts; every other contact (by hand, or from the other source) is left as it is, and its
numbers stay its own.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import vobject
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.config import Config
from server.contacts.numbers import NumberError, checked
from server.store.db import Database
from server.store.schema import Contact, ContactNumber, Profile

log = logging.getLogger(__name__)

BLOCKED = "blocked"
SOURCE = "vcard"  # Contact.source of the file's contacts
_BEGIN = re.compile(r"^BEGIN:VCARD\s*$", re.IGNORECASE)
_END = re.compile(r"^END:VCARD\s*$", re.IGNORECASE)


class VcardError(RuntimeError):
    """The file as a whole cannot be imported (missing, unreadable)."""


@dataclass(slots=True)
class ImportSummary:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0  # cards that could not be imported; `problems` says which and why
    without_numbers: int = 0  # cards with no phone number at all (e-mail only, ...): nothing to match
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Card:
    label: str
    uid: str
    name: str
    numbers: list[str]
    categories: list[str]
    notes: str


def import_vcard(db: Database, path: str | Path) -> ImportSummary:
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise VcardError(f"the vCard file {path} does not exist ([contacts] vcard)") from None
    except OSError as exc:
        raise VcardError(f"cannot read the vCard file {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    with db.session() as session:
        summary = import_vcard_text(session, text)
    log.info("vCard import from %s: %d added, %d updated, %d unchanged, %d removed, %d skipped",
             path, summary.added, summary.updated, summary.unchanged, summary.removed, summary.skipped)
    return summary


def sync_vcard(config: Config, db: Database) -> ImportSummary | None:
    """Import `[contacts] vcard` when one is configured."""
    return import_vcard(db, config.contacts.vcard) if config.contacts.vcard else None


def import_vcard_text(session: Session, text: str, source: str = SOURCE) -> ImportSummary:
    """Make `source`'s contacts those of the cards in `text` (any number of them, one after the other)."""
    summary = ImportSummary()
    kept: set[str] = set()  # the UIDs of cards skipped this time: their contacts stay as they were
    cards = _usable(session, _parse(text, summary, kept), summary, kept, source)
    profiles = {p.name.lower(): p for p in session.scalars(select(Profile))}
    existing = {c.uid: c for c in session.scalars(select(Contact).where(Contact.source == source))}
    dropped: set[str] = set()
    for uid, old in existing.items():
        card = cards.get(uid)
        if card is None and uid in kept:
            continue
        if card is None:
            session.delete(old)
            summary.removed += 1
        elif any(n.number not in card.numbers for n in old.numbers):
            old.numbers = [n for n in old.numbers if n.number in card.numbers]
            dropped.add(uid)
    session.flush()  # numbers moving between cards are released before they are taken again
    for uid, card in cards.items():
        profile = _profile(session, card.categories, profiles)
        contact = existing.get(uid)
        if contact is None:
            session.add(Contact(name=card.name, notes=card.notes, profile=profile, source=source, uid=uid,
                                numbers=[ContactNumber(number=n) for n in card.numbers]))
            summary.added += 1
            continue
        have = {n.number for n in contact.numbers}
        profile_id = profile.id if profile else None
        changed = uid in dropped or have != set(card.numbers) or \
            (contact.name, contact.notes, contact.profile_id) != (card.name, card.notes, profile_id)
        contact.name, contact.notes, contact.profile = card.name, card.notes, profile
        contact.numbers += [ContactNumber(number=n) for n in card.numbers if n not in have]
        summary.updated += changed
        summary.unchanged += not changed
    session.flush()
    return summary


def _parse(text: str, summary: ImportSummary, kept: set[str]) -> list[_Card]:
    cards: list[_Card] = []
    block: list[str] | None = None
    label = ""
    index = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if _BEGIN.match(line):
            if block is not None:
                _skip(summary, label, "it has no END:VCARD")
                kept.update(_raw_uid(block))
            index += 1
            block, label = [line], f"card {index} (line {lineno})"
        elif block is not None:
            block.append(line)
            if _END.match(line):
                skipped = summary.skipped
                card = _card(block, label, summary)
                if card is not None:
                    cards.append(card)
                elif summary.skipped > skipped:
                    kept.update(_raw_uid(block))
                block = None
    if block is not None:
        _skip(summary, label, "the file ends before its END:VCARD")
        kept.update(_raw_uid(block))
    return cards


def _card(lines: list[str], label: str, summary: ImportSummary) -> _Card | None:
    try:
        vcard = vobject.readOne("\r\n".join(lines) + "\r\n")
    except Exception as exc:  # vobject raises a zoo of exception types on bad input
        _skip(summary, label, f"it cannot be read ({_reason(exc)})")
        return None
    contents = vcard.contents
    name = _value(contents, "fn")
    if not name and "n" in contents:
        n = contents["n"][0].value
        name = " ".join(str(p).strip() for p in (n.prefix, n.given, n.additional, n.family, n.suffix)
                        if str(p).strip())
    name = name or _value(contents, "org").replace(";", " ").strip()
    if not name:
        _skip(summary, label, "it has no name (FN or N)")
        return None
    label = f"{label} {name!r}"
    raw_numbers = [str(t.value) for t in contents.get("tel", []) if str(t.value).strip()]
    if not raw_numbers:
        summary.without_numbers += 1
        return None
    numbers: list[str] = []
    for raw in raw_numbers:
        try:
            number = checked(raw)
        except NumberError as exc:
            summary.problems.append(f"{label}: {exc}; left out")
            continue
        if number not in numbers:
            numbers.append(number)
    if not numbers:
        _skip(summary, label, "none of its numbers is a phone number")
        return None
    categories: list[str] = []
    for item in contents.get("categories", []):
        values = item.value if isinstance(item.value, list) else str(item.value).split(",")
        categories += [str(v).strip() for v in values if str(v).strip()]
    uid = _value(contents, "uid")[:200] or "name:" + hashlib.sha256(name.lower().encode()).hexdigest()[:32]
    notes = "\n".join(str(n.value).strip() for n in contents.get("note", []) if str(n.value).strip())
    return _Card(label, uid, name[:200], numbers, categories, notes[:4000])


def _usable(session: Session, cards: list[_Card], summary: ImportSummary, kept: set[str],
            source: str) -> dict[str, _Card]:
    """The cards by UID, each number with one owner: other sources' contacts (and those of skipped
    cards) first, then the earlier card."""
    owners = select(ContactNumber.number, Contact.name).join(Contact).where(
        (Contact.source != source) | Contact.uid.in_(kept))
    manual = {number: repr(name) for number, name in session.execute(owners)}
    taken: dict[str, str] = {}
    usable: dict[str, _Card] = {}
    for card in cards:
        if card.uid in usable:
            _skip(summary, card.label, f"it is the same contact (UID or name) as {usable[card.uid].label}")
            continue
        numbers = []
        for number in card.numbers:
            owner = manual.get(number) or taken.get(number)
            if owner is None:
                numbers.append(number)
                taken[number] = card.label
            else:
                summary.problems.append(f"{card.label}: {number} already belongs to {owner}; left out")
        if not numbers:
            _skip(summary, card.label, "all of its numbers belong to other contacts")
            kept.add(card.uid)
            continue
        card.numbers = numbers
        usable[card.uid] = card
    return usable


def _profile(session: Session, categories: list[str], profiles: dict[str, Profile]) -> Profile | None:
    for category in categories:
        profile = profiles.get(category.lower())
        if profile is None and category.lower() == BLOCKED:
            profile = profiles[BLOCKED] = Profile(name=BLOCKED, greeting="", manner="", language="",
                                                  backchannels=True, end_on_sales=False, blocked=True)
            session.add(profile)
            session.flush()
        if profile is not None:
            return profile
    return None


def _value(contents: dict[str, Any], key: str) -> str:
    items = contents.get(key)
    if not items:
        return ""
    value = items[0].value
    return (" ".join(str(v) for v in value) if isinstance(value, list) else str(value)).strip()


def _raw_uid(block: list[str]) -> list[str]:
    found = (re.match(r"(?i)^UID(?:;[^:]*)?:(.+)$", line.strip()) for line in block)
    return [m[1].strip()[:200] for m in found if m][:1]


def _skip(summary: ImportSummary, label: str, why: str) -> None:
    summary.skipped += 1
    summary.problems.append(f"{label}: skipped, {why}")


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return re.sub(r"^At line \d+: ", "", text)[:200]  # vobject's line numbers count from the card's own start
