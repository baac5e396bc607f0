"""The reply benchmark's fault rules (benchmarks/reply_quality.py) on replies the starter models wrote, and
its stories. How often the models commit them is a measurement (the README's figures)."""

from __future__ import annotations

import pytest

from benchmarks import reply_quality as rq
from models.prompts import system_prompt

INSTRUCTIONS = {lang: system_prompt(rq.call_context(lang)) for lang in ("en", "it")}


@pytest.mark.parametrize(("language", "text", "expected"), [
    ("en", "Thank you, Marco. I will pass the message on.", ["owner"]),
    ("en", "Hi there! It's Marco. How can I assist you today?", ["assistant", "owner"]),
    ("en", "Marco, please call the garage before six.", ["owner"]),
    ("en", "Yes, Marco is there.", ["invented"]),
    ("en", "The office is open on Saturday. No, you cannot pay by card when you come in.", ["invented"]),
    ("en", "Sure, Marco will call you back at 2:00 PM.", ["invented"]),
    ("en", "Got it, Marco. Let's start the party at 7:00.", ["owner"]),
    ("en", "Sure, Marco's phone, please call the garage before six.", ["owner"]),
    ("en", "You're welcome! If you have any more questions, feel free to ask.", ["assistant"]),
    ("en", "Understood. I'll call back on [cut off]", ["leak"]),
    ("en", "I need:\n- your name\n- your number", ["format"]),
    ("it", "Buongiorno, Marco! Come posso aiutarti oggi?", ["assistant", "owner"]),
    ("it", "Marco torna lunedì, non è possibile contattarlo.", ["invented"]),
    ("it", "Sì, " * 12, ["repeat"]),
    ("it", "Va bene. Chiedi chi chiama, per quale motivo e un numero a cui richiamare.", ["leak"]),
    ("it", "Ok, thanks. Now, what is the name of your phone?", ["language"]),
    ("en", "", ["empty"]),
])
def test_faults_the_starter_models_committed_are_caught(language: str, text: str,
                                                       expected: list[str]) -> None:
    assert rq.faults(text, language, INSTRUCTIONS[language]) == expected


@pytest.mark.parametrize(("language", "text"), [
    ("en", "Got it, Laura. I'll tell him the car is ready. What number can he call you back on?"),
    ("en", "I'm not sure if Marco is free on Friday; I'll ask him to call you about it."),
    ("en", "Sure. I'll pass the message on to Marco."),
    ("en", "Hello! I'm Marco's assistant. Who is calling, please?"),
    ("it", "Va bene, Anna. Gli dico che la macchina è pronta. A che numero può richiamarla?"),
    ("it", "Non so quando Marco è libero: gli chiedo di richiamarla."),
])
def test_a_good_reply_has_no_fault(language: str, text: str) -> None:
    assert rq.faults(text, language, INSTRUCTIONS[language]) == []


def test_stories_take_each_scenarios_caller_turns_in_order() -> None:
    stories = {s["name"]: s for s in rq.stories(turns=2)}
    assert {s["language"] for s in stories.values()} == {"en", "it"}
    three = stories["en_list_three"]
    assert three["turns"] == ["I need you to tell him three things. The van is booked. The keys are with "
                              "Sandra. And the deposit still hasn't come through."]
    assert three["bot"] == rq.GREETING["en"]
    assert all(1 <= len(s["turns"]) <= 2 for s in stories.values())


def test_the_first_clause_is_found_on_the_recorded_text_pieces_for_each_splitter_setting() -> None:
    from server.core.speech import SpeechOptions

    deltas = [[300.0, "Sure"], [345.0, ","], [390.0, " Marco"], [435.0, " will"], [480.0, " call"],
              [525.0, " you"], [570.0, " back"], [615.0, "."], [660.0, " He"]]

    def at(pieces: list[list[object]], n: int) -> tuple[float, str]:
        return rq.first_clause_at(pieces, 700.0, SpeechOptions(first_clause_min_words=n))

    # a mark ends a clause once the space after it has come ("1,000" is no clause)
    assert at(deltas, 1) == (390.0, "Sure,")
    assert at(deltas, 2) == (660.0, "Sure, Marco will call you back.")
    assert at(deltas[:3], 2) == (700.0, "Sure, Marco")  # never cut: the whole reply, when it ended


def test_results_keep_each_replys_text_pieces_on_one_line() -> None:
    import json

    out = {"calls": {"m": [{"replies": [{"text": "Ok.", "deltas": [[1.5, "Ok"], [2.0, "."]]}]}]}}
    text = rq._dump(out)
    assert json.loads(text) == out
    assert '"deltas": [[1.5, "Ok"], [2.0, "."]]' in text
