"""The rules turn judge: cheap text signals for "has the caller finished?" when no judge model is set.

`RulesJudge` judges only the caller's last line of the story; earlier caller lines are read for
context (an announced list still being delivered). The first rule that fires decides; its tag is the
verdict's `reason`. In priority order:

1.  empty                  nothing was said                                            0.0
2.  question               ends in "?"                                                 COMPLETE
    trailing-<class>       ... on a word no question ends on ("Can we move it to?";    WAIT
                           a preposition may, after a question word: "Who is it for?"),
                           or on a hesitation ("Can we move it to um?")
3.  trailing-punctuation   ends in "," ";" ":" "-" or "..."                           WAIT
4.  filler                 only fillers and hesitations ("um", "well", "ehm", "beh")   WAIT
5.  trailing-filler        ends in a hesitation ("... the invoice and uh")             WAIT
    tag-question           ends in a question tag, "?" or not ("..., isn't he", "vero") COMPLETE
    email-started          ends in a name and "dot" and a name, no "at" said ("It's   WAIT, unsure
                           anna dot berg.", whisper's "anna.berg.")
    spelled-word           ends in spelled letters that spell a word said before       COMPLETE
                           ("Kowalski. K, O, W, A, L, S, K, I.")
    spelling               ... that begin such a word ("Kowalski. K, O, W")           WAIT
                           ... any others ("w h i", "b come bologna"): is the word    WAIT, unsure
                           done? the rules cannot tell
6.  trailing-<class>       ends in a word that cannot end a sentence: an article,      WAIT
                           possessive, conjunction, preposition ("the", "and", "di"), a
                           pronoun with its verb contracted ("Hi, it's.");
                           a number word in a run of numbers is a digit ("nove uno")
7.  dangling-<class>       no end punctuation and ends in a word that seldom ends one  WAIT
                           ("that", "is", "perché", "also"), unless the word before
                           makes it whole ("I think so", "ce l'ha")
8.  hold                   the last clause asks for a moment ("hold on", "let me       WAIT
                           check", "un attimo")
    preamble               the last clause announces content to come ("I wanted to     WAIT
                           leave a message", "ho una domanda"); unpunctuated, also
                           (both) its end after a filler ("thanks oh and one more thing")
    topic                  the last sentence only names a topic ("So, about the       WAIT
                           party.", "Per la festa di sabato."), unless the bot asked
                           for one ("What is it about?", "Di cosa si tratta?"); or only
                           whom a message is from ("It's from the school."), unless the
                           bot asked anything
9.  number-sequence        ends in a digit group or a run of numbers, not a time       WAIT
                           ("my number is three three nine"; "at ten" is a time); the
                           digits of a number dictated over several fragments add up
                           ending in a period with no phone number spoken of, unsure
    whole-number           ... and ten digits or more have been given: a whole phone   COMPLETE, unsure
                           number (the bot reads it back)
10. greeting               only a greeting, as the caller's first line ("hello.")     WAIT, unsure
    introduction           only who is calling, while the caller has said nothing      WAIT, unsure
                           else ("this is Anna from the bakery.", "sono Paolo", "I'm
                           the new tenant downstairs."): the reason comes next; unless
                           the bot asked who it is ("Who's calling?")
11. closing                thanks or goodbye in the last sentence (a greeting that     COMPLETE
                           opens it, "ciao, sono Paola", is no goodbye; nor is "first,
                           thanks for the flowers", see 15)
12. short-answer           the last sentence is "yes", "okay", "va bene", ...          COMPLETE
13. period-after-<class>   as 7 but with a period, unless the word before makes it a   WAIT, unsure
                           whole sentence ("it is.", "I think so.", "non so perché.")
14. announced-list         "I need three things." and fewer items given since          WAIT
    list-complete          ... and now all of them (`models.judge_lists` counts them)  COMPLETE
15. list-opener            starts with "first", "innanzitutto", ...                    WAIT
    list-item              starts with "second,", "the third thing", "secondo punto"   WAIT, unsure
16. open-request           ends in "tell him", "gli dica": what to tell is to come     WAIT
    request / urgency      "please", "tell him", "gli dica"; "urgent", "subito"        COMPLETE
                           ... with no end mark where the caller's earlier lines had   WAIT, unsure
                           marks: the transcriber heard no end ("unpunctuated")
    reply                  a short answer to the bot's question ("no it's fine", "sì    COMPLETE
                           molto"), punctuated or not
17. exclamation            ends in "!"                                                 COMPLETE
18. question-words         no end punctuation, starts like a question ("is he there")  COMPLETE, unsure
    unpunctuated-answer    ... right after the bot's question: most likely the answer  COMPLETE, unsure
    unpunctuated           no end punctuation otherwise (speech cut mid-phrase?)       WAIT, unsure
19. statement              anything else: a period is not proof of an end              COMPLETE, ~0.7

Words and phrases live in one `Lexicon` per language (`LEXICONS`, keyed by ISO 639-1 code), in
`models.judge_lexicons`; an unknown language uses the English one (the punctuation rules 2, 3, 17, 18
and 19 need no words at all). A pure function of its input: no I/O, no clock, no state between calls.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from models.engines import Line, Verdict
from models.judge_lexicons import ENGLISH, LEXICONS, Lexicon
from models.judge_lists import list_state
from models.judge_spelling import email_started, ends_in_postcode, ends_in_spelling, spells
from models.judge_text import (
    CLAUSE_END,
    SENTENCE_END,
    VERB_CONTRACTION,
    covered,
    end_mark,
    has_phrase,
    normalise,
    tidy,
)

__all__ = ["LEXICONS", "Lexicon", "RulesJudge", "caller_closed"]

# --------------------------------------------------------------------------- p_complete per rule

# Below 0.2: a confident WAIT; 0.2-0.5: an unsure WAIT (the silence clock will decide); above 0.5:
# COMPLETE. Every rule has its own value so traces can be compared across thresholds.
P_EMPTY = 0.0
P_QUESTION = 0.95
P_CLOSING = 0.93
P_REQUEST = 0.88
P_URGENCY = 0.87
P_SHORT_ANSWER = 0.85
P_EXCLAMATION = 0.82
P_LIST_COMPLETE = 0.8
P_STATEMENT = 0.7
P_REPLY = 0.7
P_TAG_QUESTION = 0.8
P_QUESTION_WORDS = 0.6
P_UNPUNCTUATED = 0.4
P_UNPUNCTUATED_ANSWER = 0.55
P_LIST_ITEM = 0.4  # "second, ...": a list goes on, but this may be its last item
P_GREETING = 0.35
P_INTRODUCTION = 0.3
P_PERIOD_AFTER = 0.3
P_QUESTION_CUT = 0.3  # a question mark after a word no question ends on: whisper's, or a word lost
P_SPELLING = 0.3  # letters spelled so far: perhaps the whole word, perhaps not
P_SPELLED_WORD = 0.85  # the letters spell a word the caller (or the bot) said before them
P_POSTCODE = 0.85  # "..., Bristol, B S six, four Q T.": a whole postcode ends an address
P_SPELLING_PART = 0.15  # ... only the start of one
P_LIST_OPENER = 0.18
P_DANGLING = 0.15
P_OPEN_REQUEST = 0.15
P_LIST_PENDING = 0.12
P_LONG_NUMBER = 0.35  # nine digits: perhaps a whole phone number, perhaps not
P_WHOLE_NUMBER = 0.6  # ten or more: a whole phone number in Italy, the UK (most) and North America
P_NUMBER = 0.1
P_CODE = 0.3  # "... four oh seven." with no number asked or spoken of: a code may be whole
P_FILLER = 0.1
P_TRAILING_FILLER = 0.09
P_TRAILING_PUNCTUATION = 0.08
P_TRAILING_WORD = 0.05
P_PREAMBLE = 0.05
P_TOPIC = 0.15  # "about the party on Saturday.": what about it is still to come
P_EMAIL_STARTED = 0.3  # "It's anna dot berg.": the "at" is surely coming, unless the caller gave up

# hesitations that also tag a question: a question may end on them ("Torna domani, eh?")
_TAG_SOUNDS = frozenset({"eh", "ah", "oh", "hm", "hmm", "mm", "mmm"})


def _tokens(text: str, lex: Lexicon) -> list[str]:
    return lex.tokenize(text)


def _language(code: str) -> Lexicon:
    return LEXICONS.get(re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0], ENGLISH)


# --------------------------------------------------------------------------- rules needing context


def _context(story: Sequence[Line], last: int) -> list[str]:
    """Earlier caller lines that may still shape the last one (an announced list), oldest first. Bot
    lines are skipped ("go ahead" does not end a list); the look-back stops at a caller question or
    after eight lines."""
    texts: list[str] = []
    for line in reversed(story[:last]):
        text = normalise(line.text) if line.role == "caller" else ""
        if not text:
            continue
        if end_mark(text) == "?" or len(texts) == 8:
            break
        texts.append(text)
    texts.reverse()
    return texts


def _number_run(tokens: Sequence[str], lex: Lexicon) -> tuple[int, int]:
    """(numbers, digits) in the run of number tokens that ends `tokens`; (0, 0) if none or a time."""
    i = len(tokens)
    while i > 0 and (lex.number_re.fullmatch(tokens[i - 1])
                     or (tokens[i - 1] in ("oh", "o") and i < len(tokens))):
        i -= 1
    run = tokens[i:]
    digits = sum(len(t) if t.isdigit() else 1 for t in run)
    if not run or (i > 0 and tokens[i - 1] in lex.time_words and digits <= 4):
        return 0, 0
    return len(run), digits


# --------------------------------------------------------------------------- the judge


class RulesJudge:
    """A `TurnJudge` from cheap text signals; see the module docstring for the rules."""

    def judge(self, story: Sequence[Line], *, language: str) -> Verdict:
        last = next((i for i in range(len(story) - 1, -1, -1) if story[i].role == "caller"), None)
        if last is None:
            return Verdict(P_EMPTY, "empty")
        lex = _language(language)
        text = normalise(story[last].text)
        tokens = _tokens(text, lex)
        if not tokens:
            return Verdict(P_EMPTY, "empty")
        context = _context(story, last)
        first = not any(line.role == "caller" and line.text.strip() for line in story[:last])
        since_bot = _since_bot(story, last)
        bot = next((normalise(line.text) for line in reversed(story[:last]) if line.role == "bot"), "")
        bot_words = _tokens(bot, lex)
        # the bot's line right before this one asked something
        asked = not since_bot and last > 0 and story[last - 1].role == "bot" and end_mark(bot) == "?"
        if (_opening(story, last, lex) and _introduces(story[last].text, lex)
                and not (asked and any(t in lex.name_asks for t in bot_words))):  # "Who's calling?"
            return Verdict(P_INTRODUCTION, "introduction")
        carried = _carried_digits(since_bot, lex)
        about = asked and any(has_phrase(p, f" {' '.join(bot_words)} ") for p in lex.topic_questions)
        pieces = asked and any(t in lex.piecewise for t in bot_words)
        turn = _tokens(" ".join([*since_bot, text]), lex)
        phone = any(t in lex.number_asks for t in bot_words) or any(t in lex.number_contexts for t in turn)
        address = any(t in lex.address_words for t in (*bot_words, *turn))
        return _judge_line(text, tokens, lex, context, first=first, carried_digits=carried, asked=asked,
                           asked_topic=about, number_talk=phone, pieces=pieces, bot_words=bot_words,
                           address=address)


def caller_closed(story: Sequence[Line], language: str) -> bool:
    """The caller's last line closes the call: its last sentence thanks or says goodbye ("No, that's all,
    thanks.", "Va bene, arrivederci."), or it says no to the bot's question right before it ("Anything
    else?" "No.")."""
    last = next((i for i in range(len(story) - 1, -1, -1) if story[i].role == "caller"), None)
    if last is None:
        return False
    lex = _language(language)
    text = normalise(story[last].text)
    sentence = _tokens(SENTENCE_END.split(text)[-1], lex)
    if sentence and _closes(_strip_greeting(sentence, lex), lex):
        return True
    asked = last > 0 and story[last - 1].role == "bot" and end_mark(normalise(story[last - 1].text)) == "?"
    words = _tokens(text, lex)
    return asked and bool(words) and words[0] in ("no", "nope", "nah") and len(words) <= 4


def _judge_line(text: str, tokens: list[str], lex: Lexicon, context: list[str], *, first: bool,
                carried_digits: int = 0, asked: bool = False, asked_topic: bool = False,
                number_talk: bool = False, pieces: bool = False, bot_words: Sequence[str] = (),
                address: bool = False) -> Verdict:
    mark = end_mark(text)
    if mark == "?":
        return _question(text, context, lex)
    if mark == ",":
        return Verdict(P_TRAILING_PUNCTUATION, "trailing-punctuation")
    if all(t in lex.fillers for t in tokens):
        return Verdict(P_FILLER, "filler")
    word = tokens[-1]
    tail = _tokens(SENTENCE_END.split(text)[-1], lex)
    if word in lex.hesitations or (  # whisper writes a trailing "so," / "allora," as a sentence: "... So."
            0 < len(tail) < len(tokens) and all(t in lex.fillers or t in lex.hesitations for t in tail)):
        return Verdict(P_TRAILING_FILLER, "trailing-filler")
    if _ends_with(tokens, lex.tag_questions, more=2):
        return Verdict(P_TAG_QUESTION, "tag-question")
    if (spelled := _spelled(tokens, context, bot_words, lex, address=address)) is not None:
        return spelled
    last_sentence = SENTENCE_END.split(text)[-1]
    sentence = _tokens(last_sentence, lex) or tokens
    if email_started(last_sentence, sentence, lex):
        return Verdict(P_EMAIL_STARTED, "email-started")
    digit = len(tokens) > 1 and bool(lex.number_re.fullmatch(word) and lex.number_re.fullmatch(tokens[-2]))
    if word in lex.trailing and not digit:
        return Verdict(P_TRAILING_WORD, f"trailing-{lex.trailing[word]}")
    if word in lex.dangling and not mark and not digit and not _resolved(sentence, lex, strict=True):
        return Verdict(P_DANGLING, f"dangling-{lex.dangling[word]}")

    core = _strip_lead(sentence, lex)
    if _filler_clause_after_content(last_sentence, lex):
        return Verdict(P_TRAILING_FILLER, "trailing-filler")
    if _preamble(last_sentence, lex, mark, lex.hold_re):
        return Verdict(P_PREAMBLE, "hold")
    if _preamble(last_sentence, lex, mark, lex.preamble_re):
        return Verdict(P_PREAMBLE, "preamble")
    if mark != "!" and ((not asked_topic and _topic(last_sentence, lex, lex.topic_re))
                        or (not asked and _topic(last_sentence, lex, lex.source_re))):
        return Verdict(P_TOPIC, "topic")

    numbers, digits = _number_run(sentence, lex)
    if numbers and numbers == len(sentence) and carried_digits:  # a number dictated in groups
        numbers, digits = numbers + 1, digits + carried_digits
    if numbers and (numbers > 1 or digits >= 5 or any(t in lex.number_contexts for t in sentence)):
        if digits >= 10:
            return Verdict(P_WHOLE_NUMBER, "whole-number")
        if digits == 9:
            return Verdict(P_LONG_NUMBER, "number-sequence")
        # a run of digits that ends in a period, with no phone number in the talk, may be a whole code
        return Verdict(P_NUMBER if mark != "." or number_talk else P_CODE, "number-sequence")

    joined = f" {' '.join(sentence)} "
    if first and covered(tokens, lex.greeting_cover, lex.fillers):
        return Verdict(P_GREETING, "greeting")
    first_sentence = SENTENCE_END.split(text)[0]
    opener = " ".join(_strip_lead(_tokens(first_sentence, lex), lex))
    opens_list = bool(lex.list_opener_re.fullmatch(opener)) and not any(
        lex.ordinals.get(t, 0) > 1 for t in tokens)
    if _closes(_strip_greeting(sentence, lex), lex) and not opens_list:  # not "first, thanks for..."
        return Verdict(P_CLOSING, "closing")
    if covered(sentence, lex.short_answer_cover, lex.fillers) and sentence[-1] not in lex.fillers:
        return Verdict(P_SHORT_ANSWER, "short-answer")
    if word in lex.dangling and not _resolved(sentence, lex):
        return Verdict(P_PERIOD_AFTER, f"period-after-{lex.dangling[word]}")

    state = list_state([*context, text], lex)
    if state is not None:
        if state.given < state.announced:
            return Verdict(P_LIST_PENDING, "announced-list")
        if context:  # announced earlier, and this line completes it
            return Verdict(P_LIST_COMPLETE, "list-complete")
    if opens_list:
        return Verdict(P_LIST_OPENER, "list-opener")
    first_clause = _strip_lead(_tokens(CLAUSE_END.split(first_sentence)[0], lex), lex)
    if lex.list_item_re.fullmatch(" ".join(first_clause)):
        return Verdict(P_LIST_ITEM, "list-item")

    start = f" {' '.join(core[:3])} "
    if _ends_with(sentence, lex.open_requests):
        return Verdict(P_OPEN_REQUEST, "open-request")
    request = _request(joined, start, mark, context, lex)
    if request is not None:
        return request
    if asked and len(tokens) <= 4 and (tokens[0] in lex.short_answer_words
                                       or tokens[-1] in lex.short_answer_words):
        return Verdict(P_REPLY, "reply")
    if mark == "!":
        return Verdict(P_EXCLAMATION, "exclamation")
    if not mark:
        if any(start.startswith(f" {p} ") for p in lex.question_starts):
            return Verdict(P_QUESTION_WORDS, "question-words")
        if asked and not pieces and not lex.number_re.fullmatch(word):
            # words with no mark right after the bot's question: most likely the answer, unless it asked
            # for something given in pieces (a number, an address) or a number was being given
            return Verdict(P_UNPUNCTUATED_ANSWER, "unpunctuated-answer")
        return Verdict(P_UNPUNCTUATED, "unpunctuated")
    return Verdict(P_STATEMENT, "statement")


def _request(joined: str, start: str, mark: str, context: Sequence[str], lex: Lexicon) -> Verdict | None:
    """A request ("please", "tell him") or urgency in the sentence `joined`, which starts with `start`;
    unsure when the transcriber marked this caller's earlier lines and left this one open ("Tell him
    the car is ready" and more to come)."""
    if any(has_phrase(p, joined) for p in lex.requests) or any(
            start.startswith(f" {p} ") for p in lex.request_starts):
        verdict = Verdict(P_REQUEST, "request")
    elif any(has_phrase(p, joined) for p in lex.urgency):
        verdict = Verdict(P_URGENCY, "urgency")
    else:
        return None
    if not mark and any(CLAUSE_END.search(t) or end_mark(t) for t in context):
        return Verdict(P_UNPUNCTUATED, "unpunctuated")
    return verdict


def _introduces(line: str, lex: Lexicon) -> bool:
    """The line only says who is calling, greetings aside ("Hi, this is Anna from the bakery.", "Hello.
    It's Tom. I'm the plumber."); "Could he call me back? It's Paul." has said why it calls."""
    text = tidy(line)
    *before, last = SENTENCE_END.split(text)
    greets = lex.greeting_cover
    return all(covered(_tokens(normalise(s), lex), greets, lex.fillers) or _introduces_one(s, lex)
               for s in before) and _introduces_one(last, lex)


def _introduces_one(sentence: str, lex: Lexicon) -> bool:
    rest = sentence.rstrip(".!")
    while True:
        words = lex.tokenize(rest.lower())
        lead = next((g for g in lex.greetings if words[:len(g.split())] == g.split()), None)
        if lead is None:
            break
        rest = re.sub(r"^\W*" + r"\W+".join(map(re.escape, lead.split())) + r"[\s,.!]*", "", rest,
                      flags=re.IGNORECASE)
    return bool(lex.introduction_re.fullmatch(rest))


def _closes(tokens: Sequence[str], lex: Lexicon) -> bool:
    """The sentence thanks or says goodbye. "That's all", "è tutto" close only what comes before them:
    followed by more than thanks and goodbyes ("è tutto confermato") they are no closing."""
    joined = f" {' '.join(tokens)} "
    for phrase in lex.closings:
        if not has_phrase(phrase, joined):
            continue
        if phrase not in lex.closing_ends:
            return True
        words = phrase.split()
        n = len(words)
        if any(list(tokens[i:i + n]) == words
               and all(t in lex.closing_words or t in lex.fillers for t in tokens[i + n:])
               for i in range(len(tokens) - n + 1)):
            return True
    return False


def _opening(story: Sequence[Line], last: int, lex: Lexicon) -> bool:
    """Every caller line before `last` only greeted or said who is calling ("Good afternoon, my name is
    David Cho," then "I'm the new tenant downstairs."): why they call is still to come."""
    for line in story[:last]:
        if line.role != "caller" or not line.text.strip():
            continue
        if not (_introduces(line.text.rstrip(" ,;:-"), lex)
                or covered(_tokens(normalise(line.text), lex), lex.greeting_cover, lex.fillers)):
            return False
    return True


def _ends_with(tokens: Sequence[str], phrases: Sequence[list[str]], *, more: int = 0) -> bool:
    """Whether `tokens` end in one of `phrases` with at least `more` words before it."""
    return any(len(tokens) >= len(words) + more and list(tokens[-len(words):]) == words for words in phrases)


def _spelled(tokens: Sequence[str], context: Sequence[str], bot_words: Sequence[str], lex: Lexicon, *,
             address: bool) -> Verdict | None:
    """A line ending in spelled letters: done when, with the letters of the caller's lines before it,
    they spell a word said before them or in the bot's last line, or a whole postcode while an address
    is given; still going when they spell only the start of a word (`models.judge_spelling`)."""
    if address and ends_in_postcode(tokens, lex):
        return Verdict(P_POSTCODE, "postcode")
    if not ends_in_spelling(tokens, lex):
        return None
    said = [t for line in context for t in _tokens(line, lex)] + list(tokens)
    found = spells(said, bot_words, lex)
    if found == "word":
        return Verdict(P_SPELLED_WORD, "spelled-word")
    return Verdict(P_SPELLING_PART if found == "part" else P_SPELLING, "spelling")


def _preamble(sentence: str, lex: Lexicon, mark: str, pattern: re.Pattern[str]) -> bool:
    """The last clause of `sentence` announces content to come (`pattern`: the preambles, or the asks
    for a moment). Without punctuation there are no clauses to split on: then a preamble may also end
    the line after a filler or a thank-you."""
    clause = _strip_lead(_tokens(CLAUSE_END.split(sentence.rstrip(".!"))[-1], lex), lex)
    if pattern.fullmatch(" ".join(clause)):
        return True
    if mark or CLAUSE_END.search(sentence):
        return False
    tokens = _tokens(sentence, lex)
    return any(pattern.fullmatch(" ".join(tokens[i:])) for i in range(1, len(tokens))
               if tokens[i - 1] in lex.lead_words or tokens[i - 1] in lex.closings)


def _topic(sentence: str, lex: Lexicon, pattern: re.Pattern[str]) -> bool:
    """`sentence` only names what the caller is about to speak of ("So, about the party on Saturday.",
    "Allora, per la festa di sabato.") or, with `lex.source_re`, whom the message is from ("It's from the
    school."): a lead word aside, one clause matching `pattern` and no more."""
    clauses = [_strip_lead(_tokens(c, lex), lex) for c in CLAUSE_END.split(sentence.rstrip(".!"))]
    said: list[list[str]] = []
    for clause in (c for c in clauses if c):
        if said and said[-1][-1] in lex.trailing:
            said[-1] = said[-1] + clause  # "about the, the roof": one clause, stammered
        elif said and clause[:len(said[-1])] == said[-1]:
            said[-1] = clause  # "it's, uh, it's about the roof": started again
        else:
            said.append(clause)
    if len(said) != 1:
        return False
    clause = [t for i, t in enumerate(said[0]) if i == 0 or t != said[0][i - 1]]  # "the, the roof"
    subject = next((s for s in lex.topic_subjects if clause[:len(s)] == s and len(clause) > len(s)), [])
    clause = clause[len(subject):]  # "it's about the roof", "è per il tetto"
    if any(lex.dangling.get(t) == "auxiliary" or VERB_CONTRACTION.search(t) for t in clause):
        return False  # "about the party, we need...", "per la festa è tardi": the rest is said
    return bool(pattern.fullmatch(" ".join(clause)))


def _strip_greeting(tokens: list[str], lex: Lexicon) -> list[str]:
    """`tokens` without the greetings they start with ("ciao, sono Paola": a hello, not a goodbye),
    unless nothing else is left ("ciao ciao")."""
    i = 0
    while i < len(tokens):
        match = next((g for g in lex.greeting_cover if tokens[i:i + len(g)] == g), None)
        if match is None:
            break
        i += len(match)
    return tokens[i:] if i < len(tokens) else tokens


def _since_bot(story: Sequence[Line], last: int) -> list[str]:
    """The caller's fragments between the bot's last line and the caller's last line, oldest first."""
    texts: list[str] = []
    for line in reversed(story[:last]):
        if line.role != "caller":
            break
        if line.text.strip():
            texts.append(normalise(line.text))
    texts.reverse()
    return texts


def _carried_digits(previous: Sequence[str], lex: Lexicon) -> int:
    """Digits of a number dictated across `previous` fragments: the run that ends the last of them,
    and the runs before it while whole fragments are nothing but numbers."""
    digits = 0
    for text in reversed(previous):
        tokens = _tokens(SENTENCE_END.split(text)[-1], lex)
        numbers, run = _number_run(tokens, lex)
        digits += run
        if not numbers or numbers < len(tokens):
            break
    return digits


def _filler_clause_after_content(sentence: str, lex: Lexicon) -> bool:
    """The sentence's last clause is only a filler, after one that said something ("Chiamo per la
    pratica numero, allora.", whisper's period on "..., allora,"); not after an answer or a thanks
    alone ("Va bene, allora.", "Okay, so.")."""
    clauses = [_tokens(c, lex) for c in CLAUSE_END.split(sentence.rstrip(".!")) if c.strip()]
    if len(clauses) < 2 or not all(t in lex.fillers for t in clauses[-1]):
        return False
    said = [t for c in clauses[:-1] for t in c]
    return not covered(said, lex.short_answer_cover, lex.lead_words | lex.closing_words)


def _question(text: str, context: list[str], lex: Lexicon) -> Verdict:
    cut = _question_cut_short(_tokens(SENTENCE_END.split(text.rstrip("?"))[-1], lex), lex)
    if cut:
        return Verdict(P_QUESTION_CUT, f"trailing-{cut}")  # whisper's "Can we move the meeting to?"
    state = list_state([*context, text], lex)
    if state is not None and context and state.given < state.announced:
        return Verdict(P_LIST_PENDING, "announced-list")  # "two questions": this was the first
    return Verdict(P_QUESTION, "question")


def _question_cut_short(sentence: Sequence[str], lex: Lexicon) -> str:
    """The class of the word a question stops on when no question can end there ("Can we move the
    meeting to?", "Is it for the?"), else "". A preposition may end one after a question word or a
    relative in a language that strands it ("Who am I speaking to?", "the one you asked about?")."""
    if not sentence or sentence[-1] in lex.question_tails:  # "Is he coming, or?"
        return ""
    word = sentence[-1]
    if word in lex.hesitations and word not in _TAG_SOUNDS and len(sentence) > 1:
        return "filler"  # whisper's "Can we move the meeting to um?": the caller is still thinking
    cls = lex.trailing.get(word) or ("preposition" if lex.dangling.get(word) == "preposition" else "")
    if cls == "preposition" and lex.strands_prepositions and any(t in lex.wh_words for t in sentence[:-1]):
        return ""
    return cls


def _strip_lead(tokens: list[str], lex: Lexicon) -> list[str]:
    """`tokens` without the fillers, short answers and joiners they start with."""
    i = 0
    while i < len(tokens) and tokens[i] in lex.lead_words:
        i += 1
    return tokens[i:]


def _resolved(sentence: Sequence[str], lex: Lexicon, *, strict: bool = False) -> bool:
    """Whether the last sentence still ends whole on its dangling last word: "it is.", "I think so.",
    "non so perché.", "that's what it's about.", "how much the deposit is.". `strict` (no period to
    go by): only a conjunction or an auxiliary can be made whole, by the word before or a question word
    ("I think so", "ce l'ha", "quando vuole")."""
    cls = lex.dangling[sentence[-1]]
    if strict and cls not in ("conjunction", "auxiliary"):  # "tell him I", "let him know that"
        return False
    if len(sentence) > 1 and sentence[-2] in lex.resolvers:
        return True
    if not strict and cls in ("adverb", "determiner", "pronoun", "particle"):  # "so did I.", "come through."
        return True
    return cls in ("preposition", "auxiliary") and any(t in lex.wh_words for t in sentence[:-1])
