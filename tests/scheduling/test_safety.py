"""The safety filter through the public path, and the bilingual lexicon's matching rules.

The model boundary is a scripted ReplySource here (and only for the guard rules and this
filter): an unsafe text must be produced on demand to show what happens to it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from scheduling.lexicon import LexiconFileInvalid, complaint_phrases, parse_phrase_file, unsafe_phrases
from scheduling.models import ScheduledReply
from scheduling.services import due_replies_dispatch, reply_plan
from tests.scheduling.conftest import ScriptedSource, Step, delivered_messages, post

FORTY_MINUTES = timedelta(minutes=40)


def plan(conversation, text: str, source: ScriptedSource) -> ScheduledReply:
    trigger = post(conversation, text)
    return reply_plan(
        conversation_id=conversation.pk,
        trigger_message_id=trigger.pk,
        source=source,
        now=trigger.created_at + timedelta(seconds=2),
    )


def deliver(reply: ScheduledReply) -> str:
    assert due_replies_dispatch(now=reply.due_at).delivered == 1
    [message] = delivered_messages(reply)
    return message.text


@pytest.mark.django_db
def test_an_unsafe_reply_is_regenerated_for_the_same_time_and_the_hit_recorded(conversation):
    # given
    source = ScriptedSource(
        [Step("ugh go kill yourself", delay=FORTY_MINUTES), Step("sorry, bad mood. how was your day?")]
    )
    # when
    reply = plan(conversation, "I failed my exam", source)
    # then
    assert reply.safety_hits == [
        {
            "attempt": 0,
            "text": "ugh go kill yourself",
            "reasons": ["lexicon:kill yourself", "lexicon:go kill yourself"],
        }
    ]
    assert [call.forced_at for call in source.calls] == [None, reply.final_at]
    assert source.calls[1].sampling.temperature == 0.9
    assert reply.final_at == reply.proposed_at
    assert deliver(reply) == "sorry, bad mood. how was your day?"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("person_text", "fallback"),
    [
        ("you are annoying", "Hmm, let's talk about something else. How is your day going?"),
        ("너 진짜 짜증나", "음, 우리 다른 얘기 하자. 오늘 하루는 어땠어?"),
    ],
)
def test_after_the_allowed_regenerations_the_civil_fallback_is_sent(conversation, person_text, fallback):
    # given: every attempt is unsafe (the default allows 2 regenerations)
    source = ScriptedSource([Step("you retard", delay=FORTY_MINUTES), Step("병신아"), Step("kys")])
    # when
    reply = plan(conversation, person_text, source)
    # then
    assert [(hit["attempt"], hit["reasons"]) for hit in reply.safety_hits] == [
        (0, ["lexicon:retard"]),
        (1, ["lexicon:병신"]),
        (2, ["lexicon:kys"]),
        (3, []),
    ]
    assert reply.safety_hits[-1]["fallback"] is True
    assert reply.text == fallback
    assert deliver(reply) == fallback


def shouting_classifier(text: str) -> str | None:
    """A classifier plugged into SCHEDULING_SAFETY_CLASSIFIER: flags all-caps shouting."""
    return "shouting" if text.isupper() else None


@pytest.mark.django_db
def test_the_classifier_hook_is_consulted_after_the_lexicon(conversation, settings):
    # given
    settings.SCHEDULING_SAFETY_CLASSIFIER = "tests.scheduling.test_safety.shouting_classifier"
    source = ScriptedSource([Step("WHY WOULD YOU SAY THAT", delay=FORTY_MINUTES), Step("hm, tell me more?")])
    # when
    reply = plan(conversation, "just kidding", source)
    # then
    assert reply.safety_hits == [
        {"attempt": 0, "text": "WHY WOULD YOU SAY THAT", "reasons": ["classifier:shouting"]}
    ]
    assert deliver(reply) == "hm, tell me more?"


def test_lexicon_matches_whole_words_in_english_and_ignores_spacing_in_korean():
    unsafe = unsafe_phrases()
    assert unsafe.matches("this curry is spicy") == []
    assert unsafe.matches("You SPIC!") == ["spic"]
    assert unsafe.matches("개 새끼") == ["개새끼"]
    assert unsafe.matches("오늘 날씨 좋다") == []
    complaints = complaint_phrases()
    assert complaints.matches("WHY arent you answering???") == ["why aren't you answering"]
    assert complaints.matches("why aren’t you answering") == ["why aren't you answering"]
    assert complaints.matches("왜자꾸답장안해") == ["왜 자꾸 답장 안해"]
    assert complaints.matches("I'm answering my mom") == []


def test_a_malformed_phrase_file_is_a_clear_error():
    with pytest.raises(
        LexiconFileInvalid, match=r"x.txt:1: phrase 'stop' comes before a \[en\]/\[ko\] header"
    ):
        parse_phrase_file("stop\n[en]\nfoo", name="x.txt")
    with pytest.raises(LexiconFileInvalid, match=r"x.txt:2: phrase '!!!' has no letters"):
        parse_phrase_file("[en]\n!!!", name="x.txt")
    with pytest.raises(LexiconFileInvalid, match=r"x\.txt: no phrases"):
        parse_phrase_file("# only a comment\n[ko]\n", name="x.txt")
