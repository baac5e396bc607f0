"""The bot's fixed lines in each language it speaks: what it says without asking the reply model.

A call speaks its own language (the owner's, or the caller's profile's), and so do its fixed lines: an
Italian caller is never told goodbye in English. The owner's own wording in `[call]` is kept as written
in every language; a line the owner did not write comes from here (English where a language has none).
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["PHRASES", "PHRASE_KEYS", "phrases_for"]

PHRASE_KEYS = ("greeting", "goodbye", "ack", "backchannel", "go_ahead", "apology", "repeat", "unheard",
               "readback")

PHRASES = MappingProxyType({
    "en": MappingProxyType({
        "greeting": "Hello, this is the assistant answering for the person you called. How can I help?",
        "goodbye": "Thank you, I will pass your message on. Goodbye.",
        "ack": "Mm-hm?",
        "backchannel": "Mm-hm.",
        "go_ahead": "Go ahead.",  # after "I'd like to leave a message for Marco." and quiet
        "apology": "Sorry, something went wrong on my side. Could you say that again?",
        "repeat": "Sorry, I didn't catch that. Could you say it again?",
        # speech that again came to no words: no second question (rule 11)
        "unheard": "Sorry, I still can't make out what you're saying. The line may be bad.",
        "readback": "Let me read that back: {number}. Is that right?",  # a dictated number, in groups
        # ring-through (server/core/ringthrough.py): to the caller, then to the owner
        "ring_trying": "One moment, I'll try to put you through now.",
        "ring_no_answer": "I couldn't reach them just now. Tell me your message and I'll pass it on.",
        "ring_declined": "They can't take the call right now. Tell me your message and I'll pass it on.",
        "ring_unavailable": "I can't put you through at the moment, but I'll gladly take your message.",
        "ring_announce": "A call for you from {caller}.",
        "ring_said": "They said: {said}",
        "ring_ask": "Press 1 to take the call, or 2 and I will take a message.",
        "ring_unknown": "a withheld number",
        "ring_number": "number {number}",
        # screening (server/core/screening.py): the goodbye to a silent call, then to a recording
        "screened_silent": "I can't hear anyone on the line, so I'll hang up now. Goodbye.",
        "screened_recording": "This line doesn't take recorded calls. Goodbye.",
        "screened_unheard": "I'm sorry, I can't make out what you're saying, so I'll end the call here. "
                            "Goodbye.",
    }),
    "it": MappingProxyType({
        "greeting": "Buongiorno, risponde l'assistente della persona che ha chiamato. Come posso aiutarla?",
        "goodbye": "Grazie, riferirò il suo messaggio. Arrivederci.",
        "ack": "Sì?",
        "backchannel": "Mh-mh.",
        "go_ahead": "Dica pure.",
        "apology": "Mi scusi, ho avuto un problema. Può ripetere?",
        "repeat": "Mi scusi, non ho capito bene. Può ripetere?",
        "unheard": "Mi scusi, continuo a non capirla. Forse la linea è disturbata.",
        "readback": "Le rileggo il numero: {number}. È corretto?",
        "ring_trying": "Un momento, provo a metterla in comunicazione.",
        "ring_no_answer": "Al momento non risponde. Mi lasci pure il messaggio, lo riferirò.",
        "ring_declined": "Al momento non può rispondere. Mi lasci pure il messaggio, lo riferirò.",
        "ring_unavailable": "Ora non posso passarle la chiamata, ma prendo volentieri il suo messaggio.",
        "ring_announce": "Una chiamata per te da {caller}.",
        "ring_said": "Ha detto: {said}",
        "ring_ask": "Premi 1 per rispondere, oppure 2 e prendo io il messaggio.",
        "ring_unknown": "un numero anonimo",
        "ring_number": "il numero {number}",
        "screened_silent": "Non sento nessuno in linea, quindi riaggancio. Arrivederci.",
        "screened_recording": "Questa linea non accetta chiamate registrate. Arrivederci.",
        "screened_unheard": "Mi scusi, non riesco a capire cosa dice, quindi chiudo la chiamata. "
                            "Arrivederci.",
    }),
})


def phrases_for(language: str) -> MappingProxyType[str, str]:
    """The fixed lines for `language` ("it", "it-IT", "en_GB"...), English where there are none."""
    base = language.strip().lower().replace("_", "-").split("-")[0]
    return PHRASES.get(base, PHRASES["en"])
