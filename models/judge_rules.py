"""The rules turn judge: cheap text signals for "has the caller finished?" when no judge model is set.

`RulesJudge` judges only the caller's last line of the story; earlier caller lines are read for
context (an announced list still being delivered). The first rule that fires decides; its tag is the
verdict's `reason`. In priority order:

1.  empty                  nothing was said                                            0.0
2.  question               ends in "?"                                                 COMPLETE
3.  trailing-punctuation   ends in "," ";" ":" "-" or "..."                           WAIT
4.  filler                 only fillers and hesitations ("um", "well", "ehm", "beh")   WAIT
5.  trailing-filler        ends in a hesitation ("... the invoice and uh")             WAIT
6.  trailing-<class>       ends in a word that cannot end a sentence: an article,      WAIT
                           possessive, conjunction, preposition ("the", "and", "di")
7.  dangling-<class>       no end punctuation and ends in a word that seldom ends one  WAIT
                           ("that", "is", "perché", "also")
8.  preamble               the last clause announces content to come ("I wanted to     WAIT
                           leave a message", "hold on", "un attimo")
9.  number-sequence        ends in a digit group or a run of numbers, not a time       WAIT
                           ("my number is three three nine"; "at ten" is a time)
10. greeting               only a greeting, as the caller's first line ("hello.")     WAIT, unsure
    introduction           only who is calling, as the first line ("this is Anna        WAIT, unsure
                           from the bakery.", "sono Paolo"): the reason comes next
11. closing                thanks or goodbye in the last sentence                      COMPLETE
12. short-answer           the last sentence is "yes", "okay", "va bene", ...          COMPLETE
13. period-after-<class>   as 7 but with a period, unless the word before makes it a   WAIT, unsure
                           whole sentence ("it is.", "I think so.", "non so perché.")
14. announced-list         "I need three things." and fewer items given since          WAIT
    list-complete          ... and now all of them                                     COMPLETE
15. list-opener            starts with "first", "innanzitutto", ...                    WAIT
    list-item              starts with "second,", "the third thing", "secondo punto"   WAIT, unsure
16. request / urgency      "please", "tell him", "gli dica"; "urgent", "subito"        COMPLETE
17. exclamation            ends in "!"                                                 COMPLETE
18. question-words         no end punctuation, starts like a question ("is he there")  COMPLETE, unsure
    unpunctuated           no end punctuation otherwise (speech cut mid-phrase?)       WAIT, unsure
19. statement              anything else: a period is not proof of an end              COMPLETE, ~0.7

Words and phrases live in one `Lexicon` per language (`LEXICONS`, keyed by ISO 639-1 code); an
unknown language uses the English one (the punctuation rules 2, 3, 17, 18 and 19 need no words at
all). A pure function of its input: no I/O, no clock, no state between calls.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from models.engines import Line, Verdict

__all__ = ["LEXICONS", "Lexicon", "RulesJudge"]

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
P_QUESTION_WORDS = 0.6
P_UNPUNCTUATED = 0.4
P_LIST_ITEM = 0.4  # "second, ...": a list goes on, but this may be its last item
P_GREETING = 0.35
P_INTRODUCTION = 0.3
_NAME = r"[A-ZÀ-ÖØ-Þ][\w'-]*(?: [A-ZÀ-ÖØ-Þ][\w'-]*){0,2}"
P_PERIOD_AFTER = 0.3
P_LIST_OPENER = 0.18
P_DANGLING = 0.15
P_LIST_PENDING = 0.12
P_LONG_NUMBER = 0.35  # nine digits or more: perhaps a whole phone number, perhaps not
P_NUMBER = 0.1
P_FILLER = 0.1
P_TRAILING_FILLER = 0.09
P_TRAILING_PUNCTUATION = 0.08
P_TRAILING_WORD = 0.05
P_PREAMBLE = 0.05

_TAIL = r"(?: \S+){0,4}"  # a few more words allowed after a preamble ("... for Marco")


# --------------------------------------------------------------------------- word tables


# A word: digits, or letters with inner apostrophes or hyphens ("that's", "bye-bye") and perhaps one
# at the end ("po'"). Where elision is split, "dell'ordine" is two words: "dell'" and "ordine".
_TOKEN = re.compile(r"\d+|[^\W\d_]+(?:['-][^\W\d_]+)*'?")
_ELIDED_TOKEN = re.compile(r"\d+|[^\W\d_]+'|[^\W\d_]+(?:-[^\W\d_]+)*")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _cover(phrases: Iterable[str]) -> list[list[str]]:
    """Phrases as word lists, longest first, for `_covered`."""
    return sorted((p.split() for p in phrases), key=len, reverse=True)


def _phrases(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split("|") if p.strip())


class Lexicon:
    """The word tables of one language, compiled once. Word tables are space-separated, phrase tables
    "|"-separated (phrases go through the same tokenizer as caller text). `preambles` and
    `list_openers` are regular expressions matched against a whole clause: lower-case words joined by
    single spaces, without punctuation, elided words split where the language does ("c' è")."""

    def __init__(
        self,
        *,
        trailing: Mapping[str, str],  # class name -> words after which a sentence cannot end
        dangling: Mapping[str, str],  # class name -> words that seldom end a sentence
        resolvers: str,  # a dangling word right after one of these is a whole sentence
        wh_words: str,  # a sentence with one of these may end in a preposition or auxiliary
        hesitations: str,
        fillers: str,  # discourse fillers: whole-line fillers, stripped at the start of a clause
        preambles: Iterable[str],
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
    ) -> None:
        self.accent_fixes = dict(accent_fixes or {})
        self._token_re = _ELIDED_TOKEN if split_elision else _TOKEN
        self.trailing = {w: cls for cls, ws in trailing.items() for w in ws.split()}
        self.dangling = {w: cls for cls, ws in dangling.items() for w in ws.split()}
        self.resolvers = _words(resolvers)
        self.wh_words = _words(wh_words)
        self.hesitations = _words(hesitations)
        self.fillers = _words(fillers) | self.hesitations
        self.preamble_re = re.compile("|".join(f"(?:{p})" for p in preambles))
        self.number_re = re.compile(rf"\d+|{numbers}")
        self.number_contexts = _words(number_contexts)
        self.time_words = _words(time_words)
        self.closings = self._phrase_table(closings)
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
        self.short_answer_cover = _cover(self.short_answers)
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
    },
    dangling={
        "relative": "that which who whom where when",
        "conjunction": "so as",
        "preposition": "to for with from about like through without",
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
    hesitations="um umm uh uhh uhm er erm ah ahh hmm hm mm mmm eh",
    fillers="oh well so like anyway actually basically listen look",
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
        rf"(?:let me|lemme|let's) (?:just )?(?:see|think|check|look|find|get|grab|pull up){_TAIL}",
        r"(?:hold|hang) on(?: (?:a|one|just a) (?:second|sec|moment|minute|min|tick))?(?: please)?",
        r"(?:just |wait |give me |gimme )?(?:a|one|1) (?:second|sec|moment|minute|min|mo|tick)(?: please)?",
        r"wait(?: a (?:second|sec|moment|minute))?(?: please)?|bear with me",
        r"(?:i have|i've got|i got|there's|there is|i've) (?:a|one|another) (?:quick |small |little |short "
        r"|more |last |other )?"
        r"(?:question|message|request|problem|issue|thing)(?: for (?:you|him|her|\S+))?",
        r"(?:and )?one (?:more|last|other) (?:thing|question|point)",
        rf"(?:i have|i've got|i got|there's|there is) (?:something|some news|news){_TAIL}",
        r"(?:i|we) (?:just )?(?:wanted|want|need|needed|would like|had) to (?:tell|ask|let|say|remind|update"
        r"|inform|mention|check)(?: \S+){0,2}",
        r"(?:i'd|we'd) (?:just )?like to (?:tell|ask|let|say|remind|update|inform|mention|check)"
        r"(?: \S+){0,2}",
    ),
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
        r"(?:first|firstly|first of all|first off|to start with|to begin with|for starters)\b.*",
        r"the first (?:thing|one|point|question|problem|issue|item)\b.*",
    ),
    list_items=(
        r"(?:second|secondly|third|thirdly|fourth|fifth|next)"
        r"(?: (?:thing|one|point|question|problem|issue))?",
        r"(?:the|my) (?:second|third|fourth|fifth|next) (?:thing|one|point|question|problem|issue|item)\b.*",
    ),
    introductions=(
        r"(?i:this is|it's|it is|i'm|i am|my name is|here's|here is) {NAME}"
        r"(?: (?i:from|at|of|with|calling from) [^.!?]{1,40})?(?: (?i:here|calling))?",
    ),
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
    hesitations="ehm eh ehh mmm mm hmm uhm uh ah oh",
    fillers="beh be' boh mah allora senta senti cioè dunque insomma praticamente diciamo guardi ascolti"
            " ascolta niente",
    preambles=(
        rf"(?:volevo|vorrei|voglio|devo|dovevo|posso|potrei) (?:lasciare|lasciargli|lasciarle|lasciarti)"
        rf" (?:un )?(?:messaggio|messaggino){_TAIL}",
        rf"(?:(?:la|ti|vi|lo|le) )?(?:chiamo|sto chiamando|telefono)(?: (?:per|perché|riguardo|a proposito"
        rf"|da parte|dalla|dal|da|circa|in merito){_TAIL})?",
        r"(?:il|la) (?:fatto|punto|problema|questione|cosa|motivo|storia) è(?: che)?",
        r"il motivo (?:per cui|della) (?:la |ti )?(?:chiamo|chiamata)(?: è)?",
        r"vediamo(?: un po'?| un attimo| un momento| un secondo)?",
        r"(?:mi faccia|fammi|mi lasci|lasci|lasciami) (?:solo )?(?:vedere|pensare|controllare|guardare"
        rf"|cercare|trovare|verificare|prendere){_TAIL}",
        r"(?:(?:solo |aspetti |aspetta |attenda |mi dia |un )?un )?(?:attimo|attimino|momento|secondo"
        r"|istante)(?: solo)?(?: per favore| per cortesia)?",
        r"(?:aspetti|aspetta|attenda|un attimo)(?: per favore)?",
        r"(?:ho|avrei|c' è) (?:una|un|un' altra|un altro) (?:domanda|richiesta|problema|messaggio|cosa"
        r"|questione)(?: \S+){0,2}",
        r"(?:e )?(?:un' altra|ancora una|un' ultima) (?:cosa|domanda)",
        r"(?:volevo|vorrei|devo|dovevo) (?:dirle|dirgli|dirti|chiederle|chiedergli|chiederti|dire|chiedere"
        r"|sapere|avvisarla|avvisarlo|avvisare|informarla|informarlo|segnalare)(?: \S+){0,2}",
    ),
    numbers=r"(?:venti?|trenta?|quaranta?|cinquanta?|sessanta?|settanta?|ottanta?|novanta?)(?:uno|due|tré"
            r"|tre|quattro|cinque|sei|sette|otto|nove)|zero|uno|due|tre|quattro|cinque|sei|sette|otto|nove"
            r"|dieci|undici|dodici|tredici|quattordici|quindici|sedici|diciassette|diciotto|diciannove"
            r"|venti|trenta|quaranta|cinquanta|sessanta|settanta|ottanta|novanta|cento|mille|doppio|doppia",
    number_contexts="numero numeri telefono cellulare cell codice interno pin conto iban cap cifre fisso",
    time_words="alle all' ore dalle verso entro le l' fino tra fra",
    closings="grazie|grazie mille|arrivederci|arrivederla|buona giornata|buona serata|buonanotte|a presto"
             "|è tutto|basta così|nient'altro|tutto qui|la ringrazio|ti ringrazio|saluti|numero sbagliato"
             "|ciao|buon lavoro|a dopo|alla prossima|non importa|lasci stare",
    short_answers="sì|si|no|ok|okay|va bene|vabbè|vabbene|certo|certamente|esatto|esattamente|giusto"
                  "|perfetto|d'accordo|benissimo|bene|sicuro|assolutamente|appunto|ottimo|capito|come no"
                  "|per favore|non proprio|neanche|nemmeno|infatti|proprio così|volentieri|nessun problema"
                  "|ci mancherebbe",
    requests="per favore|per cortesia|gli dica|le dica|dica a|gli chieda|le chieda|gli riferisca"
             "|le riferisca|mi richiami|richiamarmi|mi faccia richiamare|mi chiami|mi faccia sapere"
             "|gli faccia sapere|le faccia sapere|mi raccomando|gli ricordi|le ricordi|gli dia|le dia"
             "|mi ricontatti|ricontattarmi",
    request_starts="può|potrebbe|puoi|potresti|dica|chieda|riferisca|richiamatemi",
    question_starts="chi|cosa|che cosa|quando|dove|come|quanto|quanta|quanti|quante|quale|quali|c'è|è|può"
                    "|potrebbe|posso|sa|mi sa|avete|ci sono",
    urgency="urgente|urgenza|urgentemente|emergenza|subito|al più presto|il prima possibile|prima possibile"
            "|appena possibile|appena può|immediatamente",
    greetings="buongiorno|buonasera|salve|ciao|pronto|buon pomeriggio|sì buongiorno|sì pronto",
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
        r"(?:prima di tutto|innanzitutto|anzitutto|per prima cosa|primo|per cominciare|per iniziare)\b.*",
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
        r"(?i:sono|mi chiamo|qui è|qui parla|il mio nome è|parla) {NAME}"
        r"(?: (?i:da|di|del|della|dello|dalla|dal|dallo|dell'|dall'|per) ?[^.!?]{1,40})?",
    ),
)

LEXICONS: dict[str, Lexicon] = {"en": ENGLISH, "it": ITALIAN}


# --------------------------------------------------------------------------- text


_CHARS = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'", "“": '"', "”": '"', "„": '"',
                        "«": '"', "»": '"', "–": "-", "—": "-", "…": "...", "\u00a0": " "})
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>")  # [inaudible], (laughs), <noise>
_SPACE_BEFORE_PUNCT = re.compile(r"\s+(?=[,.;:!?])")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_CLAUSE_END = re.compile(r"[,;:]\s*|\s-\s")
_END_JUNK = ' "\')]>*'


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text).translate(_CHARS).lower()
    text = _SPACE_BEFORE_PUNCT.sub("", _ANNOTATION.sub(" ", text))
    return " ".join(text.split()).strip(_END_JUNK.replace("'", ""))


def _end_mark(text: str) -> str:
    """"?", "!", ".", "," (anything that leaves the sentence open) or "" (no punctuation)."""
    text = text.rstrip(_END_JUNK)
    if text.endswith("..") or text[-1:] in (",", ";", ":", "-"):
        return ","
    return text[-1] if text[-1:] in ("?", "!", ".") else ""


def _tokens(text: str, lex: Lexicon) -> list[str]:
    return lex.tokenize(text)


def _has(phrase: str, joined: str) -> bool:
    """Whether `phrase` occurs as whole words in `joined` (words with a space on either side)."""
    return f" {phrase} " in joined


def _covered(tokens: Sequence[str], cover: Sequence[list[str]], extra: frozenset[str] = frozenset()) -> bool:
    """Whether `tokens` are nothing but phrases of `cover` (see `_cover`) and single words of `extra`."""
    i = 0
    while i < len(tokens):
        for words in cover:
            if tokens[i:i + len(words)] == words:
                i += len(words)
                break
        else:
            if tokens[i] not in extra:
                return False
            i += 1
    return True


def _language(code: str) -> Lexicon:
    return LEXICONS.get(re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0], ENGLISH)


# --------------------------------------------------------------------------- rules needing context


@dataclass(frozen=True, slots=True)
class _ListState:
    announced: int  # items the caller said were coming
    given: int  # items given since


def _count_items(text: str, lex: Lexicon, given: int, announced: int) -> int:
    pending = 0  # an ordinal seen in a chunk with no item yet ("second," / "the third one is")
    for chunk in lex.list_split_re.split(text):
        tokens = _tokens(chunk, lex)
        if not tokens:
            continue
        joined = f" {' '.join(tokens)} "
        if any(_has(e, joined) for e in lex.list_enders):
            return announced
        ordinal = max((lex.ordinals.get(t, 0) for t in tokens), default=0)
        if all(t in lex.no_content for t in tokens):
            pending = max(pending, ordinal)
            continue
        given = max(given + 1, ordinal, pending)
        pending = 0
    return given


def _list_state(texts: Sequence[str], lex: Lexicon) -> _ListState | None:
    """The latest announced list in `texts` (normalised caller lines, oldest first) and its items."""
    state: _ListState | None = None
    for text in texts:
        for sentence in _SENTENCE_END.split(text):
            matches = list(lex.announce_re.finditer(sentence))
            if matches:
                m = matches[-1]
                count = lex.list_counts[m["count"]]
                rest = sentence[m.end():]
                colon = rest.find(":")
                given = _count_items(rest[colon + 1:], lex, 0, count) if colon >= 0 else 0
                state = _ListState(count, given)
            elif state is not None:
                state = _ListState(state.announced,
                                   _count_items(sentence, lex, state.given, state.announced))
    return state


def _context(story: Sequence[Line], last: int) -> list[str]:
    """Earlier caller lines that may still shape the last one (an announced list), oldest first. Bot
    lines are skipped ("go ahead" does not end a list); the look-back stops at a caller question or
    after eight lines."""
    texts: list[str] = []
    for line in reversed(story[:last]):
        text = _normalise(line.text) if line.role == "caller" else ""
        if not text:
            continue
        if _end_mark(text) == "?" or len(texts) == 8:
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
        text = _normalise(story[last].text)
        tokens = _tokens(text, lex)
        if not tokens:
            return Verdict(P_EMPTY, "empty")
        context = _context(story, last)
        first = not any(line.role == "caller" and line.text.strip() for line in story[:last])
        if first and _introduces(story[last].text, lex):
            return Verdict(P_INTRODUCTION, "introduction")
        return _judge_line(text, tokens, lex, context, first=first)


def _judge_line(text: str, tokens: list[str], lex: Lexicon, context: list[str], *, first: bool) -> Verdict:
    mark = _end_mark(text)
    if mark == "?":
        return Verdict(P_QUESTION, "question")
    if mark == ",":
        return Verdict(P_TRAILING_PUNCTUATION, "trailing-punctuation")
    if all(t in lex.fillers for t in tokens):
        return Verdict(P_FILLER, "filler")
    word = tokens[-1]
    if word in lex.hesitations:
        return Verdict(P_TRAILING_FILLER, "trailing-filler")
    if word in lex.trailing:
        return Verdict(P_TRAILING_WORD, f"trailing-{lex.trailing[word]}")
    if word in lex.dangling and not mark:
        return Verdict(P_DANGLING, f"dangling-{lex.dangling[word]}")

    last_sentence = _SENTENCE_END.split(text)[-1]
    sentence = _tokens(last_sentence, lex) or tokens
    core = _strip_lead(sentence, lex)
    if lex.preamble_re.fullmatch(" ".join(_strip_lead(
            _tokens(_CLAUSE_END.split(last_sentence.rstrip(".!"))[-1], lex), lex))):
        return Verdict(P_PREAMBLE, "preamble")

    numbers, digits = _number_run(sentence, lex)
    if numbers and (numbers > 1 or digits >= 5 or any(t in lex.number_contexts for t in sentence)):
        return Verdict(P_LONG_NUMBER if digits >= 9 else P_NUMBER, "number-sequence")

    joined = f" {' '.join(sentence)} "
    if first and _covered(tokens, lex.greeting_cover, lex.fillers):
        return Verdict(P_GREETING, "greeting")
    if any(_has(p, joined) for p in lex.closings):
        return Verdict(P_CLOSING, "closing")
    if _covered(sentence, lex.short_answer_cover, lex.fillers) and sentence[-1] not in lex.fillers:
        return Verdict(P_SHORT_ANSWER, "short-answer")
    if word in lex.dangling and not _resolved(sentence, lex):
        return Verdict(P_PERIOD_AFTER, f"period-after-{lex.dangling[word]}")

    state = _list_state([*context, text], lex)
    if state is not None:
        if state.given < state.announced:
            return Verdict(P_LIST_PENDING, "announced-list")
        if context:  # announced earlier, and this line completes it
            return Verdict(P_LIST_COMPLETE, "list-complete")
    first_sentence = _SENTENCE_END.split(text)[0]
    opener = " ".join(_strip_lead(_tokens(first_sentence, lex), lex))
    if lex.list_opener_re.fullmatch(opener) and not any(lex.ordinals.get(t, 0) > 1 for t in tokens):
        return Verdict(P_LIST_OPENER, "list-opener")
    first_clause = _strip_lead(_tokens(_CLAUSE_END.split(first_sentence)[0], lex), lex)
    if lex.list_item_re.fullmatch(" ".join(first_clause)):
        return Verdict(P_LIST_ITEM, "list-item")

    start = f" {' '.join(core[:3])} "
    if any(_has(p, joined) for p in lex.requests) or any(
            start.startswith(f" {p} ") for p in lex.request_starts):
        return Verdict(P_REQUEST, "request")
    if any(_has(p, joined) for p in lex.urgency):
        return Verdict(P_URGENCY, "urgency")
    if mark == "!":
        return Verdict(P_EXCLAMATION, "exclamation")
    if not mark:
        if any(start.startswith(f" {p} ") for p in lex.question_starts):
            return Verdict(P_QUESTION_WORDS, "question-words")
        return Verdict(P_UNPUNCTUATED, "unpunctuated")
    return Verdict(P_STATEMENT, "statement")


def _introduces(line: str, lex: Lexicon) -> bool:
    """The line only says who is calling, greetings aside ("Hi, this is Anna from the bakery.")."""
    text = " ".join(unicodedata.normalize("NFC", line).translate(_CHARS).split())
    rest = _SENTENCE_END.split(text)[-1].rstrip(".!")
    while True:
        words = lex.tokenize(rest.lower())
        lead = next((g for g in lex.greetings if words[:len(g.split())] == g.split()), None)
        if lead is None:
            break
        rest = re.sub(r"^\W*" + r"\W+".join(map(re.escape, lead.split())) + r"[\s,.!]*", "", rest,
                      flags=re.IGNORECASE)
    return bool(lex.introduction_re.fullmatch(rest))


def _strip_lead(tokens: list[str], lex: Lexicon) -> list[str]:
    """`tokens` without the fillers, short answers and joiners they start with."""
    i = 0
    while i < len(tokens) and tokens[i] in lex.lead_words:
        i += 1
    return tokens[i:]


def _resolved(sentence: Sequence[str], lex: Lexicon) -> bool:
    """Whether the last sentence still ends whole on its dangling last word: "it is.", "I think so.",
    "non so perché.", "that's what it's about.", "how much the deposit is."."""
    if len(sentence) > 1 and sentence[-2] in lex.resolvers:
        return True
    cls = lex.dangling[sentence[-1]]
    if cls in ("adverb", "determiner", "pronoun"):  # "the invoice too.", "I need this.", "so did I."
        return True
    return cls in ("preposition", "auxiliary") and any(t in lex.wh_words for t in sentence[:-1])
