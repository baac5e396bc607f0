"""The judge's calibration and the labelled cases, without real weights: the logistic fit, the table
and its lookup, the combination with the rules judge (on a tiny random GGUF), the case files."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest

from models.engines import Line
from models.judge_calibration import (
    IDENTITY,
    TABLE,
    Calibration,
    fit_logistic,
    load_table,
    logit,
    lookup,
    sigmoid,
)
from models.judge_cases import Case, load_cases, unpunctuated
from models.judge_llm import LlmJudge, LlmJudgeOptions, prompt_fingerprint
from models.judge_rules import RulesJudge
from models.llama import LlamaModel

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "data" / "turns"

# --------------------------------------------------------------------------- the calibration


def test_identity_is_the_raw_sigmoid() -> None:
    for score in (-8.0, -1.5, 0.0, 2.5):
        assert IDENTITY.p_complete(score) == pytest.approx(1 / (1 + math.exp(-score)))
    assert not IDENTITY.uses_rules


def test_combined_weighs_the_rules_verdict() -> None:
    c = Calibration(llm=0.8, rules=1.2, bias=1.5)
    assert c.uses_rules
    assert c.p_complete(-2.0, 0.4) == pytest.approx(sigmoid(0.8 * -2.0 + 1.2 * math.log(0.4 / 0.6) + 1.5))
    # where the rules are sure they carry the verdict; where they are unsure the model decides
    assert c.p_complete(0.0, 0.05) < 0.5 < c.p_complete(0.0, 0.95)
    assert c.p_complete(-6.0, 0.5) < 0.5 < c.p_complete(2.0, 0.5)
    with pytest.raises(ValueError, match="p_rules"):
        c.p_complete(0.0)


def test_logit_is_clipped() -> None:
    assert logit(0.0) == pytest.approx(math.log(0.01 / 0.99))
    assert logit(1.0) == pytest.approx(-logit(0.0))
    assert sigmoid(-800.0) == 0.0 and sigmoid(800.0) == 1.0  # no overflow either way


def test_fit_recovers_known_parameters() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2)) * 2
    y = (rng.random(4000) < 1 / (1 + np.exp(-(1.5 * x[:, 0] - 0.7 * x[:, 1] + 0.4)))).astype(int)
    weights, bias = fit_logistic(x, y, l2=0.0)
    assert weights == pytest.approx([1.5, -0.7], abs=0.15)
    assert bias == pytest.approx(0.4, abs=0.15)


def test_fit_stays_finite_on_separable_data() -> None:
    weights, bias = fit_logistic(np.array([[-2.0], [-1.0], [1.0], [2.0]]), np.array([0, 0, 1, 1]))
    assert np.isfinite(weights).all() and math.isfinite(bias)
    assert weights[0] > 0


# --------------------------------------------------------------------------- the table


def _table(model: Path, prompt: str = "abc") -> dict[str, dict[str, object]]:
    return {model.name: {"size": model.stat().st_size, "sha256": "00", "prompt": prompt,
                         "llm": {"llm": 0.5, "rules": 0.0, "bias": 1.0},
                         "combined": {"llm": 0.4, "rules": 0.9, "bias": 1.2}}}


def test_lookup_finds_the_model_by_file_name_size_and_prompt(tmp_path: Path) -> None:
    model = tmp_path / "judge.gguf"
    model.write_bytes(b"x" * 100)
    table = load_table(_table(model))
    assert lookup(model, "abc", "llm", table) == (Calibration(0.5, 0.0, 1.0), "")
    assert lookup(model, "abc", "combined", table) == (Calibration(0.4, 0.9, 1.2), "")
    assert lookup(model, "other", "llm", table) == (None, f"the judge prompt changed since {model.name} "
                                                          "was calibrated")
    other = tmp_path / "other.gguf"
    other.write_bytes(b"x")
    assert lookup(other, "abc", "llm", table)[1].endswith("has no entry in judge_calibration_table.py")
    model.write_bytes(b"x" * 101)  # same name, another file
    calibration, why = lookup(model, "abc", "llm", table)
    assert calibration is None and "101 bytes, not 100" in why
    with pytest.raises(ValueError, match="mode"):
        lookup(model, "abc", "rules", table)


def test_an_empty_table_has_no_entries() -> None:
    assert load_table({}) == {}


def test_the_shipped_table_matches_the_judge_prompt() -> None:
    """Change the prompt and this fails: run benchmarks/judge_calibration.py --write again."""
    table = load_table()
    assert table, f"{TABLE} has no calibration"
    for entry in table.values():
        assert entry.prompt == prompt_fingerprint(), f"{entry.file} was calibrated for another prompt"
        assert set(entry.modes) == {"llm", "combined"}
        assert entry.modes["llm"].llm > 0 and entry.modes["combined"].rules > 0


# --------------------------------------------------------------------------- the judge, on a tiny model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> LlamaModel:
    pytest.importorskip("llama_cpp", reason="pip install llama-cpp-python")
    pytest.importorskip("gguf", reason="gguf is not installed (pip install gguf)")
    from models.llama import LlamaOptions, load_llama
    from tests.models.tiny_gguf import write_tiny_llama

    path = write_tiny_llama(tmp_path_factory.mktemp("gguf") / "calibration-tiny.gguf")
    return load_llama(path, LlamaOptions(n_ctx=2048, n_threads=1, seed=1))


STORY = [Line("bot", "What number can he call you back on?"), Line("caller", "three four seven and")]
UNSURE = [Line("bot", "Go ahead."), Line("caller", "he left the keys with the neighbour")]


@pytest.mark.parametrize("story", [STORY, UNSURE], ids=["sure-rules", "unsure-rules"])
def test_a_calibrated_judge_combines_score_and_rules(tiny_model: LlamaModel, story: list[Line]) -> None:
    calibration = Calibration(llm=0.7, rules=1.1, bias=0.9)
    judge = LlmJudge(tiny_model, LlmJudgeOptions(calibration=calibration, rules_gate=None))
    score = judge.score(story, language="en")
    assert score is not None
    rules = RulesJudge().judge(story, language="en")
    verdict = judge.judge(story, language="en")
    assert verdict.p_complete == pytest.approx(calibration.p_complete(score, rules.p_complete), abs=1e-6)
    assert verdict.reason == f"llm+{rules.reason}"


def test_where_the_rules_are_sure_the_model_is_not_run(tiny_model: LlamaModel) -> None:
    calibration = Calibration(llm=0.7, rules=1.1, bias=0.9)
    judge = LlmJudge(tiny_model, LlmJudgeOptions(calibration=calibration))  # the default gate
    rules = RulesJudge().judge(STORY, language="en")
    assert rules.p_complete <= 0.15  # a trailing "and"
    assert judge.judge(STORY, language="en") == rules
    assert judge.last_evaluated == 0
    unsure = judge.judge(UNSURE, language="en")
    assert unsure.reason == "llm+unpunctuated" and judge.last_evaluated > 0
    assert judge.judge([Line("caller", "...")], language="en").reason == "empty"


def test_a_calibrated_judge_alone(tiny_model: LlamaModel) -> None:
    judge = LlmJudge(tiny_model, LlmJudgeOptions(mode="llm", calibration=Calibration(llm=0.5, bias=2.0)))
    score = judge.score(STORY, language="it")
    assert score is not None
    verdict = judge.judge(STORY, language="it")
    assert verdict.p_complete == pytest.approx(sigmoid(0.5 * score + 2.0), abs=1e-6)
    assert verdict.reason == "llm-calibrated"


def test_an_uncalibrated_model_gives_the_raw_sigmoid_and_says_so(
        tiny_model: LlamaModel, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="models.judge_llm"):
        judge = LlmJudge(tiny_model)
    assert judge.calibration is None
    assert "uncalibrated" in caplog.text and "judge_calibration.py" in caplog.text
    score = judge.score(STORY, language="en")
    assert score is not None
    verdict = judge.judge(STORY, language="en")
    assert verdict.p_complete == pytest.approx(sigmoid(score), abs=1e-6) and verdict.reason == "llm"
    assert judge.judge([Line("bot", "Hello?")], language="en").reason == "empty"


def test_the_prompt_fingerprint_follows_the_prompt() -> None:
    assert prompt_fingerprint() == prompt_fingerprint(LlmJudgeOptions(mode="llm"))
    assert prompt_fingerprint() != prompt_fingerprint(LlmJudgeOptions(max_lines=3))


# --------------------------------------------------------------------------- the cases


def test_unpunctuated_keeps_words_digits_and_inner_apostrophes() -> None:
    assert unpunctuated("M-O-R-R-I-S, Morris.") == "m o r r i s morris"
    assert unpunctuated("It's 347 812... 'Via Roma'?") == "it's 347 812 via roma"
    assert unpunctuated("L’indirizzo è: via dell'Orso, 8!") == "l'indirizzo è via dell'orso 8"


def test_the_calibration_cases() -> None:
    cases = load_cases(CASES)
    assert len(cases) >= 300
    for language in ("en", "it"):
        mine = [c for c in cases if c.language == language]
        assert len(mine) >= 0.4 * len(cases)
        assert 0.3 < np.mean([c.complete for c in mine]) < 0.7
    kinds = {c.kind for c in cases}
    assert {"list", "opener", "intro", "number", "spelling", "address", "hesitation", "trailing", "tag",
            "question", "request", "closing", "slow"} <= kinds
    # the bot's question is part of the story the judge reads
    asked = [c for c in cases if c.context and c.context[-1].role == "bot"]
    assert len(asked) >= 40
    assert all(c.story()[-1] == Line("caller", c.text) for c in cases)
    dev = ROOT.parent / "shared" / "turns" / "dev.tsv"
    if dev.is_file():  # the held-out stories are not among the calibration cases
        held_out = {tuple(c.story()) for c in load_cases(dev)}
        assert not held_out & {tuple(c.story()) for c in cases}


def test_a_case_story_with_and_without_punctuation() -> None:
    case = Case("WAIT", "en", "Eight, one, two.",
                (Line("bot", "What number can he call you back on?"), Line("caller", "Three four seven.")))
    assert case.story(punctuated=False) == [
        Line("bot", "What number can he call you back on?"), Line("caller", "three four seven"),
        Line("caller", "eight one two")]
    assert case.group == "what number can he call you back on?"
    assert case.fold(5) == Case("COMPLETE", "en", "x", case.context[:1]).fold(5)


def test_a_malformed_case_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("label\tlanguage\ttext\nMAYBE\ten\tHello.\n")
    with pytest.raises(ValueError, match=r"bad\.tsv:2: label 'MAYBE'"):
        load_cases(path)
    path.write_text("label\tlanguage\tcontext\ttext\nWAIT\ten\tX: hi\tHello.\n")
    with pytest.raises(ValueError, match="must start with 'B: ' or 'C: '"):
        load_cases(path)
