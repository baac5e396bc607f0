"""Benchmarks of the SIP endpoint: the delay the SIP bridge adds, and how many calls two cores carry.

    python benchmarks/sip_all.py [--shared ../shared] [--json benchmarks/sip.json] [--runs 3]
                                 [--steps 1,2,4,...]

Runs both, one after the other, and writes one JSON object: {"machine", "bridge_overhead",
"concurrent_calls"}. Their docstrings have the methods, and each runs on its own too (writing the machine
and its own part):

1. benchmarks/sip_overhead.py, the bridge overhead: the extra voice-to-voice delay of the SIP path over
   `standin simulate` (--shared, --scenarios, --runs, --variant; --skip-overhead leaves it out);
2. benchmarks/sip_calls.py, concurrent calls: a ramp of simultaneous SIPp calls into standin processes,
   late frames, CPU per call (--steps, --calls-per-process; --skip-concurrency leaves it out).

What they share (engines, what standin's side records, ports, command line, JSON) is benchmarks/sip_kit.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import sip_calls, sip_overhead
from benchmarks import sip_kit as kit


def main() -> None:
    found = kit.parser(__doc__)
    sip_overhead.add_arguments(found)
    sip_calls.add_arguments(found)
    found.add_argument("--skip-overhead", action="store_true")
    found.add_argument("--skip-concurrency", action="store_true")
    args = kit.parse(found)
    parts: dict[str, kit.Measure] = {}
    if not args.skip_overhead:
        parts["bridge_overhead"] = sip_overhead.measure
    if not args.skip_concurrency:
        parts["concurrent_calls"] = sip_calls.measure
    kit.measure_and_write(args, parts)


if __name__ == "__main__":
    main()
