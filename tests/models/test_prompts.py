"""Reply prompts: templates and placeholders, the story as chat messages, and the end-call marker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from models.engines import CallContext, Line
from models.prompts import (
    CUT_OFF_MARKS,
    END_CALL_MARKER,
    CutOffFilter,
    MarkerFilter,
    OwnerNameFilter,
    build_messages,
    interrupted_words,
    may_end_call,
    system_prompt,
)

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
    assert [m["role"] for m in messages] == ["system", "assistant", "user"]
    # the line the caller cut off is not the assistant's: what they heard of it opens their next words
    assert messages[2]["content"] == ("Hi, it's Anna. About the delivery, it is late. (You were cut off: the "
                                      'caller heard only "I see. The delivery is confirmed for Tuesday, at" '
                                      "of your last line.) No, Wednesday.")
    # the note explains itself: the system prompt never shows the model a note it could imitate
    assert messages[0]["content"] == system_prompt(CONTEXT)
    assert "cut off" not in messages[0]["content"]
    italian = build_messages(story, dataclasses.replace(CONTEXT, language="it"))
    assert '(Sei stato interrotto: chi chiama ha sentito solo "I see.' in italian[2]["content"]
    assert "interrott" not in italian[0]["content"]


# --------------------------------------------------------------------------- the caller's profile

PROFILED = dataclasses.replace(CONTEXT, manner="warm, informal.", end_on_sales=True,
                               caller_notes="Marco's sister.\nLives in Rome.")
NOTED = "- What Marco noted about this caller (for you, not to be read out): "


def test_a_profile_adds_its_lines_to_the_shipped_templates() -> None:
    text = system_prompt(PROFILED)
    assert "The caller is Anna Rossi, whom Marco knows: greet them by name" in text
    assert "- How to speak with this caller: warm, informal." in text
    assert NOTED + "Marco's sister. Lives in Rome." in text
    assert "is trying to sell something" in text
    assert text.endswith(f"end the call. Write {END_CALL_MARKER} on a line of its own after that goodbye.")
    italian = system_prompt(dataclasses.replace(PROFILED, language="it"))
    assert "Chi chiama è Anna Rossi, che Marco conosce" in italian
    assert "- Come parlare con chi chiama: warm, informal." in italian
    assert "cerca di vendere qualcosa" in italian
    assert italian.endswith(f"scrivi {END_CALL_MARKER} su una riga a parte.")


@pytest.mark.parametrize("language", ["en", "it"])
def test_without_a_profile_the_placeholder_line_goes(language: str) -> None:
    text = system_prompt(CallContext(language=language, owner_name="Marco"))
    assert "{" not in text and not text.endswith("\n")
    ending = " on a line of its own." if language == "en" else " su una riga a parte."
    assert text.splitlines()[-1].startswith("- ") and text.endswith(END_CALL_MARKER + ending)
    assert "sell" not in text and "vend" not in text  # only a profile with end_on_sales ends on a pitch


def test_an_owner_template_without_the_placeholder_still_gets_the_profile(tmp_path: Path) -> None:
    (tmp_path / "reply.en.txt").write_text("Take a message for {owner_name}.\n")
    text = system_prompt(dataclasses.replace(PROFILED, caller_notes="Says {owner_name} owes her {money}."),
                         tmp_path)
    assert text.splitlines() == [
        "Take a message for Marco.",
        "- How to speak with this caller: warm, informal.",
        NOTED + "Says {owner_name} owes her {money}.",
        "- If the caller is trying to sell something, do not take a message: say politely that Marco is "
        "not interested, say goodbye in one sentence, and end the call. "
        f"Write {END_CALL_MARKER} on a line of its own after that goodbye.",
    ]
    assert system_prompt(CONTEXT, tmp_path) == "Take a message for Marco."


def test_an_owner_template_places_the_profile_where_it_likes(tmp_path: Path) -> None:
    (tmp_path / "reply.en.txt").write_text("About the caller: {profile} That is all.")
    assert system_prompt(dataclasses.replace(CONTEXT, manner="brief"), tmp_path).startswith(
        "About the caller: - The caller is Anna Rossi, whom Marco knows")
    assert system_prompt(CallContext(), tmp_path) == "About the caller:  That is all."


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


@pytest.mark.parametrize("marker", ["[CALL_END]", "[End Call]", "[ENDCALL]", "[END-CALL]"])
def test_the_forms_a_small_model_writes_for_the_marker_end_the_call_unspoken(marker: str) -> None:
    # the 1.5B closed an Italian goodbye with "[CALL_END]", and the caller heard it read out
    text = f"Arrivederci! {marker}"
    for i in range(len(text) + 1):
        assert _run([text[:i], text[i:]]) == ("Arrivederci! ", True)


def test_a_false_start_is_given_back() -> None:
    assert _run(["See you [END", "ING] soon"]) == ("See you [ENDING] soon", False)
    assert _run(["Costs [", "5 euro]"]) == ("Costs [5 euro]", False)
    assert _run(["Wait [END_"]) == ("Wait [END_", False)  # held text comes out at the end


def test_held_text_is_only_a_possible_marker_start() -> None:
    markers = MarkerFilter()
    assert markers.feed("Hello [E") == "Hello "
    assert markers.feed("x") == "[Ex"


def _recited(pieces: list[str], interrupted: str = "") -> tuple[str, bool]:
    recited = CutOffFilter(interrupted)
    out = "".join(recited.feed(p) for p in pieces) + recited.flush()
    return out, recited.seen


def test_a_reply_ends_where_the_model_writes_the_storys_cut_off_mark_again() -> None:
    # the 1.5B after its line was cut off: the line again, mark and all, then more of the story
    text = "Sure, I can help with that! What specifically ... [cut off] Caller: the delivery date"
    for i in range(len(text) + 1):
        assert _recited([text[:i], text[i:]]) == ("Sure, I can help with that! What specifically ", True)
    assert _recited(text.split(" ")[:1] + [" " + w for w in text.split(" ")[1:]])[1]
    assert _recited(["He heard it.[cut off]"]) == ("He heard it.", True)  # the mark without its dots
    assert _recited(["Wait... ", "I'll check."]) == ("Wait... I'll check.", False)  # dots alone stay
    assert _recited(["Bye."]) == ("Bye.", False)  # a held "." comes out at the end


def test_the_interrupted_line_said_again_up_to_the_mark_is_not_said_at_all() -> None:
    # From a real call (whisper, the 1.5B): cut off after "Got", the bot answered the caller's next
    # line with "Got ... [cut off]", and the caller heard a lone "Got".
    text = "Got ... [cut off]"
    for i in range(len(text) + 1):
        assert _recited([text[:i], text[i:]], "Got") == ("", True)
    assert _recited(["Got it, ", "I'll ... [cut off]"], "Got it, I'll tell") == ("", True)
    # words that only begin like it are let through as soon as they differ, and stand
    assert _recited(["Got", " it,", " I'll tell him."], "Got") == ("Got it, I'll tell him.", False)
    assert _recited(["Got it. And ... [cut off]"], "Got") == ("Got it. And ", True)
    assert _recited(["Sorry, ", "go on ... [cut off]"], "Got") == ("Sorry, go on ", True)
    assert _recited(["Got"], "Got") == ("Got", False)  # the stream ended without the mark: it stands


def test_the_prompts_cut_off_note_is_never_read_aloud() -> None:
    # the real 1.5B began two Italian replies with the note that stood for its cut-off line
    assert _recited(['Sei stato interrotto: chi chiama ha sentito solo "Perfetto,"']) == ("", True)
    assert _recited(["Certo. (You were cut off: the ", 'caller heard only "Got"']) == ("Certo. (", True)
    assert _recited(["Sorry, you were cut off. Could you say it again?"]) == (
        "Sorry, you were cut off. Could you say it again?", False)  # words of the note, not the note
    assert _recited(["Ti ", "chiamerà lui."]) == ("Ti chiamerà lui.", False)


def test_the_words_heard_of_the_bots_last_line_when_it_was_cut_off() -> None:
    from server.core.story import CUT_OFF

    story = [Line("bot", "Hello?"), Line("caller", "Hi."), Line("bot", f"Got {CUT_OFF}"),
             Line("caller", "four four nine")]
    assert interrupted_words(story) == "Got"
    assert interrupted_words(story[:2]) == "" and interrupted_words([]) == ""


def test_the_storys_cut_off_mark_is_one_the_reply_filter_knows() -> None:
    from server.core.story import CUT_OFF

    assert CUT_OFF in CUT_OFF_MARKS


def _filtered(text: str, owner: str = "Marco", caller: str = "", piece: int = 0) -> str:
    """`text` through an OwnerNameFilter, whole (piece 0) or in pieces of `piece` characters."""
    names = OwnerNameFilter(owner, caller)
    pieces = [text[i:i + piece] for i in range(0, len(text), piece)] if piece else [text]
    return "".join(names.feed(p) for p in pieces) + names.flush()


@pytest.mark.parametrize(("said", "heard"), [
    ("Thank you, Marco. I will pass the message on.", "Thank you. I will pass the message on."),
    ("Got it, Marco's phone. I'll tell him.", "Got it. I'll tell him."),
    ("Hello Marco, what can I do for you?", "Hello, what can I do for you?"),
    ("Va bene, Marco. Gli dico che ha chiamato.", "Va bene. Gli dico che ha chiamato."),
    ("Sure, Marco will call you back.", "Sure, Marco will call you back."),
    ("Thanks, Marcella!", "Thanks, Marcella!"),
    ("Marco is away. I'll tell Marco.", "Marco is away. I'll tell Marco."),
    ("Marco, your car is ready. Marco, Luca called.", "Your car is ready. Luca called."),
    ("Marco, è il numero centoventi.", "È il numero centoventi."),
    ("Okay. Marco will call you.", "Okay. Marco will call you."),
    ("Okay, Mar", "Okay, Mar"),
])
@pytest.mark.parametrize("piece", [0, 1, 3, 7])
def test_the_owners_name_is_taken_out_only_where_it_greets_the_caller(said: str, heard: str,
                                                                     piece: int) -> None:
    assert _filtered(said, piece=piece) == heard


def test_a_caller_with_the_owners_name_may_be_greeted_by_it() -> None:
    greeted = _filtered("Thank you, Marco.", owner="Marco Rossi", caller="Marco Bianchi", piece=2)
    assert greeted == "Thank you, Marco."
    assert _filtered("Thank you, Marco Rossi.", owner="Marco Rossi", piece=2) == "Thank you."
    assert _filtered("Thank you, Marco.", owner="", piece=2) == "Thank you, Marco."


def test_only_a_possible_name_after_a_greeting_waits_for_the_next_piece() -> None:
    names = OwnerNameFilter("Marco")
    assert names.feed("Mar") == ""
    assert names.feed("co is") == "Marco is"
    assert names.feed(" away. Sure, I'll") == " away. Sure, I'll"
    assert names.feed(" tell him. Thanks,") == " tell him. Thanks"
    assert names.feed(" Ma") == ""
    assert names.feed("ria.") == ", Maria."


@pytest.mark.parametrize(("language", "lines", "closed"), [
    ("en", ["Hello, Marco's phone.", "Hi, it's Anna, the delivery is late."], False),
    ("en", ["Hello, Marco's phone.", "The delivery address is forty two Rosewood Avenue,"], False),
    ("en", ["I'll tell him. Anything else?", "No, that's all, thanks."], True),
    ("en", ["I'll tell him.", "Great, thank you. Bye!"], True),
    ("en", ["Anything else?", "No."], True),
    ("en", ["Who is calling?", "No idea what you mean, I'm calling about the boiler."], False),
    ("en", ["I'll tell him.", "Thanks. Oh, and one more thing."], False),
    ("it", ["Pronto?", "Buongiorno, sono Paola, la consegna è in ritardo."], False),
    ("it", ["Glielo dico. Altro?", "No, è tutto, grazie. Arrivederci."], True),
    ("it", ["Glielo dico.", "Va bene, grazie mille."], True),
])
def test_the_call_may_end_only_once_the_caller_has_closed_it(language: str, lines: list[str],
                                                            closed: bool) -> None:
    story = [Line("bot", lines[0]), Line("caller", lines[1])]
    context = CallContext(language=language)
    assert may_end_call(story, context) is closed
    assert may_end_call(story, dataclasses.replace(context, end_on_sales=True))  # the model judges a pitch
