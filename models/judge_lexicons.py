"""The rules judge's word tables: one `Lexicon` per language, compiled once at import.

`Lexicon` turns a language's word and phrase tables (space- or "|"-separated strings, regular
expressions for whole clauses) into the sets, covers and compiled patterns `models.judge_rules` reads.
`ENGLISH` and `ITALIAN` are the two languages so far; `LEXICONS` maps their ISO 639-1 codes to them.
Adding a language means adding a `Lexicon` here and an entry in `LEXICONS`; the rules need no change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["ENGLISH", "ITALIAN", "LEXICONS", "Lexicon"]

# A name in a caller's own text: a capitalised word (or two or three), for `introductions`.
_NAME = (r"(?:(?i:(?:il |la |lo )?(?:dr|mr|mrs|ms|prof|sig|sig\.ra|dott|dott\.ssa|avv|ing|doctor|dottor"
         r"|dottoressa|signor|signora|avvocato|ingegner|professor|professoressa))\.? )?"
         r"[A-ZÀ-ÖØ-Þ][\w'-]*(?: [A-ZÀ-ÖØ-Þ][\w'-]*){0,2}")  # a title may come first

_TAIL = r"(?: \S+){0,4}"  # a few more words allowed after a preamble ("... for Marco")
# who a caller may say they are, instead of a name ("I'm the new tenant downstairs", "sono l'idraulico")
_ROLES_EN = ("tenant|neighbou?r|landlord|landlady|plumber|electrician|builder|mechanic|technician|engineer"
             "|courier|driver|delivery (?:guy|man|driver)|postman|doctor|nurse|dentist|vet|teacher|coach"
             "|colleague|friend|cousin|brother|sister|mother|mum|mom|father|dad|son|daughter|wife|husband"
             "|partner|aunt|uncle|accountant|lawyer|solicitor|agent|assistant|secretary|receptionist"
             "|owner|manager|client|customer|patient|babysitter|nanny|cleaner|gardener|caretaker|painter")
_ROLES_IT = ("inquilino|inquilina|vicino|vicina|vicini|proprietario|proprietaria|padrone di casa|idraulico"
             "|elettricista|muratore|meccanico|tecnico|ingegnere|corriere|postino|medico|dottore|dottoressa"
             "|infermiere|infermiera|dentista|veterinario|insegnante|maestro|maestra|allenatore|collega"
             "|amico|amica|cugino|cugina|fratello|sorella|madre|mamma|padre|papà|figlio|figlia|moglie"
             "|marito|compagno|compagna|zio|zia|commercialista|avvocato|avvocata|agente|assistente"
             "|segretario|segretaria|amministratore|amministratrice|responsabile|cliente|paziente"
             "|babysitter|tata|colf|giardiniere|portiere|portinaio|imbianchino")


# A word: digits, or letters with inner apostrophes or hyphens ("that's", "bye-bye") and perhaps one
# at the end ("po'"). Where elision is split, "dell'ordine" is two words: "dell'" and "ordine".
_TOKEN = re.compile(r"\d+|[^\W\d_]+(?:['-][^\W\d_]+)*'?")
_ELIDED_TOKEN = re.compile(r"\d+|[^\W\d_]+'|[^\W\d_]+(?:-[^\W\d_]+)*")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _cover(phrases: Iterable[str]) -> list[list[str]]:
    """Phrases as word lists, longest first, for `judge_text.covered`."""
    return sorted((p.split() for p in phrases), key=len, reverse=True)


def _phrases(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split("|") if p.strip())


class Lexicon:
    """The word tables of one language, compiled once. Word tables are space-separated, phrase tables
    "|"-separated (phrases go through the same tokenizer as caller text). `preambles`, `holds` and
    `list_openers` are regular expressions matched against a whole clause: lower-case words joined by
    single spaces, without punctuation, elided words split where the language does ("c' è")."""

    def __init__(
        self,
        *,
        trailing: Mapping[str, str],  # class name -> words after which a sentence cannot end
        dangling: Mapping[str, str],  # class name -> words that seldom end a sentence
        resolvers: str,  # a dangling word right after one of these is a whole sentence
        wh_words: str,  # a sentence with one of these may end in a preposition or auxiliary
        strands_prepositions: bool = False,  # a question may end in a preposition ("Who is it for?")
        question_tails: str = "",  # trailing words a question may still end on ("..., or?")
        hesitations: str,
        fillers: str,  # discourse fillers: whole-line fillers, stripped at the start of a clause
        preambles: Iterable[str],
        holds: Iterable[str] = (),  # the caller asks for a moment ("hold on", "let me check", "un attimo")
        numbers: str,  # regex matching one number word
        number_contexts: str,
        time_words: str,  # a number right after one of these is a time, not a digit group
        closings: str,
        short_answers: str,
        requests: str,
        request_starts: str,
        question_starts: str,  # an unpunctuated line starting so is probably a question
        urgency: str,
        greetings: str,
        list_counts: Mapping[str, int],
        list_nouns: str,
        list_joiners: str,
        list_glue: str,  # words that carry no item ("the first ONE is")
        ordinals: Mapping[str, int],
        list_enders: str,
        list_openers: Iterable[str],  # a first sentence that starts a list ("first, ...")
        list_items: Iterable[str],  # a first clause that goes on with one ("second, ...")
        accent_fixes: Mapping[str, str] | None = None,  # "e'" -> "è"
        split_elision: bool = False,  # "l'ordine" is two words
        introductions: Iterable[str] = (),  # a whole first sentence that only says who is calling
        tag_questions: str = "",  # a line ending so asks, question mark or not ("..., isn't he")
        open_requests: str = "",  # a line ending so has its request still to come ("oh, and tell him")
        one_letter_words: str = "",  # single letters that are words, not spelling ("a", "i")
        spelling: str = r"(?!)",  # regex: a spelling alphabet in use ("b come bologna")
        letter_doubles: str = "",  # a word that doubles the letter spelled after it ("double l")
        topics: Iterable[str] = (),  # a whole clause that only names what is to be said ("about the party")
        topic_subjects: str = "",  # may open a topic clause ("it's about the roof")
        sources: Iterable[str] = (),  # a whole clause that only says whom a message is from ("from the bank")
        topic_questions: str = "",  # a bot question with one of these asks for a topic ("what is it about?")
        number_asks: str = "",  # a bot line with one of these asks for digits ("what number ...?")
        name_asks: str = "",  # a bot question with one of these asks who is calling ("your name?")
        closing_ends: str = "",  # closings only at a sentence's end ("è tutto", not "è tutto confermato")
        piecewise: str = "",  # a bot question with one of these asks for what comes in pieces (an address)
        email_words: tuple[str, str] = ("", ""),  # an email address's "dot" and "at", said as words
        partitives: str = "",  # prepositions that join a count to its noun ("a couple of things")
        # a regex for a whole postcode, letters upper-case and digits run together ("BS64QT" for "B S six,
        # four Q T"), and the words that say an address is being given; digit_words: "oh" is 0
        postcode: tuple[str, str] = (r"(?!)", ""),
        digit_words: Mapping[str, str] | None = None,
    ) -> None:
        self.accent_fixes, self.digit_words = dict(accent_fixes or {}), dict(digit_words or {})
        self.postcode_re, self.address_words, self._token_re = (
            re.compile(postcode[0]), _words(postcode[1]), _ELIDED_TOKEN if split_elision else _TOKEN)
        self.trailing = {w: cls for cls, ws in trailing.items() for w in ws.split()}
        self.dangling = {w: cls for cls, ws in dangling.items() for w in ws.split()}
        self.resolvers = _words(resolvers)
        self.wh_words = _words(wh_words)
        self.strands_prepositions = strands_prepositions
        self.question_tails = _words(question_tails)
        self.hesitations = _words(hesitations)
        self.fillers = _words(fillers) | self.hesitations
        self.preamble_re = re.compile("|".join(f"(?:{p})" for p in preambles))
        self.hold_re = re.compile("|".join(f"(?:{p})" for p in holds) or r"(?!)")
        self.number_re = re.compile(rf"\d+|{numbers}")
        self.number_contexts = _words(number_contexts)
        self.time_words = _words(time_words)
        self.closings = self._phrase_table(closings)
        self.closing_ends = frozenset(self._phrase_table(closing_ends))
        self.closing_words = frozenset(p for p in self.closings if " " not in p)
        self.piecewise = _words(piecewise) | _words(number_asks)
        self.short_answers = self._phrase_table(short_answers)
        self.requests = self._phrase_table(requests)
        self.request_starts = self._phrase_table(request_starts)
        self.question_starts = self._phrase_table(question_starts)
        self.urgency = self._phrase_table(urgency)
        self.greetings = self._phrase_table(greetings)
        self.list_counts = dict(list_counts)
        counts = "|".join(re.escape(c) for c in sorted(list_counts, key=len, reverse=True))
        nouns = "|".join(_words(list_nouns))
        self.announce_re = re.compile(
            rf"(?<![\w'])(?P<count>{counts}) (?:[^\W\d_]+ ){{0,2}}?(?:{nouns})(?![\w'])")
        self.list_split_re = re.compile(rf"[,;:.!?]|(?<![\w'])(?:{'|'.join(_words(list_joiners))})(?![\w'])")
        self.list_glue = _words(list_glue)
        self.ordinals = dict(ordinals)
        self.list_enders = self._phrase_table(list_enders)
        self.list_opener_re = re.compile("|".join(f"(?:{p})" for p in list_openers))
        self.list_item_re = re.compile("|".join(f"(?:{p})" for p in list_items))
        # Matched against the caller's own text: a name is a capitalised word (or two) in a transcript.
        self.introduction_re = re.compile(
            "|".join(f"(?:{p})".replace("{NAME}", _NAME) for p in introductions) or r"(?!)")
        self.tag_questions = _cover(self._phrase_table(tag_questions))
        self.open_requests = _cover(self._phrase_table(open_requests))
        self.one_letter_words = _words(one_letter_words)
        self.spelling_re = re.compile(spelling)
        self.letter_doubles = _words(letter_doubles)
        self.topic_re, self.source_re = (re.compile("|".join(f"(?:{p})" for p in ps) or r"(?!)")
                                         for ps in (topics, sources))
        self.topic_questions = self._phrase_table(topic_questions)
        self.topic_subjects = _cover(self._phrase_table(topic_subjects))
        self.number_asks, self.name_asks, self.email_dots, self.email_ats, self.partitives = (
            _words(w) for w in (number_asks, name_asks, *email_words, partitives))
        self.short_answer_cover = _cover(self.short_answers)
        self.short_answer_words = frozenset(p for p in self.short_answers if " " not in p)
        self.greeting_cover = _cover(self.greetings)
        # words stripped from the start of a clause before matching it ("okay, so, hold on")
        self.lead_words = (self.fillers | _words(list_joiners)
                           | {p for p in (*self.short_answers, *self.greetings) if " " not in p})
        self.no_content = (self.fillers | self.list_glue | set(self.trailing) | set(self.dangling)
                           | set(self.ordinals) | _words(" ".join(self.list_enders)))

    def tokenize(self, text: str) -> list[str]:
        """The words of normalised `text`, accents fixed."""
        fixes = self.accent_fixes
        return [fixes.get(t, t) for t in self._token_re.findall(text)]

    def _phrase_table(self, text: str) -> tuple[str, ...]:
        return tuple(" ".join(self.tokenize(p)) for p in _phrases(text))


ENGLISH = Lexicon(
    trailing={
        "article": "the a an",
        "possessive": "my your our their its",
        "conjunction": "and but or nor because cause cos although unless whereas than if whether since plus",
        "preposition": "of at into onto between among towards toward until till via per regarding"
                       " concerning including except versus",
        "relative": "whose",
        "determiner": "every each",
        # a pronoun with its verb contracted never ends a sentence ("Hi, it's." is someone about to say
        # who it is); "it is." and "I am." can, and stay with the dangling words below
        "contraction": "it's that's there's here's he's she's what's who's where's i'm you're we're they're"
                       " i've you've we've they've i'll you'll he'll she'll we'll they'll it'll that'll"
                       " i'd you'd he'd she'd we'd they'd",
    },
    dangling={
        "relative": "that which who whom where when",
        "conjunction": "so as",
        "preposition": "to for with from about like without",
        "particle": "through",  # "it hasn't come through.": with a period, mostly a verb's particle
        "auxiliary": "is are was were am be been being will would can could should shall may might"
                     " must do does did have has had",
        "possessive": "his",
        "determiner": "this these those some any another",
        "adverb": "also then too",
        "pronoun": "i we he she they",
    },
    resolvers="i you he she it we they there this that what who where when why how which it's that's"
              " me him her them us think hope guess believe suppose say said told know knew sure want"
              " wanted like love need needed have has had going ought used able try trying supposed got"
              " not yes no",
    wh_words="what who whom which where that how when why whether",
    strands_prepositions=True,
    question_tails="or",
    hesitations="um umm uh uhh uhm er erm ah ahh hmm hm mm mmm eh",
    fillers="oh well so like anyway actually basically listen look",
    holds=(
        rf"(?:let me|lemme|let's) (?:just )?(?:see|think|check|look|find|get|grab|pull up){_TAIL}",
        r"(?:hold|hang) on(?: (?:a|one|just a) (?:second|sec|moment|minute|min|tick))?(?: please)?",
        r"(?:just |wait |give me |gimme )?(?:a|one|1) (?:second|sec|moment|minute|min|mo|tick)(?: please)?",
        r"wait(?: a (?:second|sec|moment|minute))?(?: please)?|bear with me",
    ),
    preambles=(
        r"(?:(?:i|we) (?:just )?(?:wanted|want|wanna|would like|need|needed|was hoping|were hoping)"
        r"|(?:i'd|we'd) (?:just )?like|can i|could i|may i) to leave (?:him |her |you |them )?(?:a )?"
        rf"(?:quick |short |little )?message{_TAIL}",
        rf"(?:i'm|i am|we're|we are|i was|this is) (?:just )?(?:calling|ringing|phoning)"
        rf"(?: (?:about|regarding|concerning|from|for|on behalf of|in regards? to|with regard to){_TAIL})?",
        r"(?:so )?(?:the|my|our) (?:reason|thing|point|problem|issue|question|deal|story|situation)"
        r" (?:is|was)(?: that)?",
        r"the reason (?:why )?(?:i'm|i am|we're|we are) calling(?: is)?",
        r"here's the (?:thing|deal|situation|story|problem)",
        r"(?:i have|i've got|i got|there's|there is|i've) (?:a|one|another) (?:quick |small |little |short "
        r"|more |last |other )?"
        r"(?:question|message|request|problem|issue|thing)(?: for (?:you|him|her|\S+))?"
        r"(?: (?:from|about) (?:\S+ ){0,3}\S+)?",
        r"(?:and )?one (?:more|last|other) (?:thing|question|point)",
        # said without a verb: "A message for Marco, from the school."
        r"(?:a|one) (?:quick |short |little )?message(?: for (?:you|him|her|\S+))?"
        r"(?: (?:from|about) (?:\S+ ){0,3}\S+)?",
        rf"(?:i have|i've got|i got|there's|there is) (?:something|some news|news){_TAIL}",
        r"(?:i|we) (?:just )?(?:wanted|want|need|needed|would like|had) to (?:tell|ask|let|say|remind|update"
        r"|inform|mention|check)(?: \S+){0,2}",
        r"(?:i'd|we'd) (?:just )?like to (?:tell|ask|let|say|remind|update|inform|mention|check)"
        r"(?: \S+){0,2}",
    ),
    topics=(r"(?:about|regarding|concerning|re|as for|as to|as regards|on the subject of|with regard to"
            r"|in regards? to|on the matter of) (?:the|my|your|his|her|our|their|a|an|this|that|these|those"
            r"|\S+'s)(?: \S+){1,5}",),
    topic_subjects="it's|it is|this is|that's|it's all|it's just",
    sources=(r"(?:from|on behalf of) (?:the|my|your|his|her|our|their|a|an|\S+'s)(?: \S+){1,4}",),
    topic_questions="about|regarding|concerning|what for|what's it for|reason|which one|what kind",
    number_asks="number numbers code digits extension reference pin",
    name_asks="name who who's whom",
    closing_ends="that's all|that is all|that's it|that's everything|nothing else",
    piecewise="address email e-mail spell spelled postcode zip",
    email_words=("dot", "at"),
    partitives="of",
    # the UK's: the outward code, then the inward one (a digit, two letters)
    postcode=(r"[A-Z]{1,2}\d[A-Z\d]?\d[A-Z]{2}", "address postcode postal deliver delivery"),
    digit_words={w: str(d) for d, ws in enumerate(("zero oh", "one", "two", "three", "four", "five", "six",
                                                  "seven", "eight", "nine")) for w in ws.split()},
    numbers=r"(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:-(?:one|two|three|four|five|six"
            r"|seven|eight|nine))?|zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
            r"|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|hundred|thousand|double|triple",
    number_contexts="number numbers phone mobile cell telephone code extension pin account iban zip"
                    " postcode reference digits",
    time_words="at by until till from around before after past to half quarter",
    closings="thanks|thank you|thank|bye|bye-bye|goodbye|good bye|that's all|that is all|that's it"
             "|that's everything|nothing else|have a nice day|have a good day|have a good one|take care"
             "|cheers|see you|talk to you later|talk soon|wrong number|never mind|much appreciated",
    short_answers="yes|yeah|yep|yup|no|nope|nah|okay|ok|sure|right|alright|all right|fine|correct"
                  "|exactly|absolutely|definitely|perfect|great|good|of course|got it|no problem"
                  "|sounds good|that's right|that's fine|that's correct|not really|i see|understood"
                  "|please|indeed|certainly|will do|of course not|not at all|sure thing|me too",
    requests="please|tell him|tell her|ask him|ask her|let him know|let her know|have him|have her"
             "|get him to|get her to|remind him|remind her|make sure|call me back|call me|get back to me"
             "|ring me|text me|give him|give her|pass it on|pass on|pass along|pass that on|let me know",
    request_starts="can you|could you|would you|will you|can he|could he|tell|ask|remind|call",
    question_starts="is|are|was|were|can|could|would|will|do|does|did|has|have|should|may|who|what|when"
                    "|where|why|how|which|whose|isn't|aren't|don't|doesn't|didn't|can't|won't",
    urgency="urgent|urgently|emergency|asap|as soon as possible|immediately|right away|straight away",
    greetings="hi|hello|hey|hiya|good morning|good afternoon|good evening|hi there|hello there|yes hello",
    list_counts={"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                 "ten": 10, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "a couple of": 2, "couple of": 2,
                 "a couple": 2, "a few": 2, "several": 2, "some": 2},
    list_nouns="things questions problems issues points items messages requests matters reasons changes"
               " details topics favours favors updates notes errands",
    list_joiners="and also then plus",
    list_glue="one thing item point question is was the number",
    ordinals={"first": 1, "firstly": 1, "second": 2, "secondly": 2, "third": 3, "thirdly": 3, "fourth": 4,
              "fifth": 5},
    list_enders="finally|lastly|last|last one|last thing|and last",
    list_openers=(
        # "first" before one of these nouns is no opener: "First floor, flat two.", "First day of June."
        r"(?:first|firstly|first of all|first off|to start with|to begin with|for starters)\b"
        r"(?! (?:day|days|time|floor|name|week|weekend|month|year|thing in the|class|half|quarter|aid|date"
        r"|choice|place|light)\b).*",
        r"the first (?:thing|one|point|question|problem|issue|item)\b.*",
    ),
    list_items=(
        r"(?:second|secondly|third|thirdly|fourth|fifth|next)"
        r"(?: (?:thing|one|point|question|problem|issue))?",
        r"(?:the|my) (?:second|third|fourth|fifth|next) (?:thing|one|point|question|problem|issue|item)\b.*",
    ),
    introductions=(
        r"(?i:this is|it's|it is|i'm|i am|my name is|here's|here is) {NAME}(?:,? (?i:again))?"
        r"(?: (?i:from|at|of|with|calling from) [^.!?]{1,40})?(?: (?i:here|calling))?"
        r"(?:,? (?i:about|regarding|calling about|again about) [^.!?,;]{1,40})?",
        r"(?i:i'm|i am|we're|we are) (?i:the|your|his|her|marco's|a|an|one of the|one of his|one of your)"
        r"(?: (?i:new|old|next-door|upstairs|downstairs|other))? (?i:" + _ROLES_EN + r")"
        r"(?: (?i:from|at|of|in|on|with|for) [^.!?,;]{1,40})?",
    ),
    tag_questions="isn't it|isn't he|isn't she|isn't that|aren't they|aren't you|aren't we|wasn't it"
                  "|wasn't he|wasn't she|weren't they|don't you|don't they|don't we|doesn't he|doesn't she"
                  "|doesn't it|didn't he|didn't she|didn't we|didn't you|didn't they|won't you|won't he"
                  "|won't she|won't they|won't it|can't you|can't he|can't she|couldn't you|wouldn't it"
                  "|wouldn't you|haven't you|hasn't he|hasn't she|shouldn't he|right|correct|yeah|is that"
                  " right|is that ok|is that okay|ok|okay|or not",
    open_requests="tell him|tell her|tell them|ask him|ask her|ask them|let him know|let her know"
                  "|remind him|remind her|tell him please|please tell him|please tell her",
    one_letter_words="a i",
    spelling=r"(?<![\w'])[a-z] (?:for|as in) [a-z]+",
    letter_doubles="double",
)

ITALIAN = Lexicon(
    trailing={
        "article": "il lo la i gli le un uno una l' un'",
        "preposition": "di a da in con su per tra fra del dello della dei degli delle al allo alla ai agli"
                       " alle dal dallo dalla dai dagli dalle nel nello nella nei negli nelle sul sullo"
                       " sulla sui sugli sulle col coi verso entro fino dell' all' dall' nell' sull' d'",
        "conjunction": "e ed ma o od oppure né ovvero siccome poiché affinché benché sebbene mentre se"
                       " qualora nonché cioè dunque",
        "relative": "che cui",
        "determiner": "ogni qualche quest' quell'",
    },
    dangling={
        "conjunction": "perché perche quindi quando dove come",
        "auxiliary": "è sono era erano sarà sarebbe ha ho hai hanno abbiamo avete sta sto stava stanno"
                     " deve devo può posso vuole voglio vorrei volevo dovrebbe potrebbe",
        "relative": "quale quali",
        "adverb": "anche poi inoltre pure però pero allora",
    },
    resolvers="chi cosa come dove quando quanto quale che lo la l' ci ne non io tu lui lei noi voi loro so"
              " sa sai sapere capisco ecco chiedo sì si no dov' com' cos' c' n' quand'",
    wh_words="chi cosa come dove quando quanto quale",
    question_tails="o oppure",
    hesitations="ehm eh ehh mmm mm hmm uhm uh ah oh",
    fillers="beh be' boh mah allora senta senti cioè dunque insomma praticamente diciamo guardi ascolti"
            " ascolta niente",
    holds=(
        r"vediamo(?: un po'?| un attimo| un momento| un secondo)?",
        r"(?:mi faccia|fammi|mi lasci|lasci|lasciami) (?:solo )?(?:vedere|pensare|controllare|guardare"
        rf"|cercare|trovare|verificare|prendere){_TAIL}",
        r"(?:(?:solo |aspetti |aspetta |attenda |mi dia |un )?un )?(?:attimo|attimino|momento|secondo"
        r"|istante)(?: solo)?(?: per favore| per cortesia)?",
        r"(?:aspetti|aspetta|attenda|un attimo)(?: per favore)?",
        r"(?:(?:aspetti |aspetta |solo )?un )?(?:attimo|attimino|momento|secondo|istante) che"
        r" (?:\S+ ){0,2}\S+",
    ),
    preambles=(
        rf"(?:volevo|vorrei|voglio|devo|dovevo|posso|potrei) (?:lasciare|lasciargli|lasciarle|lasciarti)"
        rf" (?:un )?(?:messaggio|messaggino){_TAIL}",
        rf"(?:(?:la|ti|vi|lo|le) )?(?:chiamo|chiamavo|sto chiamando|stavo chiamando|telefono|telefonavo)"
        rf"(?: (?:per|perché|riguardo|a proposito"
        rf"|da parte|dalla|dal|da|circa|in merito){_TAIL})?",
        r"(?:il|la) (?:fatto|punto|problema|questione|cosa|motivo|storia) è(?: che)?",
        r"il motivo (?:per cui|della) (?:la |ti )?(?:chiamo|chiamata)(?: è)?",
        r"(?:ho|avrei|c' è) (?:una|un|un' altra|un altro) (?:domanda|richiesta|problema|messaggio|cosa"
        r"|questione)(?:(?: \S+){0,2}|(?: per \S+)? (?:da parte (?:di|del|della|dello|dell'|dei|degli|delle)"
        r"|dalla|dal|dallo|dall'|dai|dagli|dalle) ?(?:\S+ ){0,2}\S+)",
        r"(?:e )?(?:un' altra|ancora una|un' ultima) (?:cosa|domanda)",
        r"un (?:messaggio|messaggino)(?: per \S+)?"  # "Un messaggio per Marco.", without a verb
        r"(?: (?:da parte (?:di|del|della|dello|dell'|dei|degli|delle)"
        r"|dalla|dal|dallo|dall'|dai|dagli|dalle) ?(?:\S+ ){0,2}\S+)?",
        r"(?:volevo|vorrei|devo|dovevo) (?:dirle|dirgli|dirti|chiederle|chiedergli|chiederti|dire|chiedere"
        r"|sapere|avvisarla|avvisarlo|avvisare|informarla|informarlo|segnalare)(?: \S+){0,2}",
    ),
    topics=(r"(?:per quanto riguarda|riguardo a|a proposito di|in merito a|circa)"
            r" (?:il|lo|la|i|gli|le|l'|un|uno|una|un'|quel|quello|quella|mio|mia|suo|sua)(?: \S+){1,5}",
            r"(?:riguardo|a proposito|in merito) (?:al|allo|alla|ai|agli|alle|all'|del|dello|della|dei|degli"
            r"|delle|dell')(?: \S+){1,5}",
            r"quanto (?:a|al|allo|alla|ai|agli|alle|all')(?: \S+){1,5}",
            r"per (?:il|lo|la|i|gli|le|l'|un|uno|una|un'|quel|quello|quella|quei|quelle)(?: \S+){1,5}"),
    topic_subjects="è|era|è solo",
    sources=(r"da parte (?:di|del|dello|della|dei|degli|delle|dell')(?: \S+){1,4}",),
    topic_questions="riguarda|tratta|motivo|per cosa|per che cosa|a proposito|in merito|quale|che tipo",
    number_asks="numero numeri codice cifre interno riferimento pin",
    name_asks="nome chi nominativo",
    closing_ends="è tutto|basta così|nient'altro|tutto qui",
    piecewise="indirizzo email mail scrive cap",
    email_words=("punto", "chiocciola"),
    partitives="di",
    numbers=r"(?:venti?|trenta?|quaranta?|cinquanta?|sessanta?|settanta?|ottanta?|novanta?)(?:uno|due|tré"
            r"|tre|quattro|cinque|sei|sette|otto|nove)|zero|uno|due|tre|quattro|cinque|sei|sette|otto|nove"
            r"|dieci|undici|dodici|tredici|quattordici|quindici|sedici|diciassette|diciotto|diciannove"
            r"|venti|trenta|quaranta|cinquanta|sessanta|settanta|ottanta|novanta|cento|mille|doppio|doppia",
    number_contexts="numero numeri telefono cellulare cell codice interno pin conto iban cap cifre fisso",
    time_words="alle all' ore dalle verso entro le l' fino tra fra",
    closings="grazie|grazie mille|arrivederci|arrivederla|buona giornata|buona serata|buonanotte|a presto"
             "|è tutto|basta così|nient'altro|tutto qui|la ringrazio|ti ringrazio|saluti|numero sbagliato"
             "|ciao|buon lavoro|a dopo|alla prossima|non importa|lasci stare|ci sentiamo|a risentirci"
             "|ho sbagliato numero|non fa niente",
    short_answers="sì|si|no|ok|okay|va bene|vabbè|vabbene|certo|certamente|esatto|esattamente|giusto"
                  "|perfetto|d'accordo|benissimo|bene|sicuro|assolutamente|appunto|ottimo|capito|come no"
                  "|per favore|non proprio|neanche|nemmeno|infatti|proprio così|volentieri|nessun problema"
                  "|ci mancherebbe",
    requests="per favore|per cortesia|gli dica|le dica|dica a|gli chieda|le chieda|gli riferisca"
             "|le riferisca|mi richiami|richiamarmi|mi faccia richiamare|mi chiami|mi faccia sapere"
             "|gli faccia sapere|le faccia sapere|mi raccomando|gli ricordi|le ricordi|gli dia|le dia"
             "|mi ricontatti|ricontattarmi",
    request_starts="può|potrebbe|puoi|potresti|dica|chieda|riferisca|richiamatemi|gli può|le può|gli potrebbe"
                   "|le potrebbe",
    question_starts="chi|cosa|che cosa|quando|dove|come|quanto|quanta|quanti|quante|quale|quali|c'è|è|può"
                    "|potrebbe|posso|sa|mi sa|avete|ci sono",
    urgency="urgente|urgenza|urgentemente|emergenza|subito|al più presto|il prima possibile|prima possibile"
            "|appena possibile|appena può|immediatamente",
    greetings="buongiorno|buonasera|salve|ciao|pronto|buon pomeriggio|sì buongiorno|sì pronto"
              "|buon giorno|buona sera|sì buon giorno|sì buona sera",  # whisper writes both
    list_counts={"due": 2, "tre": 3, "quattro": 4, "cinque": 5, "sei": 6, "sette": 7, "otto": 8, "nove": 9,
                 "dieci": 10, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "un paio di": 2, "alcune": 2,
                 "alcuni": 2, "qualche": 2, "diverse": 2, "diversi": 2, "varie": 2, "vari": 2},
    list_nouns="cose cosette domande problemi punti questioni messaggi richieste motivi modifiche dettagli"
               " informazioni favori novità argomenti commissioni cosa domanda problema punto questione"
               " richiesta informazione",
    list_joiners="e ed poi anche inoltre",
    list_glue="cosa punto domanda è la il numero",
    ordinals={"primo": 1, "prima": 1, "innanzitutto": 1, "anzitutto": 1, "secondo": 2, "seconda": 2,
              "secondariamente": 2, "terzo": 3, "terza": 3, "quarto": 4, "quarta": 4, "quinto": 5},
    list_enders="infine|per ultimo|per ultima|per finire|l'ultima cosa|ultima cosa|l'ultimo|ultimo punto",
    list_openers=(
        r"(?:prima di tutto|innanzitutto|anzitutto|per prima cosa|prima cosa(?! che\b)|primo|per cominciare"
        r"|per iniziare)\b"
        r"(?! (?:piano|giorno|giorni|pomeriggio|mattino|tempo|nome|anno|mese|turno|posto|appuntamento)\b).*",
        r"(?:la prima|il primo) (?:cosa|punto|domanda|problema|questione)\b.*",
    ),
    list_items=(
        r"(?:secondo|seconda|secondariamente|terzo|terza|quarto|quarta|quinto|quinta)"
        r"(?: (?:cosa|punto|domanda|problema|questione))?",
        r"(?:il|la) (?:secondo|seconda|terzo|terza|quarto|quarta|quinto|quinta) (?:cosa|punto|domanda"
        r"|problema|questione)\b.*",
    ),
    accent_fixes={"e'": "è", "perche'": "perché", "pero'": "però", "piu'": "più", "gia'": "già",
                  "cosi'": "così", "puo'": "può", "si'": "sì", "pò": "po'"},
    split_elision=True,
    introductions=(
        r"(?i:sono|mi chiamo|qui è|qui parla|il mio nome è|parla)(?: (?i:di nuovo|ancora))? {NAME}"
        r"(?:,? (?i:da|di|del|della|dello|dalla|dal|dallo|dell'|dall'|per) ?[^.!?,;]{1,40})?",
        r"(?i:sono|siamo) (?i:il|la|lo|l'|i|gli|le|un|una|uno|un'|suo|sua|il suo|la sua|uno dei|una delle)"
        r" ?(?:(?i:nuovo|nuova|vecchio|vecchia|nuovi) )?(?i:" + _ROLES_IT + r")"
        r"(?: (?i:da|di|del|della|dello|dalla|dal|dallo|dell'|dall'|per|in|al|alla|sopra|sotto)"
        r" ?[^.!?,;]{1,40})?",
    ),
    tag_questions="vero|non è vero|giusto|no|o no|o sbaglio|d'accordo|va bene|ok|okay|sì o no|è così",
    open_requests="gli dica|le dica|dica a|gli chieda|le chieda|gli riferisca|le riferisca|gli faccia sapere"
                  "|le faccia sapere|gli ricordi|le ricordi|gli dica per favore|per favore gli dica"
                  "|per favore le dica",
    one_letter_words="a e i o",
    spelling=r"(?<![\w'])[a-z] come [a-zà-ù]+",
    letter_doubles="doppia doppio",
)

LEXICONS: dict[str, Lexicon] = {"en": ENGLISH, "it": ITALIAN}
