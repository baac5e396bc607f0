"""How to take one call: who is calling, by their number, and what their profile asks of the call.

A known caller gets their contact's profile; an unknown one (or a contact without a profile) gets the
profile named by `[contacts] default_profile`, and when no such profile exists, the configured options
as they are. A profile's empty greeting, empty language and unset silence timeout mean "as configured".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import select

from models.engines import CallContext
from server.config import Config
from server.contacts.numbers import find_contact
from server.core.conversation import ConversationOptions
from server.store.db import Database
from server.store.schema import Contact, Profile


@dataclass(frozen=True, slots=True)
class CallPlan:
    contact_name: str  # "" for an unknown caller
    profile: str  # the profile's name
    blocked: bool  # hang up at once
    language: str  # what the call is heard, judged and spoken in
    conversation: ConversationOptions
    context: CallContext
    contact_id: int | None = None


def plan_call(config: Config, db: Database, caller_number: str) -> CallPlan:
    """The plan for a call from `caller_number` as the trunk presented it ("" when withheld).
    Blocking: run it in a worker thread. Database errors propagate (SQLAlchemyError); `default_plan`
    is the plan to fall back on then."""
    with db.session() as session:
        contact = find_contact(session, caller_number, config.region)
        profile = contact.profile if contact is not None else None
        if profile is None:
            profile = session.scalar(select(Profile).where(Profile.name == config.contacts.default_profile))
        return _plan(config, caller_number, contact, profile)


def default_plan(config: Config, caller_number: str = "") -> CallPlan:
    """The plan for a caller nobody knows, from the configuration alone (no database)."""
    return _plan(config, caller_number, None, None)


def _plan(config: Config, caller_number: str, contact: Contact | None, profile: Profile | None) -> CallPlan:
    language = (profile.language if profile else "") or config.language
    conversation = config.conversation(language)
    if profile is not None:
        call = conversation.call
        conversation = dataclasses.replace(
            conversation,
            call=dataclasses.replace(call, greeting=profile.greeting or call.greeting,
                                     silence_timeout_s=profile.silence_timeout_s or call.silence_timeout_s),
            turns=dataclasses.replace(conversation.turns, backchannels=profile.backchannels))
    context = dataclasses.replace(
        config.context(caller_number.strip(), contact.name if contact else ""), language=language,
        manner=profile.manner.strip() if profile else "",
        caller_notes=contact.notes.strip() if contact else "",
        end_on_sales=bool(profile and profile.end_on_sales))
    return CallPlan(
        contact_name=contact.name if contact else "",
        profile=profile.name if profile else config.contacts.default_profile,
        blocked=bool(profile and profile.blocked),
        language=language,
        conversation=conversation,
        context=context,
        contact_id=contact.id if contact else None)
