"""The turn judge on real weights: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M) through llama.cpp, calibrated by
`models/judge_calibration_table.py`, on plain lines and on held-out lines of ../shared/turns/dev.tsv.

Skipped, with the reason, when the GGUF is not in the models folder ($STANDIN_MODELS, else
/var/lib/standin/models) or the shared folder is not beside the checkout. Nothing is downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from models.engines import Line
from models.judge_cases import load_cases, unpunctuated
from models.judge_llm import LlmJudge, LlmJudgeOptions
from models.llama import LlamaModel

pytestmark = pytest.mark.slow

MODEL = "llm/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
DEV_TSV = Path(__file__).resolve().parents[3] / "shared" / "turns" / "dev.tsv"
THRESHOLD = 0.5  # the core's default turns.threshold

# Held-out lines of dev.tsv, chosen before any was judged: the plain cases of each kind.
HELD_OUT = {
    "en": ("Is Marco at home?", "Please ask him to call me back this afternoon.",
           "That's all, thank you. Bye.", "I'm calling because", "My number is three three three.",
           "Hi, this is Paolo from the garage, and"),
    "it": ("Marco è in casa?", "Gli dica di richiamarmi nel pomeriggio.", "Va bene, grazie. Arrivederci.",
           "La chiamo perché", "Il mio numero è tre tre nove.", "Si tratta dell'ordine che"),
}
PLAIN = {  # (finished, unfinished), written here
    "en": ("Could you ask her to call me back this evening?", "So I was calling about the"),
    "it": ("Può chiederle di richiamarmi stasera?", "Allora, la chiamavo per il"),
}


def _model_path() -> Path:
    folder = Path(os.environ.get("STANDIN_MODELS", "").strip() or "/var/lib/standin/models")
    path = folder / MODEL
    if not path.is_file():
        pytest.skip(f"{path} is absent: pull the cpu set (standin models pull --set cpu) to run this test")
    return path


@pytest.fixture(scope="module")
def model() -> LlamaModel:
    pytest.importorskip("llama_cpp", reason="pip install llama-cpp-python")
    from models.llama import LlamaOptions, load_llama

    return load_llama(_model_path(), LlamaOptions(n_ctx=2048, n_threads=2))


@pytest.fixture(scope="module")
def judge(model: LlamaModel) -> LlmJudge:
    judge = LlmJudge(model)
    assert judge.calibration is not None, "the 1.5B has a calibration for this prompt"
    assert judge.calibration.uses_rules  # the default mode: the model and the rules together
    return judge


@pytest.fixture(scope="module")
def dev_labels() -> dict[str, str]:
    if not DEV_TSV.is_file():
        pytest.skip(f"{DEV_TSV} is absent (the shared folder is not beside this checkout)")
    return {c.text: c.label for c in load_cases(DEV_TSV)}


def _p(judge: LlmJudge, text: str, language: str, context: tuple[Line, ...] = ()) -> float:
    return judge.judge([*context, Line("caller", text)], language=language).p_complete


@pytest.mark.parametrize("language", ["en", "it"])
def test_a_finished_line_and_an_unfinished_one_get_different_verdicts(model: LlamaModel, judge: LlmJudge,
                                                                      language: str) -> None:
    finished, unfinished = PLAIN[language]
    assert _p(judge, finished, language) >= THRESHOLD > _p(judge, unfinished, language)
    # the model alone, calibrated, tells them apart too, with or without punctuation
    alone = LlmJudge(model, LlmJudgeOptions(mode="llm"))
    assert alone.calibration is not None and not alone.calibration.uses_rules
    for text in (finished, unpunctuated(finished)):
        assert _p(alone, text, language) >= THRESHOLD, text
    for text in (unfinished, unpunctuated(unfinished)):
        assert _p(alone, text, language) < THRESHOLD, text


@pytest.mark.parametrize("language", ["en", "it"])
def test_held_out_lines_fall_on_the_right_side_of_the_threshold(judge: LlmJudge, dev_labels: dict[str, str],
                                                               language: str) -> None:
    wrong = []
    for text in HELD_OUT[language]:
        label = dev_labels[text]
        for heard in (text, unpunctuated(text)):
            p = _p(judge, heard, language)
            if (p >= THRESHOLD) != (label == "COMPLETE"):
                wrong.append(f"{label} p={p:.2f} {heard!r}")
    assert not wrong, "\n".join(wrong)


def test_the_bots_question_is_read_with_the_digits(judge: LlmJudge) -> None:
    asked = (Line("bot", "What number can he call you back on?"),)
    partial = _p(judge, "three four seven", "en", asked)
    assert partial < THRESHOLD
    whole = _p(judge, "five five six seven", "en",
               (*asked, Line("caller", "three four seven"), Line("caller", "eight one two")))
    assert whole > partial
