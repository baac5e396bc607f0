"""Reply prompts: templates and placeholders, the story as chat messages, and the end-call marker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from models.engines import CallContext, Line
from models.prompts import END_CALL_MARKER, MarkerFilter, build_messages, system_prompt

CONTEXT = CallContext(language="en", caller_number="+39 333 1234567", caller_name="Anna Rossi",
                      owner_name="Marco", started_at="2025-03-14T16:05:00")


@pytest.mark.parametrize("language", ["en", "it", "it-IT"])
def test_placeholders_are_filled(language: str) -> None:
    text = system_prompt(_with_language(language))
    for value in ("Marco", "+39 333 1234567", "Anna Rossi", "2025-03-14", "16:05"):
        assert value in text
    assert "{" not in text and "}" not in text
    assert END_CALL_MARKER in text  # the templates teach the marker


def test_english_template_names_the_language_and_unknowns() -> None:
    text = system_prompt(CallContext(language="en"))
    assert "Speak English" in text
    assert "the owner" in text and "unknown" in text


def test_a_language_without_a_template_gets_the_english_one() -> None:
    assert system_prompt(_with_language("de")).startswith("You are answering")
    assert "German" in system_prompt(CallContext(language="de"))


def test_the_owner_template_wins_and_other_braces_stay(tmp_path: Path) -> None:
    (tmp_path / "reply.en.txt").write_text("Hi {owner_name}! Keep {this} and {caller_number}.\n")
    assert system_prompt(CONTEXT, tmp_path) == "Hi Marco! Keep {this} and +39 333 1234567."
    assert system_prompt(_with_language("it"), tmp_path).startswith("Rispondi")


def test_story_becomes_chat_messages() -> None:
    story = [
        Line("bot", "Hello, Marco's phone."),
        Line("caller", "Hi, it's Anna."),
        Line("caller", "  "),
        Line("caller", "About the delivery,"),
        Line("caller", "it is late."),
        Line("bot", "I see. The delivery is confirmed for Tuesday, at ... [cut off]"),
        Line("caller", "No, Wednesday."),
    ]
    messages = build_messages(story, CONTEXT)
    assert [m["role"] for m in messages] == ["system", "assistant", "user", "assistant", "user"]
    assert messages[2]["content"] == "Hi, it's Anna. About the delivery, it is late."
    assert messages[3]["content"] == "I see. The delivery is confirmed for Tuesday, at ... [cut off]"
    assert messages[0]["content"] == system_prompt(CONTEXT)


def _with_language(language: str) -> CallContext:
    return dataclasses.replace(CONTEXT, language=language)


# --------------------------------------------------------------------------- marker


def _run(pieces: list[str]) -> tuple[str, bool]:
    markers = MarkerFilter()
    out = "".join(markers.feed(p) for p in pieces) + markers.flush()
    return out, markers.seen


def test_marker_is_stripped_wherever_the_pieces_split_it() -> None:
    text = "Thank you, goodbye!\n[END_CALL]"
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            assert _run([text[:i], text[i:j], text[j:]]) == ("Thank you, goodbye!\n", True)
    assert _run(list(text)) == ("Thank you, goodbye!\n", True)


def test_marker_match_ignores_case_and_drops_what_follows() -> None:
    assert _run(["Bye. [end_", "call] and more", " text"]) == ("Bye. ", True)


def test_a_false_start_is_given_back() -> None:
    assert _run(["See you [END", "ING] soon"]) == ("See you [ENDING] soon", False)
    assert _run(["Costs [", "5 euro]"]) == ("Costs [5 euro]", False)
    assert _run(["Wait [END_"]) == ("Wait [END_", False)  # held text comes out at the end


def test_held_text_is_only_a_possible_marker_start() -> None:
    markers = MarkerFilter()
    assert markers.feed("Hello [E") == "Hello "
    assert markers.feed("x") == "[Ex"
