"""The bot's fixed lines in each language it speaks: what it says without asking the reply model.

A call speaks its own language (the owner's, or the caller's profile's), and so do its fixed lines: an
Italian caller is never told goodbye in English. The owner's own wording in `[call]` is kept as written
in every language; a line the owner did not write comes from here (English where a language has none).
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["PHRASES", "PHRASE_KEYS", "phrases_for"]

PHRASE_KEYS = ("greeting", "goodbye", "ack", "backchannel", "apology", "repeat")

PHRASES = MappingProxyType({
    "en": MappingProxyType({
        "greeting": "Hello, this is the assistant answering for the person you called. How can I help?",
        "goodbye": "Thank you, I will pass your message on. Goodbye.",
        "ack": "Mm-hm?",
        "backchannel": "Mm-hm.",
        "apology": "Sorry, something went wrong on my side. Could you say that again?",
        "repeat": "Sorry, I didn't catch that. Could you say it again?",
    }),
    "it": MappingProxyType({
        "greeting": "Buongiorno, risponde l'assistente della persona che ha chiamato. Come posso aiutarla?",
        "goodbye": "Grazie, riferirò il suo messaggio. Arrivederci.",
        "ack": "Sì?",
        "backchannel": "Mh-mh.",
        "apology": "Mi scusi, ho avuto un problema. Può ripetere?",
        "repeat": "Mi scusi, non ho capito bene. Può ripetere?",
    }),
})


def phrases_for(language: str) -> MappingProxyType[str, str]:
    """The fixed lines for `language` ("it", "it-IT", "en_GB"...), English where there are none."""
    base = language.strip().lower().replace("_", "-").split("-")[0]
    return PHRASES.get(base, PHRASES["en"])
