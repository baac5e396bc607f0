import numpy as np

from server.core.events import PlayoutProgress, PlayoutStopped
from server.playout import Playout


def tone(n: int, level: int = 1000) -> np.ndarray:
    return np.full(n, level, np.int16)


def test_only_released_audio_plays_and_in_order() -> None:
    p = Playout()
    p.add(1, tone(400, 1))
    p.add(2, tone(400, 2))
    frame, notes = p.pull(0.0)
    assert not frame.any() and notes == []
    p.play(2)
    p.play(1)
    frame, notes = p.pull(0.02)
    assert (frame == 2).all()
    frame, notes = p.pull(0.04)
    assert list(frame[:80]) == [2] * 80 and not frame[80:].any(), "more of 2 may still be coming"
    p.drop(2)  # the core: 2 is finished
    frame, notes = p.pull(0.06)
    assert (frame == 1).all() and notes == [PlayoutProgress(0.06, 1, 0, 320, 0)]


def test_dropped_audio_never_reaches_the_line() -> None:
    p = Playout()
    p.add(1, tone(2000))
    p.play(1)
    p.pull(0.0)
    p.drop(1)
    p.add(1, tone(2000))  # a late piece of the cancelled utterance
    frame, notes = p.pull(0.02)
    assert not frame.any() and notes == []
    assert not p.busy()


def test_stop_fades_out_then_holds_the_line_until_resumed() -> None:
    p = Playout()
    p.add(1, tone(3200))
    p.add(2, tone(320, 7))
    p.play(1)
    p.play(2)
    p.pull(0.0)
    p.stop(1, at=500, fade=100)
    frame, notes = p.pull(0.02)
    assert (frame[:180] == 1000).all()  # up to sample 500
    assert 980 <= frame[180] < 1000 and 0 < frame[278] < 30 and not frame[279:].any()
    assert (np.diff(frame[180:280].astype(int)) <= 0).all()
    [stopped] = [n for n in notes if isinstance(n, PlayoutStopped)]
    assert stopped.at == 500 and stopped.fade_start == 0.02 + 180 / 16000
    frame, _ = p.pull(0.04)
    assert not frame.any(), "a paused utterance holds the line: nothing after it plays either"
    p.resume(1, at=1000)
    frame, notes = p.pull(0.06)
    assert (frame == 1000).all() and notes[0] == PlayoutProgress(0.06, 1, 1000, 1320, 0)


def test_an_underrun_leaves_silence_and_the_utterance_goes_on_when_audio_arrives() -> None:
    p = Playout()
    p.add(1, tone(100))
    p.play(1)
    frame, _ = p.pull(0.0)
    assert (frame[:100] == 1000).all() and not frame[100:].any()
    p.add(1, tone(320, 5))
    frame, notes = p.pull(0.02)
    assert (frame == 5).all() and isinstance(notes[0], PlayoutProgress) and notes[0].first == 100


def test_a_stop_the_line_has_passed_finishes_the_word_on_the_line() -> None:
    """The core reckons its stop from a report a few frames old: the playout, already past it, ends at
    the end of the word it is in, so the caller hears no word cut short."""
    for ends, within, stops_at in (((600, 1000, 1400), 500, 1000), ((600, 1400), 300, 640), ((), 500, 640)):
        p = Playout()
        p.add(1, tone(3200))
        p.play(1)
        p.pull(0.0)
        p.pull(0.02)  # the line is at sample 640
        p.stop(1, at=600, fade=100, ends=ends, within=within)
        notes = [n for t in (0.04, 0.06, 0.08, 0.10) for n in p.pull(t)[1]]
        [stopped] = [n for n in notes if isinstance(n, PlayoutStopped)]
        assert stopped.at == stops_at, (ends, within)
