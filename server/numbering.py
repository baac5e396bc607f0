"""The world's phone numbers as the core's dictation asks about them (`NumberingPlan` in
server/core/dictation.py), answered by `phonenumbers` (Google's libphonenumber metadata); and the
owner's country as a language tag implies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberFormat, ValidationResult

from server.core.dictation import Fit

__all__ = ["PhoneNumbersPlan", "region_for_language"]

_FIT = {
    ValidationResult.IS_POSSIBLE: Fit.POSSIBLE,
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: Fit.POSSIBLE,
    ValidationResult.TOO_SHORT: Fit.TOO_SHORT,
    ValidationResult.TOO_LONG: Fit.TOO_LONG,
}


class _Number:
    def __init__(self, number: PhoneNumber) -> None:
        self._number = number

    @cached_property
    def fit(self) -> Fit:
        if phonenumbers.is_valid_number(self._number):
            return Fit.VALID
        return _FIT.get(phonenumbers.is_possible_number_with_reason(self._number), Fit.OTHER)

    @property
    def country_code(self) -> int:
        return self._number.country_code or 0

    def usual_length(self) -> bool:
        region = phonenumbers.region_code_for_number(self._number)
        example = phonenumbers.example_number_for_type(region, phonenumbers.number_type(self._number))
        length = len(phonenumbers.national_significant_number(self._number))
        return example is not None and length >= len(phonenumbers.national_significant_number(example))

    def e164(self) -> str:
        return phonenumbers.format_number(self._number, PhoneNumberFormat.E164)

    def national(self) -> str:
        return phonenumbers.format_number(self._number, PhoneNumberFormat.NATIONAL)

    def international(self) -> str:
        return phonenumbers.format_number(self._number, PhoneNumberFormat.INTERNATIONAL)


@dataclass(frozen=True, slots=True)
class PhoneNumbersPlan:
    """The numbering plan of every country phonenumbers knows. Stateless: any two are equal."""

    def parse(self, digits: str, region: str) -> _Number | None:
        try:
            return _Number(phonenumbers.parse(digits, region or None))
        except phonenumbers.NumberParseException:
            return None

    def country_code(self, region: str) -> int:
        return phonenumbers.country_code_for_region(region)


# A language spoken mostly in one country, for numbers said without a country code. Languages of many
# countries (en, es, fr, de, pt, ar, nl...) have none: the owner sets [contacts] region.
_ONE_COUNTRY = {
    "it": "IT", "pl": "PL", "cs": "CZ", "sk": "SK", "hu": "HU", "ro": "RO", "bg": "BG", "hr": "HR",
    "sl": "SI", "da": "DK", "fi": "FI", "nb": "NO", "nn": "NO", "no": "NO", "is": "IS", "et": "EE",
    "lv": "LV", "lt": "LT", "el": "GR", "tr": "TR", "uk": "UA", "ja": "JP", "ko": "KR", "he": "IL",
    "th": "TH", "vi": "VN",
}


def region_for_language(language: str) -> str:
    """The country of a language tag: its own ("en-GB" -> GB), else the one country a language is
    mostly spoken in ("it" -> IT), else "" (none can be told)."""
    parts = language.strip().replace("_", "-").split("-")
    for part in parts[1:]:
        if len(part) == 2 and part.isalpha() and part.upper() in phonenumbers.SUPPORTED_REGIONS:
            return part.upper()
    return _ONE_COUNTRY.get(parts[0].lower(), "")
