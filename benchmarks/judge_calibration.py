"""Calibrate the LLM turn judge per model, and measure every judge mode on held-out lines.

    python benchmarks/judge_calibration.py [--model FILE.gguf ...] [--write] [--cache scores.json]

For each GGUF (default: the three judge candidates under the models folder) every labelled case of
`tests/data/turns/` and of `../shared/turns/dev.tsv` is judged as written and unpunctuated, and the
model's raw score (the log-probability that its next token ends the caller's message: `models.judge_llm`)
is kept with the rules judge's verdict. Then:

- rules      the rules judge's own p_complete (no fitting);
- llm        a logistic calibration of the raw score (Platt scaling);
- combined   a logistic regression on the raw score and the logit of the rules' p_complete;
- gated      combined, except that where the rules are sure (p_complete <= 0.15 or >= 0.8) their
             verdict stands and the model is not run: the judge's default (`LlmJudgeOptions.rules_gate`).

The calibration set is cut into 5 folds by conversation (a list's items stay together); each fold is
judged by a fit on the other four ("cv"); then one fit on all of it is judged on dev.tsv ("dev"), which
no fit ever sees, and on `tests/data/turns/fresh/` ("fresh"), lines written after the rules and the
prompt were settled, so that nothing was tuned on them either. The operating point is the core's
threshold, 0.5, on the calibrated p_complete; the threshold that would have been best on the cv
predictions is reported beside it. Latency is one whole verdict with the prompt prefix cached
(n_threads=2) on one calibration line in ten: with the model run on every line ("model") and with the
rules gate ("gated"; the model is skipped on `gated_share` of the lines). Timings depend on the load of
the machine; the AUC and accuracy figures do not.

`--write` stores the fits on all of the calibration set in `models/judge_calibration_table.py`,
where the judge finds them. `--cache` keeps raw scores between runs (keyed by model, prompt and story).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

from models.judge_calibration import IDENTITY, TABLE, Calibration, fit_logistic, logit, sigmoid  # noqa: E402
from models.judge_cases import Case, load_cases  # noqa: E402
from models.judge_rules import RulesJudge  # noqa: E402
from models.llama import LlamaOptions  # noqa: E402

CASES = ROOT / "tests" / "data" / "turns"
FRESH = CASES / "fresh"  # written after the rules and the prompt were settled
DEV = SHARED / "turns" / "dev.tsv"
MODELS = ("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
          "SmolLM2-135M-Instruct.Q4_1.gguf")
FOLDS = 5
THRESHOLD = 0.5
MODES = ("rules", "llm", "combined", "gated")
GATE = (0.15, 0.8)  # LlmJudgeOptions.rules_gate
LATENCY_EVERY = 10  # one row in ten is judged again, timed, for the latency figures


def _llama_options() -> LlamaOptions:
    return LlamaOptions(n_ctx=2048, n_threads=2)  # two threads: the 2-core box the figures are for


@dataclass(frozen=True, slots=True)
class Row:
    """One case judged one way (as written or unpunctuated)."""

    case: Case
    punctuated: bool
    rules_p: float
    score: float = 0.0  # the model's raw score

    @property
    def y(self) -> int:
        return int(self.case.complete)


# --------------------------------------------------------------------------- measures


def auc(p: Sequence[float], y: Sequence[int]) -> float:
    """Area under the ROC curve: how often a COMPLETE line scores above a WAIT line (ties count half)."""
    p_, y_ = np.asarray(p, dtype=float), np.asarray(y)
    pos, neg = p_[y_ == 1], p_[y_ == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def accuracy(p: Sequence[float], y: Sequence[int], threshold: float = THRESHOLD) -> float:
    return float(np.mean((np.asarray(p) >= threshold) == (np.asarray(y) == 1)))


def cells(rows: Sequence[Row], p: Sequence[float]) -> dict[str, dict[str, float]]:
    """AUC and accuracy per language and punctuation, and over all rows."""
    out = {}
    groups: dict[str, list[int]] = {"all": list(range(len(rows)))}
    for i, r in enumerate(rows):
        groups.setdefault(f"{r.case.language}-{'punct' if r.punctuated else 'plain'}", []).append(i)
    for name, idx in sorted(groups.items()):
        pp, yy = [p[i] for i in idx], [rows[i].y for i in idx]
        out[name] = {"n": len(idx), "auc": round(auc(pp, yy), 3), "accuracy": round(accuracy(pp, yy), 3)}
    return out


def reliability(p: Sequence[float], y: Sequence[int], bins: int = 5) -> list[dict[str, Any]]:
    """Mean p_complete against the share of COMPLETE lines, in bins of p_complete."""
    p_, y_ = np.asarray(p), np.asarray(y)
    out = []
    for k in range(bins):
        lo, hi = k / bins, (k + 1) / bins
        sel = (p_ >= lo) & ((p_ < hi) if k < bins - 1 else (p_ <= hi))
        if sel.any():
            out.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": int(sel.sum()),
                        "mean_p": round(float(p_[sel].mean()), 3),
                        "complete": round(float(y_[sel].mean()), 3)})
    return out


def best_threshold(p: Sequence[float], y: Sequence[int]) -> tuple[float, float]:
    candidates = np.round(np.arange(0.05, 0.96, 0.05), 2)
    scored = [(accuracy(p, y, float(t)), -abs(float(t) - THRESHOLD), float(t)) for t in candidates]
    acc, _, t = max(scored)
    return t, round(acc, 3)


# --------------------------------------------------------------------------- fitting


def gated(row: Row) -> bool:
    return not GATE[0] < row.rules_p < GATE[1]


def features(rows: Sequence[Row], mode: str) -> np.ndarray:
    if mode == "llm":
        return np.array([[r.score] for r in rows])
    return np.array([[r.score, logit(r.rules_p)] for r in rows])


def fit(rows: Sequence[Row], mode: str) -> Calibration:
    """The calibration of `mode` fitted on `rows` (gated uses the combined fit, on every row: the
    gate decides only which verdicts it is asked for)."""
    weights, bias = fit_logistic(features(rows, mode), np.array([r.y for r in rows]))
    if mode == "llm":
        return Calibration(llm=float(weights[0]), rules=0.0, bias=bias)
    return Calibration(llm=float(weights[0]), rules=float(weights[1]), bias=bias)


def predict(rows: Sequence[Row], mode: str, calibration: Calibration | None) -> list[float]:
    if mode == "rules":
        return [r.rules_p for r in rows]
    assert calibration is not None
    p = [calibration.p_complete(r.score, r.rules_p if calibration.uses_rules else None) for r in rows]
    if mode == "gated":
        p = [r.rules_p if gated(r) else value for r, value in zip(rows, p, strict=True)]
    return p


def cross_validate(rows: Sequence[Row], mode: str) -> list[float]:
    p = [0.0] * len(rows)
    for fold in range(FOLDS):
        train = [r for r in rows if r.case.fold(FOLDS) != fold]
        test = [i for i, r in enumerate(rows) if r.case.fold(FOLDS) == fold]
        calibration = None if mode == "rules" else fit(train, mode)
        for i, value in zip(test, predict([rows[i] for i in test], mode, calibration), strict=True):
            p[i] = value
    return p


def evaluate(train: Sequence[Row], held_out: dict[str, list[Row]], mode: str) -> dict[str, Any]:
    cv = cross_validate(train, mode)
    calibration = None if mode == "rules" else fit(train, mode)
    threshold, best = best_threshold(cv, [r.y for r in train])
    result: dict[str, Any] = {"cv": cells(train, cv)}
    for name, rows in held_out.items():
        result[name] = cells(rows, predict(rows, mode, calibration))
    result |= {"best_cv_threshold": threshold, "cv_accuracy_at_best_threshold": best,
               "cv_reliability": reliability(cv, [r.y for r in train])}
    if calibration is not None:
        result["calibration"] = {"llm": round(calibration.llm, 4), "rules": round(calibration.rules, 4),
                                 "bias": round(calibration.bias, 4)}
    return result


# --------------------------------------------------------------------------- judging


def rules_rows(cases: Sequence[Case]) -> list[Row]:
    judge = RulesJudge()
    return [Row(c, punct, judge.judge(c.story(punctuated=punct), language=c.language).p_complete)
            for c in cases for punct in (True, False)]


def score_rows(rows: Sequence[Row], path: Path, cache: dict[str, float]) -> list[Row]:
    """`rows` with the model's raw scores."""
    from models.judge_llm import LlmJudge, LlmJudgeOptions, prompt_fingerprint
    from models.llama import load_llama

    options = LlmJudgeOptions(calibration=IDENTITY)
    prompt = prompt_fingerprint(options)
    judge: LlmJudge | None = None
    out = []
    for n, row in enumerate(rows):
        story = row.case.story(punctuated=row.punctuated)
        key = json.dumps([path.name, prompt, row.case.language, [(x.role, x.text) for x in story]])
        if key not in cache:
            if judge is None:
                judge = LlmJudge(load_llama(path, _llama_options()), options)
                judge.warm_up()
            score = judge.score(story, language=row.case.language)
            assert score is not None
            cache[key] = score
        out.append(Row(row.case, row.punctuated, row.rules_p, cache[key]))
        if n % 100 == 99:
            print(f"  {path.name}: {n + 1}/{len(rows)}", file=sys.stderr, flush=True)
    return out


def verdict_seconds(path: Path, rows: Sequence[Row], calibration: Calibration,
                    gate: tuple[float, float] | None) -> list[float]:
    """Seconds per whole verdict (rules, the model's pass unless the gate skips it, the calibration)
    with the prompt prefix cached, on `rows`."""
    from models.judge_llm import LlmJudge, LlmJudgeOptions
    from models.llama import load_llama

    options = LlmJudgeOptions(calibration=calibration, rules_gate=gate)
    judge = LlmJudge(load_llama(path, _llama_options()), options)
    judge.warm_up()
    seconds = []
    for row in rows:
        story = row.case.story(punctuated=row.punctuated)
        start = time.perf_counter()
        judge.judge(story, language=row.case.language)
        seconds.append(time.perf_counter() - start)
    return seconds


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- report


def table(results: dict[str, Any], split: str) -> str:
    columns = ["en-punct", "en-plain", "it-punct", "it-plain", "all"]
    lines = [f"| model | mode | {' | '.join(columns)} |", "|---|---|" + "---|" * len(columns)]
    for model, by_mode in results.items():
        for mode, r in by_mode.items():
            if not isinstance(r, dict) or split not in r:
                continue
            cells_ = [f"{r[split][c]['auc']:.2f} / {r[split][c]['accuracy']:.2f}" for c in columns]
            lines.append(f"| {model} | {mode} | {' | '.join(cells_)} |")
    return "\n".join(lines)


def write_table(entries: dict[str, dict[str, Any]], path: Path = TABLE) -> None:
    """Store `entries` in the calibration table module, keeping the other models' entries as they are."""
    import importlib

    import models.judge_calibration_table as shipped

    entries = {**importlib.reload(shipped).CALIBRATIONS, **entries}
    out = ['"""Judge calibrations, one entry per GGUF file name (see `models.judge_calibration`):',
           "p_complete = sigmoid(llm * score + rules * logit(p_rules) + bias). Written by",
           "`benchmarks/judge_calibration.py --write` from tests/data/turns/; `prompt` is",
           '`models.judge_llm.prompt_fingerprint()` at the time, `size` and `sha256` are the GGUF\'s."""',
           "", "from typing import Any", "", "CALIBRATIONS: dict[str, dict[str, Any]] = {"]
    for name, entry in entries.items():
        out += [f"    {json.dumps(name)}: {{", f'        "size": {entry["size"]},',
                f'        "sha256": {json.dumps(entry["sha256"])},',
                f'        "prompt": {json.dumps(entry["prompt"])},']
        for mode in ("llm", "combined"):
            c = entry[mode]
            values = ", ".join(f'"{k}": {c[k]}' for k in ("llm", "rules", "bias"))
            out.append(f'        "{mode}": {{{values}}},')
        out.append("    },")
    out.append("}")
    path.write_text("\n".join(out) + "\n")


def measure(path: Path, train: list[Row], held_out: dict[str, list[Row]], cache: dict[str, float]
            ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One model's results per mode, its latency, and its calibration table entry."""
    from models.judge_llm import prompt_fingerprint

    scored_train = score_rows(train, path, cache)
    scored = {split: score_rows(rows, path, cache) for split, rows in held_out.items()}
    results: dict[str, Any] = {mode: evaluate(scored_train, scored, mode)
                               for mode in ("llm", "combined", "gated")}
    raw = [sigmoid(r.score) for r in scored_train]
    results["raw_sigmoid_accuracy"] = cells(scored_train, raw)["all"]["accuracy"]
    sample = scored_train[::LATENCY_EVERY]
    combined = Calibration(**results["combined"]["calibration"])
    latency: dict[str, Any] = {"verdicts": len(sample),
                               "gated_share": round(float(np.mean([gated(r) for r in scored_train])), 3)}
    for name, gate in (("model", None), ("gated", GATE)):
        times = sorted(verdict_seconds(path, sample, combined, gate))
        latency[f"{name}_median_ms"] = round(1000 * statistics.median(times), 1)
        latency[f"{name}_p90_ms"] = round(1000 * times[int(0.9 * (len(times) - 1))], 1)
    entry = {"size": path.stat().st_size, "sha256": sha256(path), "prompt": prompt_fingerprint(),
             **{mode: results[mode]["calibration"] for mode in ("llm", "combined")}}
    return results, latency, entry


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, action="append",
                        help="a GGUF (repeatable); default: the three judge candidates in --models-dir")
    parser.add_argument("--models-dir", type=Path, default=Path("/var/lib/standin/models/llm"))
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "judge_calibration.json")
    parser.add_argument("--cache", type=Path, help="a JSON file keeping raw scores between runs")
    parser.add_argument("--write", action="store_true", help=f"store the fits in {TABLE.name}")
    args = parser.parse_args(argv)
    if not DEV.is_file():
        parser.error(f"{DEV} is missing: the held-out lines sit beside the checkout")
    paths = args.model or [args.models_dir / name for name in MODELS]
    paths = [p for p in paths if p.is_file()] or parser.error("none of the models is there")
    cache: dict[str, float] = {}
    if args.cache and args.cache.is_file():
        cache = json.loads(args.cache.read_text())

    train_cases, dev_cases, fresh_cases = load_cases(CASES), load_cases(DEV), load_cases(FRESH)
    train = rules_rows(train_cases)
    held_out = {"dev": rules_rows(dev_cases), "fresh": rules_rows(fresh_cases)}
    results: dict[str, Any] = {"rules": {"rules": evaluate(train, held_out, "rules")}}
    entries: dict[str, dict[str, Any]] = {}
    latency: dict[str, Any] = {}
    for path in paths:
        results[path.name], latency[path.name], entries[path.name] = measure(path, train, held_out, cache)
        if args.cache:
            args.cache.write_text(json.dumps(cache))
    rules = RulesJudge()
    start = time.perf_counter()
    for r in train:
        rules.judge(r.case.story(punctuated=r.punctuated), language=r.case.language)
    latency["rules"] = {"median_ms": round(1000 * (time.perf_counter() - start) / len(train), 3)}

    report = {
        "cases": {"calibration": len(train_cases), "dev": len(dev_cases), "fresh": len(fresh_cases),
                  "complete_share": round(float(np.mean([c.complete for c in train_cases])), 3)},
        "operating_point": THRESHOLD, "folds": FOLDS, "results": results, "latency": latency,
    }
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print("AUC / accuracy at p_complete >= 0.5, held-out folds of tests/data/turns (cv):")
    print(table(results, "cv"))
    print("\n... on ../shared/turns/dev.tsv (never fitted on):")
    print(table(results, "dev"))
    print("\n... on tests/data/turns/fresh/ (written after rules and prompt were settled):")
    print(table(results, "fresh"))
    print("\nlatency:", json.dumps(latency))
    if args.write:
        write_table(entries)
        print(f"wrote {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
