"""Calibration of the LLM turn judge: from a model's raw score to a p_complete the core can trust.

A judge model's raw score is the log-probability that its next token ends the caller's message
(`models.judge_llm`). It is no probability of a finished turn: for the 0.5B a bare "is he in the office
today" scores -0.2 (a question mark comes next), "I need you to tell him three things" -2.5 and "I was
calling about the" -8.8, but where a finished turn gives way to an unfinished one differs from model to
model, and between languages. So each model gets a logistic calibration,
fitted on labelled cases (`tests/data/turns/`, by `benchmarks/judge_calibration.py`):

    p_complete = sigmoid(llm * score + bias)                            mode "llm"
    p_complete = sigmoid(llm * score + rules * logit(p_rules) + bias)   mode "combined"

where p_rules is the rules judge's verdict on the same story: where the rules are sure (a trailing
"and", a question mark) their logit is large and carries the verdict; where they are not (an
unpunctuated line) it is near zero and the model decides. The fitted parameters live in
`models/judge_calibration_table.py` (a module, so that it ships wherever the code does), one entry per
GGUF file name, with the file's size and sha256 and the fingerprint of the prompt they were fitted
with. A model without an entry, or whose file or prompt differs from the entry's, is uncalibrated: its
p_complete is sigmoid(score), as before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TABLE", "Calibration", "Entry", "fit_logistic", "load_table", "logit", "lookup", "sigmoid"]

TABLE = Path(__file__).with_name("judge_calibration_table.py")
MODES = ("llm", "combined")
_P_FLOOR = 0.01  # rules' p_complete is clipped to [0.01, 0.99] before its logit is taken


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    return math.exp(x) / (1.0 + math.exp(x))


def logit(p: float) -> float:
    p = min(max(p, _P_FLOOR), 1.0 - _P_FLOOR)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True, slots=True)
class Calibration:
    """p_complete = sigmoid(llm * score + rules * logit(p_rules) + bias). The default is the identity:
    the raw score through a sigmoid."""

    llm: float = 1.0
    rules: float = 0.0  # 0: the rules judge is not consulted
    bias: float = 0.0

    @property
    def uses_rules(self) -> bool:
        return self.rules != 0.0

    def p_complete(self, score: float, p_rules: float | None = None) -> float:
        x = self.llm * score + self.bias
        if self.uses_rules:
            if p_rules is None:
                raise ValueError("this calibration combines the rules judge's verdict: pass p_rules")
            x += self.rules * logit(p_rules)
        return sigmoid(x)


IDENTITY = Calibration()


@dataclass(frozen=True, slots=True)
class Entry:
    """The calibrations fitted for one GGUF file and one judge prompt."""

    file: str  # the GGUF's file name
    size: int  # its size in bytes, checked at load (cheap; the sha256 is for people and the benchmark)
    sha256: str
    prompt: str  # fingerprint of the judge prompt the fit was made with (`LlmJudge.fingerprint`)
    modes: dict[str, Calibration]  # "llm" and/or "combined"


def load_table(data: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Entry]:
    """The calibration table (`data`, by default the shipped one): GGUF file name -> `Entry`."""
    if data is None:
        from models.judge_calibration_table import CALIBRATIONS

        data = CALIBRATIONS
    table = {}
    for name, item in data.items():
        modes = {mode: Calibration(**{k: float(v) for k, v in item[mode].items()})
                 for mode in MODES if mode in item}
        table[name] = Entry(name, int(item["size"]), str(item.get("sha256", "")), str(item["prompt"]), modes)
    return table


def lookup(model: Path, prompt: str, mode: str, table: dict[str, Entry] | None = None
           ) -> tuple[Calibration | None, str]:
    """The calibration of `model` (a GGUF path) for `prompt` in `mode`, or None and why there is none."""
    if mode not in MODES:
        raise ValueError(f"judge calibration mode must be one of {', '.join(MODES)}, not {mode!r}")
    entry = (load_table() if table is None else table).get(model.name)
    if entry is None:
        return None, f"{model.name} has no entry in {TABLE.name}"
    try:
        size = model.stat().st_size
    except OSError:
        size = -1
    if size != entry.size:
        return None, (f"{model.name} is not the file {TABLE.name} was fitted on "
                      f"({size} bytes, not {entry.size})")
    if prompt != entry.prompt:
        return None, f"the judge prompt changed since {model.name} was calibrated"
    if mode not in entry.modes:
        return None, f"{TABLE.name} has no {mode!r} calibration for {model.name}"
    return entry.modes[mode], ""


def fit_logistic(features: np.ndarray, labels: np.ndarray, *, l2: float = 0.01, iterations: int = 100
                 ) -> tuple[np.ndarray, float]:
    """Weights and bias of a logistic regression of `labels` (0/1) on `features` (rows of numbers),
    by Newton's method with a small L2 penalty on the weights (not the bias), so that separable data
    still gives finite weights."""
    x = np.column_stack([np.asarray(features, dtype=float), np.ones(len(features))])
    y = np.asarray(labels, dtype=float)
    penalty = np.diag([l2] * (x.shape[1] - 1) + [0.0])
    w = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        gradient = x.T @ (p - y) + penalty @ w
        hessian = x.T @ (x * (p * (1.0 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if float(np.abs(step).max()) < 1e-9:
            break
    return w[:-1], float(w[-1])
