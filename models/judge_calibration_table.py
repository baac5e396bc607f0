"""Judge calibrations, one entry per GGUF file name (see `models.judge_calibration`):
p_complete = sigmoid(llm * score + rules * logit(p_rules) + bias). Written by
`benchmarks/judge_calibration.py --write` from tests/data/turns/; `prompt` is
`models.judge_llm.prompt_fingerprint()` at the time, `size` and `sha256` are the GGUF's."""

from typing import Any

CALIBRATIONS: dict[str, dict[str, Any]] = {
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf": {
        "size": 1117320768,
        "sha256": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "prompt": "d9a5fcc06541",
        "llm": {"llm": 1.0205, "rules": 0.0, "bias": 2.2177},
        "combined": {"llm": 0.8409, "rules": 1.7691, "bias": 2.5078},
    },
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf": {
        "size": 491400064,
        "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "prompt": "d9a5fcc06541",
        "llm": {"llm": 0.6897, "rules": 0.0, "bias": 2.2454},
        "combined": {"llm": 0.7195, "rules": 2.2578, "bias": 2.944},
    },
    "SmolLM2-135M-Instruct.Q4_1.gguf": {
        "size": 98362432,
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "prompt": "d9a5fcc06541",
        "llm": {"llm": 0.5599, "rules": 0.0, "bias": 1.686},
        "combined": {"llm": 0.4362, "rules": 2.1676, "bias": 1.8499},
    },
}
