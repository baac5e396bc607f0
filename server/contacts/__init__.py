"""Who is calling: contacts and their numbers, profiles, the vCard and CardDAV imports, and each call's
plan."""

from server.contacts.carddav import CarddavError, import_carddav, sync_carddav
from server.contacts.manage import (
    Conflict,
    ContactsError,
    Invalid,
    NotFound,
    contact_dict,
    create_contact,
    create_profile,
    delete_contact,
    delete_profile,
    ensure_default_profile,
    get_contact,
    get_profile,
    list_contacts,
    list_profiles,
    lookup_contact,
    update_contact,
    update_profile,
)
from server.contacts.numbers import MIN_TAIL, NumberError, find_contact, normalise, same_number
from server.contacts.plan import CallPlan, default_plan, plan_call
from server.contacts.vcard import ImportSummary, VcardError, import_vcard, import_vcard_text, sync_vcard

__all__ = [
    "MIN_TAIL", "CallPlan", "CarddavError", "Conflict", "ContactsError", "ImportSummary", "Invalid",
    "NotFound", "NumberError", "VcardError", "contact_dict", "create_contact", "create_profile",
    "default_plan", "delete_contact", "delete_profile", "ensure_default_profile", "find_contact",
    "get_contact", "get_profile", "import_carddav", "import_vcard", "import_vcard_text", "list_contacts",
    "list_profiles", "lookup_contact", "normalise", "plan_call", "same_number", "sync_carddav", "sync_vcard",
    "update_contact", "update_profile",
]
