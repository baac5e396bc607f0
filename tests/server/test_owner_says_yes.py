"""The owner's spoken answer on the call to them: their line is cut into stretches of voice (OwnerEar),
heard by the call's STT and handed to the core as OwnerSaid, on real audio and real whisper weights."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from server.audio import CALL_RATE, FRAME
from server.core import events as ev
from server.core.ringthrough import owner_answer
from server.ringthrough import OwnerEar, RingDriver
from tests.real_models import real_config, speak


class Leg:
    """The owner's side of the call as RingDriver reads it: their frames, 20 ms at a time."""

    def __init__(self, pcm: np.ndarray) -> None:
        self.pcm = pcm

    async def frames(self) -> AsyncIterator[np.ndarray]:
        for i in range(0, len(self.pcm) - FRAME + 1, FRAME):
            yield self.pcm[i:i + FRAME]
            await asyncio.sleep(0)


def test_the_ear_cuts_one_stretch_per_answer_and_ignores_a_click() -> None:
    ear = OwnerEar()
    tone = (3000 * np.sin(np.arange(CALL_RATE) * 2 * np.pi * 200 / CALL_RATE)).astype(np.int16)
    click = np.zeros(CALL_RATE, np.int16)
    click[100:140] = 20000
    line = np.concatenate([np.zeros(CALL_RATE // 2, np.int16), tone, np.zeros(CALL_RATE, np.int16), click,
                           np.zeros(CALL_RATE, np.int16)])
    cut = [s for i in range(0, len(line), FRAME) if (s := ear.push(line[i:i + FRAME])) is not None]
    assert len(cut) == 1 and CALL_RATE <= len(cut[0]) <= CALL_RATE * 1.6


def test_the_owner_saying_yes_reaches_the_core_as_an_accepting_answer(tmp_path: Path) -> None:
    from server.engines import build_stt

    stt = build_stt(real_config(tmp_path))
    owner = np.concatenate([speak("Yes, put them through.", lead_s=0.8, tail_s=1.0),
                            np.zeros(CALL_RATE // 2, np.int16)])
    delivered: list[Any] = []
    driver = RingDriver(Any, None, "sip:owner@192.168.1.20", tts=Any, owner_language="en",  # type: ignore[arg-type]
                        deliver=delivered.append, now=lambda: 9.0, record_owner=lambda pcm: None, stt=stt)

    async def run() -> None:
        driver.timings["answered_ms"] = 1.0  # picked up: from now on the owner is listened to
        await driver._read(Leg(owner), 1)
        while driver._tasks:
            await asyncio.gather(*driver._tasks)

    asyncio.run(run())
    [said] = delivered
    assert isinstance(said, ev.OwnerSaid) and said.attempt == 1
    assert owner_answer(said.text) is True, said.text
