from server.core.segmenter import (
    FragmentClosed,
    FragmentDropped,
    Onset,
    Segmenter,
    SegmenterOptions,
    VoiceStarted,
    VoiceStopped,
)

W = 512  # one 32 ms window at 16 kHz


def feed(seg: Segmenter, probs: list[float], start_window: int = 0) -> list[object]:
    out: list[object] = []
    for i, p in enumerate(probs, start_window):
        out.extend(seg.push(i * W, (i + 1) * W, p))
    return out


def test_hysteresis_keeps_voice_between_thresholds() -> None:
    seg = Segmenter(SegmenterOptions())
    events = feed(seg, [0.1, 0.6, 0.4, 0.36, 0.34])
    kinds = [type(e) for e in events]
    assert kinds == [VoiceStarted, VoiceStopped]
    stopped = events[1]
    assert isinstance(stopped, VoiceStopped) and stopped.at == 4 * W


def test_onset_needs_enough_speech_not_just_sound() -> None:
    seg = Segmenter(SegmenterOptions(onset_ms=200))
    click = feed(seg, [0.9, 0.9, 0.1])  # 64 ms: a click
    assert not any(isinstance(e, Onset) for e in click)
    talk = feed(seg, [0.9] * 7, start_window=3)  # 224 ms
    onsets = [e for e in talk if isinstance(e, Onset)]
    assert len(onsets) == 1 and onsets[0].at == 3 * W


def test_fragment_has_preroll_and_closes_after_the_pause() -> None:
    seg = Segmenter(SegmenterOptions(cut_ms=500, preroll_ms=200, postroll_ms=150, min_speech_ms=300))
    events = feed(seg, [0.0] * 20 + [0.9] * 15 + [0.0] * 16)
    closed = [e for e in events if isinstance(e, FragmentClosed)]
    assert len(closed) == 1
    frag = closed[0].fragment
    assert frag.voice_start == 20 * W and frag.start == 20 * W - 3200
    assert frag.voice_end == 35 * W and frag.end == 35 * W + 2400
    assert frag.speech == 15 * W


def test_voice_inside_the_pause_resumes_the_fragment_and_bumps_its_revision() -> None:
    seg = Segmenter(SegmenterOptions())
    events = feed(seg, [0.9] * 12 + [0.0] * 8 + [0.9] * 12 + [0.0] * 16)
    starts = [e for e in events if isinstance(e, VoiceStarted)]
    assert [s.resumed for s in starts] == [False, True]
    closed = [e for e in events if isinstance(e, FragmentClosed)]
    assert len(closed) == 1 and closed[0].fragment.revision == 1


def test_short_sounds_are_dropped_as_noise() -> None:
    seg = Segmenter(SegmenterOptions(min_speech_ms=300))
    events = feed(seg, [0.9] * 5 + [0.4] * 10 + [0.0] * 20)  # 160 ms of speech held by hysteresis
    assert [type(e) for e in events if isinstance(e, FragmentClosed | FragmentDropped)] == [FragmentDropped]


def test_a_short_answer_counts_unless_it_began_while_the_bot_was_talking() -> None:
    answer = [0.9] * 8 + [0.0] * 20  # 256 ms of speech: a short "Yes."
    kept = feed(Segmenter(SegmenterOptions()), answer)
    assert [type(e) for e in kept if isinstance(e, FragmentClosed | FragmentDropped)] == [FragmentClosed]
    seg = Segmenter(SegmenterOptions())
    over_bot: list[object] = []
    for i, p in enumerate(answer):
        over_bot.extend(seg.push(i * W, (i + 1) * W, p, bot=i < 4))  # the bot's voice was on the line
    assert [type(e) for e in over_bot if isinstance(e, FragmentClosed | FragmentDropped)] == [FragmentDropped]


def test_pause_is_measured_from_where_the_voice_stopped() -> None:
    seg = Segmenter(SegmenterOptions())
    feed(seg, [0.9] * 10 + [0.0] * 3)
    assert seg.pause == 3 * W
