"""The rules turn judge on lines the story before them changes: what the bot last asked (a question,
a number, what the call is about), what the caller said earlier in the turn (an introduction, digit
groups, announced questions), and which line is the caller's last."""

from __future__ import annotations

import pytest

from models.engines import Line, Verdict
from models.judge_rules import RulesJudge

JUDGE = RulesJudge()


def complete(v: Verdict) -> bool:
    return v.p_complete >= 0.5


def judge(*caller_lines: str, language: str = "en") -> Verdict:
    return JUDGE.judge([Line("caller", t) for t in caller_lines], language=language)


def test_greeting_waits_only_as_the_first_line() -> None:
    assert not complete(judge("Ciao.", language="it"))
    story = [Line("caller", "Volevo lasciare un messaggio."), Line("bot", "Certo, dica pure."),
             Line("caller", "Che mi richiami stasera."), Line("bot", "Va bene, glielo dico."),
             Line("caller", "Ciao.")]
    assert JUDGE.judge(story, language="it").reason == "closing"


def test_only_the_callers_last_line_is_judged() -> None:
    story = [Line("caller", "I'm calling because"), Line("bot", "Go on, I'm listening."),
             Line("caller", "the boiler is broken and he needs to call the plumber."),
             Line("bot", "Okay, I'll tell him. Anything else?")]
    v = JUDGE.judge(story, language="en")
    assert complete(v)
    assert v.reason == "statement"
    story[-2] = Line("caller", "the boiler is broken and")
    assert JUDGE.judge(story, language="en").reason == "trailing-conjunction"


def test_bot_lines_after_the_callers_last_line_are_ignored() -> None:
    caller = [Line("caller", "I wanted to leave a message for Anna.")]
    alone = JUDGE.judge(caller, language="en")
    with_bot = JUDGE.judge([*caller, Line("bot", "Sure, what is it? Is it urgent?")], language="en")
    assert with_bot == alone
    assert not complete(with_bot)


def test_an_introduction_later_in_the_call_is_judged_as_a_statement() -> None:
    story = [Line("caller", "Is Marco there?"), Line("bot", "He is out."), Line("caller", "This is Anna.")]
    assert JUDGE.judge(story, language="en").reason != "introduction"


def test_a_number_dictated_over_several_fragments_adds_up() -> None:
    asked = [Line("bot", "What number can he call you back on?")]
    groups = ["three four seven", "eight one two", "five five six seven"]
    verdicts = [JUDGE.judge([*asked, *(Line("caller", g) for g in groups[:n])], language="en")
                for n in (1, 2, 3)]
    assert [v.reason for v in verdicts] == ["number-sequence"] * 2 + ["whole-number"]
    assert verdicts[0].p_complete < 0.2 and verdicts[1].p_complete < 0.2
    assert 0.5 <= verdicts[2].p_complete < 0.9  # ten digits: the whole number
    # "uno" after other digits is a digit, not an article
    story = [Line("bot", "Mi lascia un numero?"), Line("caller", "sì zero due"),
             Line("caller", "quattro cinque sei sette otto nove uno")]
    assert JUDGE.judge(story, language="it").reason == "number-sequence"


def test_a_short_reply_to_the_bots_question_is_complete() -> None:
    for question, reply, language in (("Is it urgent?", "yes very", "en"),
                                      ("Would you like him to call you back?", "no it's fine", "en"),
                                      ("Vuole che la richiami?", "no non serve", "it"),
                                      ("Ha il suo numero?", "credo di sì", "it")):
        v = JUDGE.judge([Line("bot", question), Line("caller", reply)], language=language)
        assert v.reason == "reply" and complete(v), reply
    # not when the bot asked nothing
    told = [Line("bot", "Go ahead."), Line("caller", "yes very")]
    assert JUDGE.judge(told, language="en").reason != "reply"


@pytest.mark.parametrize(("language", "lines", "expected"), [
    ("en", ["I've got two questions for him.", "First, is the office open on Saturday?"], "WAIT"),
    ("en", ["I've got two questions for him.", "First, is the office open on Saturday?",
            "And second, can I pay by card?"], "COMPLETE"),
    ("it", ["Avrei due domande.", "Prima cosa, l'ufficio è aperto sabato?"], "WAIT"),
    ("en", ["Is the office open on Saturday?"], "COMPLETE"),
])
def test_a_question_that_is_one_of_several_announced_is_not_the_end(language: str, lines: list[str],
                                                                     expected: str) -> None:
    story = [Line("bot", "Hello?"), *(Line("caller", text) for text in lines)]
    verdict = JUDGE.judge(story, language=language)
    assert ("COMPLETE" if verdict.p_complete >= 0.5 else "WAIT") == expected


def test_a_topic_that_answers_the_bots_question_is_complete() -> None:
    for question, answer, language in (("What is it about?", "About the invoice.", "en"),
                                       ("Di cosa si tratta?", "Per la fattura di marzo.", "it")):
        assert complete(JUDGE.judge([Line("bot", question), Line("caller", answer)], language=language))


@pytest.mark.parametrize(("language", "lines"), [
    ("en", ["Good afternoon, my name is David Cho,", "I'm the new tenant in the flat downstairs."]),
    ("en", ["Hi.", "I'm Marco's cousin from Turin."]),
    ("it", ["Buonasera, mi chiamo Paolo Greco,", "sono il nuovo inquilino del piano di sotto."]),
    ("it", ["Sono l'idraulico."]),
])
def test_a_caller_still_saying_who_they_are_is_not_done(language: str, lines: list[str]) -> None:
    story = [Line("bot", "Hello, Marco's phone, how can I help?"), *(Line("caller", t) for t in lines)]
    assert JUDGE.judge(story, language=language).reason == "introduction"
    # once they have said something else, the same words are a statement
    told = [story[0], Line("caller", "The boiler is leaking again."), Line("caller", lines[-1])]
    assert JUDGE.judge(told, language=language).reason != "introduction"


@pytest.mark.parametrize(("language", "question", "answer"), [
    ("en", "Sure. Who's calling, please?", "My name is Rachel Green."),
    ("en", "Can I take your name?", "It's Laura from the dentist's office."),
    ("it", "Certo. Chi parla, scusi?", "Sono Francesca dello studio dentistico."),
    ("it", "Mi lascia il suo nome?", "Mi chiamo Paolo Greco."),
])
def test_saying_who_they_are_answers_the_bot_asking_it(language: str, question: str, answer: str) -> None:
    hello = {"en": "Hello?", "it": "Pronto?"}[language]
    story = [Line("bot", "Hello, Marco's phone, how can I help?"), Line("caller", hello),
             Line("bot", question), Line("caller", answer)]
    assert complete(JUDGE.judge(story, language=language))
    del story[2]  # the same words with nothing asked: the reason for the call is still to come
    assert JUDGE.judge(story, language=language).reason == "introduction"


def test_digits_that_end_in_a_period_with_no_number_asked_for_may_be_a_whole_code() -> None:
    hello, ask = Line("bot", "Hello, Marco's phone, how can I help?"), Line("bot", "What's your number?")
    looked_up = [hello, Line("caller", "Sì, un attimo che lo cerco."), Line("caller", "Ecco, nove nove uno,"),
                 Line("caller", "quattro zero sette.")]
    assert JUDGE.judge(looked_up[:2], language="it").reason == "hold"
    code = JUDGE.judge(looked_up, language="it")
    assert code.reason == "number-sequence" and 0.2 <= code.p_complete < 0.5  # the shorter backstop
    # asked for a number, or speaking of one: the next group is surely coming
    for story in ([ask, Line("caller", "Four four one.")], [hello, Line("caller", "My number is 347 555.")],
                  [hello, Line("caller", "Four four one,")]):
        assert JUDGE.judge(story, language="en").p_complete < 0.2, story[-1].text


def test_an_unpunctuated_answer_to_the_bots_question_is_complete_unless_given_in_pieces() -> None:
    for question, answer, language in (("What's your name?", "my name is rachel green", "en"),
                                       ("When would suit you?", "tomorrow morning is best", "en"),
                                       ("Quando le farebbe comodo?", "dopo le cinque quando vuole", "it")):
        v = JUDGE.judge([Line("bot", question), Line("caller", answer)], language=language)
        assert v.reason == "unpunctuated-answer" and complete(v), answer
    for question, answer, language in (("What's the address for the delivery?", "it's 42 hawthorn", "en"),
                                       ("What's your number?", "it's 347", "en"),
                                       ("Qual è l'indirizzo per la consegna?", "via garibaldi", "it")):
        assert not complete(JUDGE.judge([Line("bot", question), Line("caller", answer)], language=language))
    # not an answer when the bot asked nothing
    assert not complete(JUDGE.judge([Line("bot", "Go ahead."), Line("caller", "tomorrow morning is best")],
                                    language="en"))


@pytest.mark.parametrize(("language", "lines"), [
    ("en", ["Yes, Kowalski. K, O, W,", "A, L, S, K, I."]),
    ("en", ["The name's Siobhan, that's S-I-O-B-H-A-N."]),
    ("en", ["It's Morrison.", "M, O, double R, I, S, O, N."]),
    ("it", ["Il cognome è Gualtieri, con la G,", "U, A, L, T,", "I, E, R, I."]),
    ("it", ["Certo, Esposito: E come Empoli, S come Savona,", "P come Palermo, O come Otranto,",
            "S, I, T, O."]),
    ("it", ["Sì, D'Angelo.", "D, A, N, G, E, L, O."]),
    ("en", ["Sure, it's De Luca, D, E,", "L, U, C, A."]),
])
def test_spelled_letters_that_spell_a_word_said_before_them_end_the_spelling(language: str,
                                                                            lines: list[str]) -> None:
    v = judge(*lines, language=language)
    assert (v.reason, complete(v)) == ("spelled-word", True)
    if len(lines) > 1:  # the same letters, the word not said: the rules cannot tell whether they are all
        unknown = judge(lines[-1], language=language)
        assert unknown.reason == "spelling" and not complete(unknown)


def test_letters_that_begin_the_word_said_are_a_spelling_still_going() -> None:
    part = judge("Yes, Kowalski. K, O, W, A")
    other = judge("Yes, it's K, O, W, A")
    assert part.reason == other.reason == "spelling"
    assert part.p_complete < other.p_complete < 0.5  # the longer backstop: more letters are surely coming


def test_the_word_to_spell_may_come_from_the_bots_question() -> None:
    story = [Line("bot", "How do you spell Whittaker?"), Line("caller", "W, H, I, T, T, A, K, E, R.")]
    assert JUDGE.judge(story, language="en").reason == "spelled-word"


@pytest.mark.parametrize(("language", "text"), [
    ("en", "Could you ask him to call me back this afternoon? It's Paul."),
    ("it", "Può dirgli di richiamarmi oggi pomeriggio? Sono Paolo."),
])
def test_a_name_after_the_reason_for_the_call_is_no_introduction_still_to_be_followed(language: str,
                                                                                       text: str) -> None:
    v = judge(text, language=language)
    assert v.reason != "introduction" and complete(v)
    first = text.split("? ")[1]
    assert judge(first, language=language).reason == "introduction"  # on its own, the reason is to come
    hello = {"en": "Hello.", "it": "Buongiorno."}[language]
    assert judge(f"{hello} {first}", language=language).reason == "introduction"


def test_through_ending_a_sentence_is_a_verbs_particle_not_a_preposition_left_open() -> None:
    assert complete(judge("The deposit still hasn't come through."))
    assert not complete(judge("the deposit still hasn't come through"))  # no period: may go on


@pytest.mark.parametrize(("language", "announced", "source"), [
    ("en", "Yeah, I've got a message for him.", "It's from the school."),
    ("en", "I'd like to leave a message for Marco.", "This is on behalf of his accountant."),
    ("en", "I've got a message for Marco.", "It's from Lucia's school."),
    ("it", "Sì, ho un messaggio per Marco.", "È da parte della scuola."),
    ("it", "Vorrei lasciare un messaggio.", "Da parte del dottor Bianchi."),
])
def test_a_line_that_only_says_whom_a_message_is_from_waits_for_the_message(language: str, announced: str,
                                                                            source: str) -> None:
    hello = Line("bot", "Hello, Marco's phone.")
    verdict = JUDGE.judge([hello, Line("caller", announced), Line("caller", source)], language=language)
    assert verdict.reason == "topic" and verdict.p_complete < 0.2  # a caller who stops is told to go ahead
    # the same words answering the bot's question, or with the message in them, are complete
    asked = {"en": "Who is the message from?", "it": "Da parte di chi?"}[language]
    assert complete(JUDGE.judge([Line("bot", asked), Line("caller", source)], language=language))
    said = {"en": "It's from the school, Lucia forgot her bag.",
            "it": "È da parte della scuola, Lucia ha dimenticato la borsa."}[language]
    assert complete(JUDGE.judge([hello, Line("caller", announced), Line("caller", said)], language=language))


@pytest.mark.parametrize(("language", "lines"), [
    ("en", ["Hi, I'd like to leave a message for Marco.", "Tell him the car is ready"]),
    ("en", ["It's Anna from the garage.", "Please ask him to call me back"]),
    ("it", ["Buongiorno, vorrei lasciare un messaggio per Marco.", "Gli dica che la macchina è pronta"]),
])
def test_a_request_left_open_by_a_transcriber_that_marks_ends_is_unsure(language: str,
                                                                          lines: list[str]) -> None:
    story = [Line("bot", "Hello?"), *(Line("caller", t) for t in lines)]
    verdict = JUDGE.judge(story, language=language)
    assert verdict.reason == "unpunctuated" and 0.2 <= verdict.p_complete < 0.5  # the shorter backstop
    # with its period, or from a transcriber that marks nothing, it is the request it reads as
    marked = [*story[:-1], Line("caller", lines[-1] + ".")]
    assert JUDGE.judge(marked, language=language).reason == "request"
    bare = [story[0], *(Line("caller", t.rstrip(".,").replace(",", "").lower()) for t in lines)]
    assert JUDGE.judge(bare, language=language).reason == "request"


@pytest.mark.parametrize(("language", "started", "whole"), [
    ("en", "It's anna dot berg.", "It's anna dot berg at northmail dot com."),
    ("en", "It's Anna.berg.", "It's anna.berg@northmail.com."),  # whisper's spelling of it
    ("it", "È anna punto berti.", "È anna punto berti chiocciola posta punto it."),
])
def test_an_email_address_with_no_at_yet_is_still_being_given(language: str, started: str,
                                                               whole: str) -> None:
    verdict = judge(started, language=language)
    assert verdict.reason == "email-started" and 0.2 <= verdict.p_complete < 0.5  # the shorter backstop
    assert complete(judge(whole, language=language))


@pytest.mark.parametrize(("language", "text"), [
    ("en", "Be there at nine on the dot."),
    ("en", "The level was three dot five."),
    ("it", "Punto e basta."),
    ("it", "Il secondo punto dolente è il prezzo."),
    ("en", "You'll find it on standin dot com."),  # a website, whole
    ("en", "It's all on standin.com."),
    ("it", "Lo trova su standin punto it."),
])
def test_a_dot_that_is_no_email_is_not_one(language: str, text: str) -> None:
    assert judge(text, language=language).reason != "email-started"


def test_a_time_on_the_hour_is_no_announced_list() -> None:
    # "cinque ... punto" once read as "five points" to come: the caller waited 4 s for an answer
    assert complete(judge("Può richiamarmi alle cinque in punto.", language="it"))
    assert not complete(judge("Allora, un paio di cose.", language="it"))  # "di" joins count and noun
