from server.core.events import PlayoutProgress, Word
from server.core.speech import ClauseSplitter, Kind, SpeechOptions, Utterance
from server.core.story import Story


def test_every_change_bumps_the_version_and_equal_text_does_not() -> None:
    story = Story()
    story.set_pending(1, "I need")
    v = story.version
    story.set_pending(1, "I need")
    assert story.version == v
    story.withdraw_pending()
    assert story.version == v + 1 and story.lines() == ()
    story.set_pending(1, "I need three things.")
    v = story.version
    story.commit_caller(1, "I need three things.")
    assert story.version == v, "committing the text already judged keeps work done on it current"
    story.add_bot("the delivery is confirmed for Tuesday, at", cut_off=True)
    assert story.render().splitlines()[-1] == "Bot: the delivery is confirmed for Tuesday, at ... [cut off]"


def test_a_reply_cut_off_before_its_first_word_leaves_no_line() -> None:
    story = Story()
    story.commit_caller(1, "Yes.")
    v = story.version
    story.add_bot("", cut_off=True)
    assert story.version == v and [line.role for line in story.lines()] == ["caller"]
    assert "[cut off]" not in story.render()


def test_an_open_caller_line_stays_after_the_bot_line_it_cut_off() -> None:
    story = Story()
    story.set_pending(2, "No, Wednesday")
    story.add_bot("It is on Tuesday", cut_off=True)
    assert [line.role for line in story.lines()] == ["bot", "caller"]


def test_clauses_first_early_then_at_natural_breaks() -> None:
    split = ClauseSplitter(SpeechOptions(first_clause_min_words=2, comma_clause_min_words=6))
    out: list[str] = []
    text = "Sure, I can take a message, and he will call you back today. Bye"
    for token in text.split():
        out += split.feed(token + " ")
    tail = split.flush()
    assert out == ["Sure, I can take a message,", "and he will call you back today."]
    assert tail == "Bye"


def test_a_one_word_sentence_is_a_first_clause_but_a_one_word_comma_is_not() -> None:
    split = ClauseSplitter(SpeechOptions(first_clause_min_words=2, comma_clause_min_words=6))
    assert split.feed("Sure. ") == ["Sure."]
    assert split.feed("I'll tell him. ") == ["I'll tell him."]
    split = ClauseSplitter(SpeechOptions(first_clause_min_words=2, comma_clause_min_words=6))
    assert split.feed("Well, ") == []
    assert split.feed("Anna, ") == ["Well, Anna,"]


def test_by_default_an_opening_word_before_a_comma_is_spoken_while_the_rest_is_written() -> None:
    split = ClauseSplitter(SpeechOptions())
    assert split.feed("Sure, ") == ["Sure,"]
    assert split.feed("Marco will call you back, ") == []  # later commas wait for a longer clause
    assert split.feed("probably tomorrow. ") == ["Marco will call you back, probably tomorrow."]


def test_clauses_do_not_break_inside_numbers_and_times() -> None:
    split = ClauseSplitter(SpeechOptions())
    out = split.feed("It is at 10:30 or 3.5 hours later, okay. ")
    assert out == ["It is at 10:30 or 3.5 hours later,", "okay."]


def utterance() -> Utterance:
    u = Utterance(1, Kind.REPLY)
    u.add_audio(16000, (Word("one", 0, 4000), Word("two", 5000, 9000), Word("three", 10000, 16000)))
    return u


def test_stop_point_finishes_the_word_on_the_line_but_caps_it() -> None:
    u = utterance()
    u.played = 6000  # inside "two"
    assert u.stop_point(SpeechOptions(finish_word_max_ms=250), 16000) == 9000
    u.played = 10500  # inside "three", whose end is 344 ms away
    assert u.stop_point(SpeechOptions(finish_word_max_ms=250), 16000) == 10500 + 4000
    u.played = 4500  # between words
    assert u.stop_point(SpeechOptions(), 16000) == 4500
    # a word the cap would clip in its last few ms is finished: the caller heard it
    u.played = 11500  # inside "three", which ends 281 ms later: 31 ms past the cap
    assert u.stop_point(SpeechOptions(finish_word_max_ms=250, finish_word_grace_ms=60), 16000) == 16000
    assert u.stop_point(SpeechOptions(finish_word_max_ms=250, finish_word_grace_ms=0), 16000) == 11500 + 4000


def test_heard_words_and_resume_point() -> None:
    u = utterance()
    u.stop_at = 9000
    assert u.heard(9000) == ["one", "two"]
    assert u.resume_point() == 10000
    u.stop_at = 12000  # cut inside "three": it was not heard, so it is said again
    assert u.heard(12000) == ["one", "two"] and u.resume_point() == 10000


def test_word_times_follow_the_playout() -> None:
    u = utterance()
    u.on_progress(PlayoutProgress(t=2.0, utterance=1, first=0, last=320, offset=0), 16000)
    u.on_progress(PlayoutProgress(t=2.02, utterance=1, first=320, last=4320, offset=0), 16000)
    assert u.start_t == 2.0
    assert u.words_report() == [{"text": "one", "start_s": 2.0, "end_s": 2.25}]
