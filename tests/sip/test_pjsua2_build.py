"""The pjsua2 binding built by sip/build_pjsua2.sh: AudioMediaPort frames flow through the bridge.

The endpoint runs in a child process so that an abort at exit (the known trap when an
AudioMediaPort outlives libDestroy()) fails the test instead of killing pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

try:
    import pjsua2
except ImportError as exc:  # pragma: no cover - depends on the machine
    pytest.skip(
        f"pjsua2 is not importable ({exc}); build and install it with sip/build_pjsua2.sh",
        allow_module_level=True,
    )

if not hasattr(pjsua2, "AudioMediaPort"):  # pragma: no cover - depends on the machine
    pytest.skip(
        "this pjsua2 has no AudioMediaPort (pjproject < 2.14 without standin's backport); "
        "rebuild it with sip/build_pjsua2.sh --rebuild",
        allow_module_level=True,
    )

SCENARIO = textwrap.dedent(
    r"""
    import gc
    import json
    import threading
    import time

    import numpy as np
    import pjsua2 as pj

    RATE = 16000
    SAMPLES = RATE // 50  # 20 ms
    t = np.arange(SAMPLES) / RATE
    # 400 Hz: exactly 8 periods per 20 ms frame, so repeating one frame is a continuous sine.
    PCM = (8000 * np.sin(2 * np.pi * 400 * t)).astype("<i2").tobytes()
    MAIN = threading.get_ident()


    class SinePort(pj.AudioMediaPort):
        # fast=False: the upstream (pjproject >= 2.14) way, ByteVector in and out;
        # fast=True: the one-copy helpers from sip/pjsua2_build/standin_extras.i.
        def __init__(self, fast):
            super().__init__()
            self.fast = fast
            self.requested = 0
            self.received = 0
            self.sizes = set()
            self.last = b""
            self.threads = set()

        def onFrameRequested(self, frame):
            if self.fast:
                frame.standinSetBytes(PCM)
            else:
                frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
                frame.buf = pj.ByteVector(PCM)
                frame.size = len(PCM)
            self.requested += 1
            self.threads.add(threading.get_ident())

        def onFrameReceived(self, frame):
            if frame.type != pj.PJMEDIA_FRAME_TYPE_AUDIO or frame.size == 0:
                return  # count audio only (a bridge may also pass empty heart-beat frames)
            self.received += 1
            self.sizes.add(frame.size)
            self.last = frame.standinGetBytes() if self.fast else bytes(frame.buf)
            self.threads.add(threading.get_ident())


    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.logConfig.level = 1
    cfg.logConfig.consoleLevel = 1
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.boundAddress = "127.0.0.1"
    tcfg.port = 0
    tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    local = ep.transportGetInfo(tid).localName
    ep.libStart()
    ep.audDevManager().setNullDev()

    fmt = pj.MediaFormatAudio()
    fmt.type = pj.PJMEDIA_TYPE_AUDIO
    fmt.clockRate = RATE
    fmt.channelCount = 1
    fmt.bitsPerSample = 16
    fmt.frameTimeUsec = 20000

    a, b = SinePort(fast=False), SinePort(fast=True)
    a.createPort("standin-test-a", fmt)
    b.createPort("standin-test-b", fmt)
    a.startTransmit(b)
    b.startTransmit(a)

    time.sleep(0.3)  # let the clock settle
    before = (a.requested, a.received, b.requested, b.received)
    time.sleep(1.0)
    after = (a.requested, a.received, b.requested, b.received)
    got = np.frombuffer(b.last, dtype="<i2").astype(np.float64)  # sent by a
    got_a = np.frombuffer(a.last, dtype="<i2").astype(np.float64)  # sent by b
    sent = np.frombuffer(PCM, dtype="<i2").astype(np.float64)

    # Drop b while it is still connected and frames flow (its __del__ disconnects it first),
    # then a, then the library.
    threads = a.threads | b.threads
    sizes = sorted(a.sizes | b.sizes)
    del b
    gc.collect()
    time.sleep(0.1)
    a_received = a.received
    time.sleep(0.1)
    a_received_after_b = a.received - a_received
    del a
    gc.collect()
    ep.libDestroy()
    del ep
    print(json.dumps({
        "local": local,
        "per_second": [y - x for x, y in zip(before, after)],
        "sizes": sizes,
        "rms_sent": float(np.sqrt(np.mean(sent ** 2))),
        "rms_got": float(np.sqrt(np.mean(got ** 2))) if got.size else 0.0,
        "max_diff": float(np.max(np.abs(got - sent))) if got.size == sent.size else -1.0,
        "max_diff_back": float(np.max(np.abs(got_a - sent))) if got_a.size == sent.size else -1.0,
        "callbacks_on_main_thread": MAIN in threads,
        "a_received_after_b_deleted": a_received_after_b,
    }))
    """
)


def test_audio_media_port_frames_flow_and_shutdown_is_clean() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCENARIO],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result line\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    result = json.loads(lines[-1])

    host, _, port = result["local"].rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0

    # 20 ms frames for one second: about 50 each way (a requested, b received, and back).
    for count in result["per_second"]:
        assert 35 <= count <= 65, result
    assert result["sizes"] == [640], result  # 16 kHz mono 16-bit, 20 ms
    # A single source reaches its sink unchanged.
    assert result["rms_got"] == pytest.approx(result["rms_sent"], rel=0.05), result
    assert 0 <= result["max_diff"] <= 2, result
    assert 0 <= result["max_diff_back"] <= 2, result
    # Callbacks come from pjmedia's clock thread, not from the caller's thread.
    assert result["callbacks_on_main_thread"] is False
    # Once b is gone nothing transmits to a any more.
    assert result["a_received_after_b_deleted"] == 0, result
