"""[contacts] region: the owner's country for numbers without a country code, and what the core's
dictation gets from it (server/config.py, server/core/dictation.py, server/numbering.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import ConfigError, load
from server.core.phrases import PHRASES
from server.numbering import PhoneNumbersPlan, region_for_language


def test_the_region_is_the_owners_or_that_of_their_language() -> None:
    assert load(None, {"contacts": {"region": "gb"}}).region == "GB"
    assert load(None, {"stt": {"language": "it"}}).region == "IT"  # Italian: Italy
    assert load(None).region == ""  # English: too many countries to tell
    assert load(None, {"stt": {"language": "it"}, "contacts": {"region": "CH"}}).region == "CH"


def test_region_of_a_language() -> None:
    assert (region_for_language("it"), region_for_language("it-CH"), region_for_language("en"),
            region_for_language("en_GB")) == ("IT", "CH", "", "GB")


def test_the_calls_dictation_takes_its_language_and_the_owners_region() -> None:
    config = load(None, {"contacts": {"region": "IT"}})
    dictation = config.conversation("it-IT").dictation
    assert (dictation.language, dictation.region) == ("it-IT", "IT")
    assert dictation.plan == PhoneNumbersPlan()  # the core judges numbers by phonenumbers' plan
    assert load(None).conversation().dictation.plan == PhoneNumbersPlan()
    assert config.conversation("it-IT").call.readback == PHRASES["it"]["readback"]
    assert config.conversation().call.readback == PHRASES["en"]["readback"]


@pytest.mark.parametrize("region", ["XX", "Italy", "I", "39"])
def test_a_region_that_is_no_country_is_refused(region: str, tmp_path: Path) -> None:
    path = tmp_path / "standin.toml"
    path.write_text(f'[contacts]\nregion = "{region}"\n')
    with pytest.raises(ConfigError, match=r"\[contacts\].*region must be a two-letter country code"):
        load(path)
