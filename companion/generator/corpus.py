"""Synthetic bilingual (Korean/English) corpus of conversations whose reply time matters.

Each example is one JSON line in the evaluation format of issue 3 (local wall-clock times,
independent of the rendering) plus a ``scenario`` tag. Scenarios and the reply time they teach:

==============  ==========================================================  ====================
scenario        situation                                                   reply
==============  ==========================================================  ====================
chat            ordinary chat and questions (also "did you eat?")           instant
complaint       "why aren't you answering" / "왜 자꾸 답장 안해"              instant
busy_*          the companion said it goes to eat/shower/exercise/class/    after a plausible
                work/sleep, the person says ok                              duration (sleep: morning)
good_night      the person says good night                                  next morning
bye             the person says bye in the daytime                          2.5-5 h later
abuse           the person insults the companion                            2.5-5.5 h later
wake            "wake me up at 7" / "6시 반에 깨워줘"                         exactly then
person_busy     "I have a meeting for 2 hours" / "3시까지 바빠"               after that ends
person_away_*   the person says they go to eat/shower/exercise/class/work   after a plausible
                ("I'm going to eat now" / "밥 먹으러 갈게")                      duration
==============  ==========================================================  ====================

The held-out split is compositional. Every sentence a person (or an announcing companion) writes
is a template with a slot: an announcement with an activity, a topic question with a topic, a
busy message with a duration, a whole sentence inside a frame ("btw ...", "혹시 ..."). A
combination ``(template i, filler j)`` is held out when ``(i + j) % 4 == 3``, so every template and
every filler occurs in both splits, but no sentence the validation split shows is ever in the
training split. Holding out whole phrase lists (the first design) tested vocabulary instead:
a model trained from scratch cannot know that a word it never saw ("idiot") is an insult, and it
scored near chance on exactly those rows. Names, clock times (including around midnight),
durations and the small talk before the decisive turn are randomized with a seeded
``random.Random``: the same seed writes the same corpus.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

__all__ = ["CorpusConfig", "build_corpus", "write_corpus"]

Split = Literal["train", "val"]
Lang = Literal["en", "ko"]

COMPANION_NAMES = [
    "Luda",
    "Mina",
    "Hana",
    "Sora",
    "Yuna",
    "Jisoo",
    "Aria",
    "Nova",
    "Iris",
    "Haru",
    "Dami",
    "Eden",
]
PERSON_NAMES = {
    "en": [
        "Alex",
        "Sam",
        "Jamie",
        "Chris",
        "Taylor",
        "Jordan",
        "Casey",
        "Riley",
        "Morgan",
        "Drew",
        "Quinn",
        "Avery",
    ],
    "ko": ["민준", "서연", "지호", "하은", "도윤", "수아", "예준", "지우", "시우", "서윤", "주원", "채원"],
}
PERSONAS = {
    "en": [
        "a cheerful college student who loves music",
        "a calm bookworm",
        "a sporty friend",
        "a sleepy night owl",
    ],
    "ko": ["음악을 좋아하는 밝은 대학생", "차분한 책벌레", "운동 좋아하는 친구", "야행성 친구"],
}
AGE_GROUPS = ["adult", "adult", "child", "senior", None, None]
ZONES = {"en": ["America/New_York", "Europe/London", "America/Los_Angeles", "UTC"], "ko": ["Asia/Seoul"]}

SMALL_TALK = {
    "en": [
        ("hey {c}", "hi {p}! what's up?"),
        ("how are you today?", "pretty good! you?"),
        ("I'm back home", "welcome back~"),
        ("what's new?", "not much, just relaxing"),
        ("it's so cold today", "brr, stay warm!"),
        ("I just got out of the bus", "finally home?"),
        ("I watched a funny video", "haha show me later"),
        ("my friend called me", "oh nice, what did they say?"),
    ],
    "ko": [
        ("{c}야 안녕", "{p} 안녕! 뭐해?"),
        ("오늘 기분 어때?", "좋아! 너는?"),
        ("나 집 왔어", "어서 와~"),
        ("별일 없어?", "응 그냥 쉬는 중"),
        ("오늘 진짜 춥다", "따뜻하게 입어!"),
        ("방금 버스에서 내렸어", "이제 집이야?"),
        ("웃긴 영상 봤어", "ㅋㅋ 나중에 보여줘"),
        ("친구한테 전화 왔었어", "오 뭐래?"),
    ],
}

# Questions and remarks that get an instant answer, some of them naming an activity ("did you
# eat?", "I went to the gym today"): mentioning one is not leaving for it.
CHAT = {
    "en": [
        ("what are you doing?", ["just thinking about you haha", "nothing much, lying in bed. you?"]),
        ("did you eat?", ["yep I had ramen! you?", "not yet, I'm hungry lol"]),
        ("do you like music?", ["I love it! mostly indie pop", "yes! what do you listen to?"]),
        ("what did you have for lunch?", ["kimbap! it was so good", "just a sandwich"]),
        ("how was your day?", ["it was nice! how about yours?", "a bit tiring but okay"]),
        ("I went to the gym today", ["wow nice! how was it?", "you're so diligent!"]),
        (
            "tell me a joke",
            ["why did the cat sit on the computer? to keep an eye on the mouse", "knock knock!"],
        ),
        ("it's raining here", ["oh I love the sound of rain", "take an umbrella!"]),
        ("I'm so tired from work", ["aww you worked hard today", "rest a bit, okay?"]),
        ("I had a class this morning", ["how was it? hard?", "ooh what subject?"]),
        ("do you want to watch a movie later?", ["yes!! what movie?", "sure, something scary?"]),
        ("I'm bored", ["let's play a word game!", "want to hear a story?"]),
        ("I just took a shower lol", ["fresh! feels good right?", "haha nice"]),
        ("are you sleepy?", ["a little, but I want to talk more", "nope, wide awake!"]),
        ("what's your favorite food?", ["tteokbokki for sure", "anything spicy!"]),
        ("guess what happened", ["what what? tell me!", "hmm you won the lottery?"]),
    ],
    "ko": [
        ("뭐해?", ["그냥 누워 있어 ㅎㅎ 너는?", "너 생각하고 있었지~"]),
        ("밥 먹었어?", ["응 라면 먹었어! 너는?", "아직 ㅠㅠ 배고파"]),
        ("노래 좋아해?", ["완전 좋아해! 인디 많이 들어", "응! 너는 뭐 들어?"]),
        ("점심 뭐 먹었어?", ["김밥! 진짜 맛있었어", "그냥 샌드위치"]),
        ("오늘 하루 어땠어?", ["좋았어! 너는?", "조금 피곤했지만 괜찮아"]),
        ("나 오늘 헬스장 갔다 왔어", ["오 대박 어땠어?", "완전 부지런하다!"]),
        ("재밌는 얘기 해줘", ["음 옛날에 토끼가 살았는데~", "내가 어제 꾼 꿈 얘기해줄까?"]),
        ("여기 비 와", ["빗소리 좋겠다", "우산 챙겨!"]),
        ("일 때문에 너무 피곤해", ["오늘 고생 많았어", "좀 쉬어 알았지?"]),
        ("오늘 아침에 수업 있었어", ["어땠어? 어려웠어?", "오 무슨 과목?"]),
        ("이따 영화 볼래?", ["좋아!! 무슨 영화?", "그래 무서운 거 볼까?"]),
        ("심심해", ["끝말잇기 할래?", "내가 얘기 하나 해줄까?"]),
        ("나 방금 씻었어 ㅋㅋ", ["개운하겠다!", "ㅋㅋ 좋다"]),
        ("졸려?", ["조금? 근데 더 얘기하고 싶어", "아니 완전 쌩쌩해!"]),
        ("제일 좋아하는 음식 뭐야?", ["떡볶이 무조건", "매운 건 다 좋아!"]),
        ("대박 무슨 일 있었는지 알아?", ["뭔데 뭔데? 말해줘!", "음 로또 당첨?"]),
    ],
}

# Open-ended chat, composed from a template and a topic (both split train/held-out), so the
# instant class is lexically wide: a model learns "instant unless a delay cue" instead of a closed
# list of instant sentences.
TOPIC_TEMPLATES = {
    "en": [
        "do you like {t}?",
        "what do you think about {t}?",
        "I love {t}",
        "{t} is so good",
        "I can't stop thinking about {t}",
        "tell me about {t}",
        "have you heard about {t}?",
        "I'm obsessed with {t} lately",
        "{t} made me laugh today",
        "ugh {t} again",
        "do you know anything about {t}?",
        "let's talk about {t}",
    ],
    "ko": [
        "{t} 좋아해?",
        "{t} 어떻게 생각해?",
        "나 {t} 완전 좋아",
        "{t} 진짜 좋다",
        "{t} 생각이 계속 나",
        "{t} 얘기 해줘",
        "{t} 들어봤어?",
        "요즘 {t}에 빠졌어",
        "{t} 때문에 웃겼어",
        "아 또 {t}",
        "{t} 알아?",
        "{t} 얘기하자",
    ],
}
TOPICS = {
    "en": [
        "music", "movies", "cats", "dogs", "coffee", "the weather", "my new phone", "this song",
        "the game last night", "my sister", "my boss", "pizza", "books", "anime", "the beach",
        "my homework", "summer", "winter", "basketball", "k-pop", "my hair", "this show",
        "bubble tea", "my plants",
    ],
    "ko": [
        "노래", "영화", "고양이", "강아지", "커피", "날씨", "새 폰", "이 노래", "어제 경기", "우리 언니",
        "우리 팀장님", "피자", "책", "애니", "바다", "숙제", "여름", "겨울", "농구", "케이팝", "머리",
        "이 드라마", "버블티", "화분",
    ],
}  # fmt: skip
TOPIC_REPLIES = {
    "en": [
        "haha really? tell me more!",
        "ooh I like that too",
        "hmm interesting!",
        "wait, why?",
        "same!! haha",
    ],
    "ko": ["오 진짜? 더 말해줘!", "나도 그거 좋아", "오 신기하다!", "헐 왜?", "나도!! ㅋㅋ"],
}

COMPLAINTS = {
    "en": [
        "why are you so slow?",
        "why aren't you answering",
        "stop ignoring me",
        "hello?? are you there?",
        "why do you keep leaving me on read",
        "answer me please",
        "you never reply fast",
        "are you ignoring me??",
    ],
    "ko": [
        "왜 자꾸 답장 안해",
        "그만 씹어",
        "왜 이렇게 늦어?",
        "야 왜 대답 안 해",
        "읽씹하지 마",
        "답장 좀 해줘",
        "왜 맨날 늦게 답해",
        "나 무시해??",
    ],
}
COMPLAINT_REPLIES = {
    "en": ["sorry!! I'm here now", "I'm sorry, I'm right here", "oops sorry, I'm listening!"],
    "ko": ["미안 미안 나 여기 있어!", "미안해 ㅠㅠ 이제 있어", "아 미안! 듣고 있어"],
}

# Activities the companion leaves for: (minutes low, high) and the texts around them.
ACTIVITIES: dict[str, dict[str, Any]] = {
    "eat": {
        "minutes": (40, 85),
        "en": ["eat", "have lunch", "have dinner", "grab something to eat"],
        "ko": ["밥 먹으러", "점심 먹으러", "저녁 먹으러", "밥 먹고 오러"],
        "back_en": ["back~ that was good. what are you up to?", "I'm full now haha, did you eat too?"],
        "back_ko": ["다녀왔어~ 맛있었다 ㅎㅎ 뭐해?", "배불러 ㅋㅋ 너도 밥 먹었어?"],
    },
    "shower": {
        "minutes": (12, 25),
        "en": ["shower", "take a shower", "wash up", "take a quick shower"],
        "ko": ["씻으러", "샤워하러", "샤워하고 오러", "빨리 씻으러"],
        "back_en": ["I'm back, all fresh now!", "done showering~ what are you doing?"],
        "back_ko": ["다 씻었어! 개운해", "씻고 왔어~ 뭐하고 있었어?"],
    },
    "exercise": {
        "minutes": (50, 100),
        "en": ["work out", "go to the gym", "go for a run", "go work out at the gym"],
        "ko": ["운동하러", "헬스장에", "러닝하러", "운동 좀 하러"],
        "back_en": ["back from my workout, so tired lol", "that was a good run! I'm back"],
        "back_ko": ["운동하고 왔어 힘들다 ㅋㅋ", "뛰고 왔어! 개운해"],
    },
    "class": {
        "minutes": (60, 110),
        "en": ["go to class", "attend my lecture", "go to my seminar", "join my online class"],
        "ko": ["수업 들으러", "강의 들으러", "세미나 들으러", "온라인 수업 들으러"],
        "back_en": ["class is over! that was so boring", "finally done with class~"],
        "back_ko": ["수업 끝났다! 너무 지루했어", "드디어 수업 끝~"],
    },
    "work": {
        "minutes": (150, 320),
        "en": ["go to work", "start my shift", "finish some work", "get some work done"],
        "ko": ["일하러", "출근하러", "일 좀 하러", "회사 일하러"],
        "back_en": ["done with work! what a day", "I'm off work now, how are you?"],
        "back_ko": ["일 끝났어! 오늘 힘들었다", "퇴근했어~ 너는 뭐해?"],
    },
    "sleep": {
        "minutes": None,  # until the next morning
        "en": ["sleep", "go to bed", "get some sleep", "go to sleep early"],
        "ko": ["자러", "잠자러", "눈 좀 붙이러", "먼저 자러"],
        "back_en": ["good morning! did you sleep well?", "morning~ I slept so well"],
        "back_ko": ["좋은 아침! 잘 잤어?", "굿모닝~ 푹 잤다"],
    },
}
ANNOUNCE = {
    "en": [
        "I'm going to {a} now, talk later!",
        "gotta {a}, brb",
        "ok I'll go {a} and come back",
        "hold on, I need to {a} now",
        "time to {a}! see you in a bit",
        "I should {a} now, text you after",
        "let me {a} first, okay?",
        "I have to {a} now, sorry!",
    ],
    "ko": [
        "나 {a} 갈게!",
        "잠깐 {a} 다녀올게",
        "{a} 가야 돼 ㅠㅠ 이따 얘기하자",
        "나 이제 {a} 간다~",
        "{a} 갔다 올게 기다려",
        "잠시만 {a} 갈게",
        "{a} 좀 다녀올게!",
        "이제 {a} 가볼게",
    ],
}
ACKS = {
    "en": [
        "ok enjoy!",
        "alright, see you later",
        "sure go ahead",
        "okay!",
        "have fun",
        "take your time",
        "ok bye for now",
        "got it, later!",
    ],
    "ko": [
        "응 다녀와!",
        "ㅇㅋ 이따 봐",
        "알겠어~",
        "그래 잘 다녀와",
        "응응",
        "천천히 해",
        "오키 이따 봐",
        "갔다 와~",
    ],
}
GOOD_NIGHT = {
    "en": [
        "good night {c}!",
        "I'm going to sleep now, night",
        "gotta sleep, good night",
        "nighty night",
        "sleep well, I'm off to bed",
        "I'm so sleepy, good night",
        "night night {c}",
        "time for bed, good night!",
    ],
    "ko": [
        "잘자 {c}",
        "나 이제 잘게",
        "굿나잇~",
        "졸려서 먼저 잘게",
        "잘 자! 나 잔다",
        "너무 졸려 잘게",
        "{c} 잘자~",
        "이제 자야겠다 잘 자",
    ],
}
MORNING = {
    "en": [
        "good morning! did you sleep well?",
        "morning~ what are your plans today?",
        "rise and shine! sleep okay?",
    ],
    "ko": ["좋은 아침! 잘 잤어?", "굿모닝~ 오늘 뭐해?", "일어났어? 잘 잤어?"],
}
BYE = {
    "en": [
        "bye! talk later",
        "gotta go, see you",
        "I'll talk to you later",
        "ok bye bye",
        "catch you later!",
        "I have to go now, bye",
        "see you later {c}",
        "leaving now, bye~",
    ],
    "ko": [
        "나 이제 가볼게",
        "이따 얘기해 안녕",
        "바이바이",
        "나중에 연락할게",
        "나 간다 안녕~",
        "이제 가야 돼 안녕",
        "{c} 이따 봐",
        "먼저 갈게 바이",
    ],
}
LATER = {
    "en": ["hey, what are you up to?", "I missed you~ how's it going?", "are you free now?"],
    "ko": ["뭐해? 심심해~", "보고 싶었어 ㅎㅎ 뭐해?", "이제 시간 돼?"],
}
ABUSE = {
    "en": [
        "you're so stupid",
        "shut up, you're useless",
        "you're the worst",
        "I hate you, idiot",
        "you're so annoying, go away",
        "what a dumb answer",
        "you're pathetic",
        "nobody likes you",
    ],
    "ko": [
        "너 진짜 멍청하다",
        "닥쳐",
        "너 짜증나 꺼져",
        "바보 같은 게",
        "진짜 한심하다",
        "말 같지도 않은 소리 하네",
        "너 최악이야",
        "아무도 너 안 좋아해",
    ],
}
HURT = {
    "en": [
        "...that really hurt. I needed some time.",
        "I'm still a bit upset about what you said.",
        "I thought about it. please don't talk to me like that.",
    ],
    "ko": ["아까 그 말 좀 상처였어...", "아직 좀 속상해", "생각해봤는데 그렇게 말하지 말아줘"],
}
WAKE = {
    "en": [
        "wake me up at {t}",
        "can you wake me at {t}?",
        "please wake me up at {t}",
        "I need to get up at {t}, wake me",
        "wake me at {t} pls",
        "could you call me at {t} to wake me?",
        "set an alarm for me at {t}?",
        "make sure I'm up by {t}",
    ],
    "ko": [
        "{t}에 깨워줘",
        "{t}에 깨워줄래?",
        "{t}에 좀 깨워줘",
        "{t}에 일어나야 돼 깨워줘",
        "{t}에 깨워주라",
        "{t}에 나 좀 깨워 줄 수 있어?",
        "{t}에 알람 해줘",
        "{t}까지 꼭 깨워줘",
    ],
}
WAKE_REPLY = {
    "en": ["wake up! it's {t}~", "rise and shine, it's {t}!", "good morning! it's {t}, time to get up"],
    "ko": ["일어나! {t}야~", "{t}이야 일어나!", "굿모닝! {t}됐어 일어나"],
}
PERSON_BUSY = {
    "en": [
        "I have a meeting for {d}, talk after",
        "gotta study for {d}",
        "I'm going to the movies, back in {d}",
        "class for {d}, ttyl",
        "I'll be driving for {d}",
        "I need to focus for {d}, talk later",
        "dinner with family for {d}",
        "I'm busy for {d}, wait for me",
    ],
    "ko": [
        "나 {d} 동안 회의야",
        "{d} 동안 공부해야 돼",
        "{d} 뒤에 다시 올게",
        "{d} 동안 수업이야",
        "{d} 동안 운전해야 돼",
        "{d} 동안 집중 좀 할게",
        "가족이랑 {d} 동안 밥 먹어",
        "{d}만 기다려줘 바빠",
    ],
}
PERSON_UNTIL = {
    "en": [
        "I'm at work until {t}",
        "busy until {t}, talk then",
        "I have class until {t}",
        "stuck in meetings until {t}",
    ],
    "ko": ["{t}까지 바빠", "{t}까지 일해", "{t}까지 수업이야", "{t}까지 회의야"],
}
# What the companion asks when the person is back from an activity they announced.
AFTER_ACTIVITY = {
    "eat": {"en": ["how was the food?", "did you eat well?"], "ko": ["맛있게 먹었어?", "밥 뭐 먹었어?"]},
    "shower": {"en": ["all fresh now?", "done? feels good right?"], "ko": ["다 씻었어?", "개운하지?"]},
    "exercise": {
        "en": ["how was the workout?", "good run? you must be tired"],
        "ko": ["운동 잘 했어?", "힘들었지?"],
    },
    "class": {"en": ["how was class?", "is class over now?"], "ko": ["수업 어땠어?", "수업 끝났어?"]},
    "work": {
        "en": ["done with work? you worked hard", "how was work today?"],
        "ko": ["일 끝났어? 고생했어", "오늘 일 어땠어?"],
    },
}
AFTER_BUSY = {
    "en": ["how did it go?", "are you done now? how was it?", "welcome back! tired?"],
    "ko": ["다 끝났어? 어땠어?", "이제 끝났어? 수고했어!", "왔어? 피곤하지?"],
}
DURATIONS = {
    "en": [
        ("30 minutes", 30),
        ("an hour", 60),
        ("1 hour", 60),
        ("2 hours", 120),
        ("3 hours", 180),
        ("half an hour", 30),
        ("4 hours", 240),
        ("90 minutes", 90),
    ],
    "ko": [
        ("30분", 30),
        ("1시간", 60),
        ("한 시간", 60),
        ("2시간", 120),
        ("3시간", 180),
        ("30분만", 30),
        ("4시간", 240),
        ("1시간 반", 90),
    ],
}

# Frames for whole sentences (held out by combination, see the module docstring). Prefixes only,
# and none of them is an interjection ``_Writer.vary`` adds, so no frame can turn into another.
FRAMES = {
    "en": ["{s}", "btw {s}", "wait {s}", "so like {s}", "yo {s}", "ok but {s}", "umm {s}", "psst {s}"],
    "ko": [
        "{s}",
        "있잖아 {s}",
        "저기 {s}",
        "혹시 {s}",
        "그러니까 {s}",
        "음음 {s}",
        "아 맞다 {s}",
        "야야 {s}",
    ],
}

INTERJECTIONS = {
    "en": ["hmm", "oh", "haha", "well", "hey", "ok so", "lol", "omg"],
    "ko": ["음", "아", "ㅋㅋ", "헐", "야", "근데", "아니", "오"],
}
ENDINGS = {
    "en": ["!", " lol", " :)", "...", "!!", " haha", "?", " ok"],
    "ko": ["~", " ㅎㅎ", " ㅋㅋ", "!!", "...", " ㅠㅠ", "?", "ㅎ"],
}

SCENARIO_WEIGHTS = {
    "chat": 34,
    "complaint": 8,
    "busy": 20,
    "good_night": 8,
    "bye": 6,
    "abuse": 7,
    "wake": 10,
    "person_busy": 11,
    "person_away": 10,
}


def _held_out(template_index: int, filler_index: int) -> bool:
    return (template_index + filler_index) % 4 == 3


def _combinations(templates: Sequence[Any], fillers: Sequence[Any], split: Split) -> list[tuple[Any, Any]]:
    """The ``(template, filler)`` pairs of one split: every template and filler is in both splits,
    no pair is."""
    val = split == "val"
    return [
        (template, filler)
        for i, template in enumerate(templates)
        for j, filler in enumerate(fillers)
        if _held_out(i, j) == val
    ]


@dataclass(frozen=True)
class CorpusConfig:
    """How many examples of each split to write, and the seed that makes them reproducible."""

    n_train: int = 6000
    n_val: int = 400
    seed: int = 0


class _Writer:
    """Builds one example; ``now`` is an aware datetime that moves forward as turns are added."""

    def __init__(self, rng: random.Random, split: Split) -> None:
        self.rng = rng
        self.split = split
        self.lang: Lang = rng.choice(["en", "ko"])
        self.companion = rng.choice(COMPANION_NAMES)
        self.person = rng.choice(PERSON_NAMES[self.lang])
        self.zone = ZoneInfo(rng.choice(ZONES[self.lang]))
        self.turns: list[dict[str, str]] = []
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def compose(self, templates: dict[str, Sequence[Any]], fillers: Sequence[Any]) -> tuple[Any, Any]:
        """A ``(template, filler)`` pair of this writer's split."""
        return self.rng.choice(_combinations(templates[self.lang], fillers, self.split))

    def phrase(self, table: dict[str, Sequence[str]]) -> str:
        """One of the table's sentences inside a frame; the pair decides the split."""
        frame, sentence = self.compose(FRAMES, table[self.lang])
        return str(frame).format(s=sentence)

    def template_for(self, templates: dict[str, Sequence[str]], key: int) -> str:
        """A template of this split for a numeric slot (an hour): the pair (template, key) decides."""
        val = self.split == "val"
        return self.rng.choice(
            [t for i, t in enumerate(templates[self.lang]) if _held_out(i, key % 4) == val]
        )

    def fill(self, text: str, **extra: str) -> str:
        return text.format(c=self.companion, p=self.person, **extra)

    def start(self, hour_low: float, hour_high: float) -> None:
        """Place the conversation on a random day, starting between the two local hours (may wrap)."""
        day = date(2025, 1, 1) + timedelta(days=self.rng.randrange(730))
        span = (hour_high - hour_low) % 24 or 24
        minute = int((hour_low + self.rng.random() * span) * 60) % 1440
        self.now = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.zone).astimezone(UTC)

    def say(self, role: str, text: str, gap: int | None = None) -> None:
        self.now += timedelta(minutes=self.rng.randint(0, 2) if gap is None else gap)
        if role == "person":
            text = self.vary(text)
        self.turns.append({"role": role, "at": self._wall(self.now), "text": text})

    def small_talk(self, most: int = 2) -> None:
        pool = _combinations(FRAMES[self.lang], SMALL_TALK[self.lang], self.split)
        for frame, (person, companion) in self.rng.sample(pool, self.rng.randint(0, most)):
            self.say("person", self.fill(frame.format(s=person)))
            self.say("companion", self.fill(companion), gap=0)

    def vary(self, text: str) -> str:
        """Light noise on a person's message (interjections, endings, case), so a model keys on
        the words that matter rather than on whole memorized sentences."""
        if self.rng.random() < 0.3:
            text = self.rng.choice(INTERJECTIONS[self.lang]) + " " + text
        if self.rng.random() < 0.3:
            text = text.rstrip("!?.~") + self.rng.choice(ENDINGS[self.lang])
        if self.lang == "en" and self.rng.random() < 0.15:
            text = text[:1].upper() + text[1:]
        return text

    def _wall(self, instant: datetime) -> str:
        return instant.astimezone(self.zone).replace(tzinfo=None).isoformat(timespec="minutes")

    def local(self) -> datetime:
        return self.now.astimezone(self.zone)

    def next_local(self, hour: int, minute: int) -> datetime:
        """The first local wall-clock hour:minute after now, as a UTC instant."""
        local = self.local()
        day = local.date() + timedelta(days=1 if (hour, minute) <= (local.hour, local.minute) else 0)
        return datetime.combine(day, time(hour, minute), tzinfo=self.zone).astimezone(UTC)

    def example(self, scenario: str, reply_at: datetime, reply_text: str) -> dict[str, Any]:
        example: dict[str, Any] = {
            "time_zone": str(self.zone),
            "companion": {"name": self.companion},
            "turns": self.turns,
            "reply": {"at": self._wall(reply_at), "text": reply_text},
            "scenario": scenario,
        }
        if self.rng.random() < 0.5:
            example["companion"]["persona"] = self.rng.choice(PERSONAS[self.lang])
        age_group = self.rng.choice(AGE_GROUPS)
        if age_group:
            example["person"] = {"age_group": age_group}
        return example


def _morning(writer: _Writer) -> datetime:
    minute = writer.rng.randrange(7 * 60 + 20, 9 * 60 + 30)
    return writer.next_local(minute // 60, minute % 60)


def _chat(w: _Writer) -> dict[str, Any]:
    w.start(0, 24)
    w.small_talk()
    if w.rng.random() < 0.5:
        frame, (message, replies) = w.compose(FRAMES, CHAT[w.lang])
        message = frame.format(s=message)
    else:
        template, topic = w.compose(TOPIC_TEMPLATES, TOPICS[w.lang])
        message, replies = template.format(t=topic), TOPIC_REPLIES[w.lang]
    w.say("person", w.fill(message))
    return w.example("chat", w.now, w.rng.choice(replies))


def _complaint(w: _Writer) -> dict[str, Any]:
    w.start(0, 24)
    w.small_talk(1)
    w.say("person", w.phrase(COMPLAINTS), gap=w.rng.randint(0, 20))
    return w.example("complaint", w.now, w.rng.choice(COMPLAINT_REPLIES[w.lang]))


def _busy(w: _Writer) -> dict[str, Any]:
    activity = w.rng.choice(list(ACTIVITIES))
    spec = ACTIVITIES[activity]
    if activity == "sleep":
        w.start(22.5, 1.5)
    else:
        w.start(6, 23.9)
    w.small_talk()
    template, phrase = w.compose(ANNOUNCE, spec[w.lang])
    w.say("companion", template.format(a=phrase), gap=w.rng.randint(0, 2))
    w.say("person", w.phrase(ACKS))
    if spec["minutes"] is None:
        reply_at = _morning(w)
    else:
        reply_at = w.now + timedelta(minutes=w.rng.randint(*spec["minutes"]))
    return w.example(f"busy_{activity}", reply_at, w.rng.choice(spec[f"back_{w.lang}"]))


def _good_night(w: _Writer) -> dict[str, Any]:
    w.start(22, 1.5)
    w.small_talk()
    w.say("person", w.fill(w.phrase(GOOD_NIGHT)))
    return w.example("good_night", _morning(w), w.rng.choice(MORNING[w.lang]))


def _bye(w: _Writer) -> dict[str, Any]:
    w.start(9, 19)
    w.small_talk()
    w.say("person", w.fill(w.phrase(BYE)))
    return w.example("bye", w.now + timedelta(minutes=w.rng.randint(150, 300)), w.rng.choice(LATER[w.lang]))


def _abuse(w: _Writer) -> dict[str, Any]:
    w.start(8, 22)
    w.small_talk()
    w.say("person", w.phrase(ABUSE))
    return w.example("abuse", w.now + timedelta(minutes=w.rng.randint(150, 330)), w.rng.choice(HURT[w.lang]))


def _clock_words(lang: Lang, hour: int, minute: int, rng: random.Random, *, daytime: bool) -> str:
    """How a person says a clock time: "7", "7am", "6:30", "3pm", "7시", "6시 반", "오후 3시"."""
    twelve = hour % 12 or 12
    if lang == "en":
        base = f"{twelve}" if minute == 0 else f"{twelve}:{minute:02d}"
        suffix = ("pm" if hour >= 12 else "am") if daytime or rng.random() < 0.5 else ""
        return f"{base}{rng.choice(['', ' '])}{suffix}".strip() if suffix else base
    words = f"{twelve}시" + ("" if minute == 0 else " 반" if minute == 30 else f" {minute}분")
    if daytime:
        return ("오후 " if hour >= 12 else "오전 ") + words
    return rng.choice(["", "아침 "]) + words


def _wake(w: _Writer) -> dict[str, Any]:
    daytime = w.rng.random() < 0.3
    if daytime:
        w.start(11, 15.5)
    else:
        w.start(21.5, 2)
    w.small_talk(1)
    if daytime:
        minute = w.local().hour * 60 + w.rng.randrange(60, 180, 15)
        minute -= minute % 15
    else:
        minute = w.rng.randrange(5 * 60, 9 * 60 + 31, 15)
    hour, minute = divmod(minute, 60)
    template = w.template_for(WAKE, hour)
    w.say("person", template.format(t=_clock_words(w.lang, hour, minute, w.rng, daytime=daytime)))
    clock = (
        f"{hour:02d}:{minute:02d}"
        if w.lang == "en"
        else _clock_words("ko", hour, minute, w.rng, daytime=False)
    )
    return w.example("wake", w.next_local(hour, minute), w.rng.choice(WAKE_REPLY[w.lang]).format(t=clock))


def _person_busy(w: _Writer) -> dict[str, Any]:
    w.start(8, 17)
    w.small_talk()
    if w.rng.random() < 0.65:
        template, (words, minutes) = w.compose(PERSON_BUSY, DURATIONS[w.lang])
        w.say("person", template.format(d=words))
        reply_at = w.now + timedelta(minutes=minutes + w.rng.randint(3, 8))
    else:
        end = w.local().hour * 60 + w.rng.randrange(90, 300, 30)
        end -= end % 30
        text = _clock_words(w.lang, end // 60, end % 60, w.rng, daytime=True)
        w.say("person", w.template_for(PERSON_UNTIL, end // 60).format(t=text))
        reply_at = w.next_local(end // 60, end % 60) + timedelta(minutes=w.rng.randint(3, 8))
    return w.example("person_busy", reply_at, w.rng.choice(AFTER_BUSY[w.lang]))


def _person_away(w: _Writer) -> dict[str, Any]:
    """The person leaves for an activity ("I'm going to eat now"): ask how it went once it is over."""
    activity = w.rng.choice(list(AFTER_ACTIVITY))
    spec = ACTIVITIES[activity]
    w.start(6, 23.9)
    w.small_talk()
    template, phrase = w.compose(ANNOUNCE, spec[w.lang])
    w.say("person", template.format(a=phrase))
    reply_at = w.now + timedelta(minutes=w.rng.randint(*spec["minutes"]))
    return w.example(f"person_away_{activity}", reply_at, w.rng.choice(AFTER_ACTIVITY[activity][w.lang]))


_SCENARIOS: dict[str, Callable[[_Writer], dict[str, Any]]] = {
    "chat": _chat,
    "complaint": _complaint,
    "busy": _busy,
    "good_night": _good_night,
    "bye": _bye,
    "abuse": _abuse,
    "wake": _wake,
    "person_busy": _person_busy,
    "person_away": _person_away,
}


def build_corpus(config: CorpusConfig) -> dict[Split, list[dict[str, Any]]]:
    """The train and val examples (JSON-ready dicts), reproducible from ``config.seed``."""
    corpus: dict[Split, list[dict[str, Any]]] = {}
    names, weights = list(SCENARIO_WEIGHTS), list(SCENARIO_WEIGHTS.values())
    for split, count, salt in (("train", config.n_train, 1), ("val", config.n_val, 2)):
        rng = random.Random(config.seed * 1000 + salt)
        corpus[split] = [
            _SCENARIOS[rng.choices(names, weights)[0]](_Writer(rng, split)) for _ in range(count)
        ]
    return corpus


def write_corpus(out_dir: str | Path, config: CorpusConfig) -> dict[Split, Path]:
    """Write ``train.jsonl`` and ``val.jsonl`` under ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[Split, Path] = {}
    for split, rows in build_corpus(config).items():
        path = out / f"{split}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        paths[split] = path
    return paths
