"""One voice per language from more than one engine: piper where a voice is configured for the call's
language, espeak-ng (which speaks every language it has a voice for) for the others. An Italian call on
a box with only an English piper voice is spoken in Italian by espeak-ng, not refused."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from models.engines import SpeechChunk, TextToSpeech

__all__ = ["ByLanguage"]


class ByLanguage:
    """Speaks with the first of `parts` that `speaks(language)`; the last part speaks the rest."""

    def __init__(self, parts: Sequence[TextToSpeech]) -> None:
        if not parts:
            raise ValueError("ByLanguage needs at least one engine")
        self.parts = tuple(parts)

    def engine_for(self, language: str) -> TextToSpeech:
        for part in self.parts[:-1]:
            speaks = getattr(part, "speaks", None)
            if speaks is not None and speaks(language):
                return part
        return self.parts[-1]

    def synthesize(self, text: str, *, language: str) -> Iterator[SpeechChunk]:
        return self.engine_for(language).synthesize(text, language=language)

    def warm_up(self) -> None:
        for part in self.parts:
            warm = getattr(part, "warm_up", None)
            if warm is not None:
                warm()
