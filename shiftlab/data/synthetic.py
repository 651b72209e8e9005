"""A small, seeded synthetic language in which meaning depends on word order.

This is shiftlab's built-in dataset. It gives raw text for self-supervised
pretraining and labelled downstream tasks (train/val/test), needs no download,
and is fully deterministic given a seed. It uses only the standard library.

The language
------------
Every sentence describes one event with two participants, an AGENT (who acts)
and a PATIENT (who is acted on). One participant is a *person* and the other an
*organisation*:

* person:       a name ("vera", "tomas okafor") or a common noun phrase
                ("the young engineer", "some nurses");
* organisation: a name ("helix", "vertex bank", "orion global labs") or a
                common noun phrase ("an old agency", "these banks").

The roles are given by position only. Two voices are used, equally often::

    active:   AGENT   VERB          PATIENT
    passive:  PATIENT is/was VERB-ed by AGENT

with three tenses (present, past, future: "pays" / "paid" / "will pay",
"is paid" / "was paid" / "will be paid"). Around this core there are optional
adjuncts: adjectives, a time phrase ("yesterday", "next week"; it matches the
tense), a place phrase ("near port elin"), a topic phrase ("after the match")
and an adverb ("again"). The finite verb agrees in number with the grammatical
subject ("the nurse pays" / "the nurses pay", "is" / "are", "was" / "were").
All words are lower case; sentences have 6 to 20 words.

Example (passive, future)::

    tomorrow the angry nurses will be defeated by vertex bank near lake  mora
    O        O   O     O      O    O  O        O  B-ORG  I-ORG O    B-LOC I-LOC
    order_label = agent_org   topic_label = sport

Labels
------
``order_label`` is the class of the AGENT: ``agent_person`` or ``agent_org``.
``topic_label`` is the semantic field of the verb (and of the optional topic
phrase): ``finance``, ``sport``, ``travel`` or ``conflict``.
``tags`` are IOB2 tags over names of persons, organisations and locations;
common nouns are ``O``. Two words are deliberately ambiguous, so tagging needs
context: "bank" is ``I-ORG`` in "vertex bank" but ``O`` in "the bank", and
"new" is ``B-LOC`` in "new halden" but an adjective (``O``) in "the new bank".

Why the order task needs word order
-----------------------------------
The generator is symmetric under exchanging the two participants: a sentence
and the one with agent and patient swapped contain exactly the same words,
are equally likely, and carry opposite order labels. This holds because

* the agent's class is uniform and a noun phrase is drawn from its class alone,
  never from its role;
* everything else (verb, tense, voice, adjuncts) is drawn independently of the
  roles;
* agreement cannot give the roles away: when the verb form shows number
  (present tense, or "was"/"were"), both participants share one number, so the
  subject cannot be told apart by its number. Unmarked forms ("paid",
  "will pay", "will be paid") let the two numbers vary independently.

So every bag of words is exactly as likely to carry one order label as the
other, and any bag-of-words model, however strong, is at chance (50%). A
model that reads order solves it exactly: the agent is the noun phrase right
after "by" if there is one, else the first noun phrase. (With three or more
participant classes a bag of words would still narrow the agent down to two
candidates, which is why there are exactly two order labels.)
``topic_label`` is the control: it is decided by which words occur, so a
bag-of-words model solves it.

The public helpers :func:`sample_plan`, :func:`realize` and
:func:`swap_roles` give access to the underlying structure, e.g. to build
minimal pairs that differ only in who does what to whom.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

# --------------------------------------------------------------------------
# Lexicon. Tuples only (never sets), so that iteration order is stable.
# --------------------------------------------------------------------------

FIRST_NAMES = (
    "alina", "boris", "clara", "dmitri", "elena", "farid", "greta", "hugo",
    "ines", "jonas", "kira", "leon", "marta", "nikos", "olga", "pavel",
    "rosa", "sami", "tomas", "vera",
)
LAST_NAMES = (
    "varga", "okafor", "lindqvist", "moreau", "tanaka", "kowalski", "haddad",
    "novak", "silva", "brandt", "ferreira", "ivanova", "jensen", "keller",
    "laine", "mendez", "ortiz", "petrov", "quinn", "romano",
)
ORG_HEADS = (
    "acme", "vertex", "orion", "helix", "nova", "zenith", "summit", "crown",
    "pioneer", "meridian",
)
ORG_MIDDLES = ("global", "national", "united", "royal")
ORG_SUFFIXES = ("corp", "bank", "group", "labs", "motors", "holdings")
LOCATIONS = (
    ("kestown",), ("marlow",), ("dunmere",), ("ashford",), ("veldin",),
    ("orlan",), ("tessaly",), ("brindle",), ("port", "elin"), ("lake", "mora"),
    ("north", "vale"), ("san", "corvo"), ("mount", "arden"),
    ("new", "halden"), ("east", "rivar"),
)

# (singular, plural)
PERSON_NOUNS = (
    ("engineer", "engineers"), ("doctor", "doctors"), ("teacher", "teachers"),
    ("farmer", "farmers"), ("pilot", "pilots"), ("lawyer", "lawyers"),
    ("nurse", "nurses"), ("student", "students"), ("worker", "workers"),
    ("artist", "artists"), ("officer", "officers"), ("driver", "drivers"),
)
ORG_NOUNS = (
    ("company", "companies"), ("bank", "banks"), ("club", "clubs"),
    ("firm", "firms"), ("agency", "agencies"), ("team", "teams"),
    ("ministry", "ministries"), ("studio", "studios"), ("council", "councils"),
    ("airline", "airlines"),
)
ADJECTIVES = (
    "young", "old", "local", "famous", "angry", "small", "large", "new",
    "rich", "foreign", "busy", "eager",
)
SINGULAR_DETERMINERS = ("the", "a", "this", "that")  # "a" -> "an" before a vowel
PLURAL_DETERMINERS = ("the", "some", "these", "those", "many")


@dataclass(frozen=True)
class Verb:
    """A transitive verb: base ("pay"), 3rd singular ("pays"), past, participle."""

    base: str
    third: str
    past: str
    participle: str

    @property
    def forms(self) -> tuple[str, ...]:
        return (self.base, self.third, self.past, self.participle)


def _regular(base: str, third: str | None = None, past: str | None = None) -> Verb:
    third = third or base + "s"
    past = past or (base + "d" if base.endswith("e") else base + "ed")
    return Verb(base, third, past, past)


# Topic -> verbs. Every verb fits both directions (person->org and org->person).
VERBS: dict[str, tuple[Verb, ...]] = {
    "finance": (Verb("pay", "pays", "paid", "paid"), _regular("fund"),
                _regular("hire"), _regular("audit")),
    "sport": (Verb("beat", "beats", "beat", "beaten"),
              _regular("coach", "coaches"), _regular("train"), _regular("defeat")),
    "travel": (_regular("visit"), Verb("drive", "drives", "drove", "driven"),
               _regular("guide"), Verb("fly", "flies", "flew", "flown")),
    "conflict": (_regular("attack"), _regular("sue"), _regular("blame"),
                 _regular("threaten")),
}
TOPIC_PHRASES: dict[str, tuple[tuple[str, ...], ...]] = {
    "finance": (("over", "the", "loan"), ("for", "the", "debt"),
                ("after", "the", "merger"), ("before", "the", "budget")),
    "sport": (("after", "the", "match"), ("before", "the", "final"),
              ("during", "the", "season"), ("at", "the", "tournament")),
    "travel": (("during", "the", "trip"), ("after", "the", "flight"),
               ("before", "the", "journey"), ("on", "the", "tour")),
    "conflict": (("over", "the", "dispute"), ("after", "the", "scandal"),
                 ("during", "the", "protest"), ("before", "the", "trial")),
}
TOPICS = tuple(VERBS)
TENSES = ("present", "past", "future")
TIME_PHRASES: dict[str, tuple[tuple[str, ...], ...]] = {
    "present": (("today",), ("now",), ("every", "week")),
    "past": (("yesterday",), ("last", "week"), ("last", "year")),
    "future": (("tomorrow",), ("next", "week"), ("next", "year")),
}
PLACE_PREPOSITIONS = ("in", "near", "outside")
ADVERBS = ("again", "quietly", "openly", "twice")
FUNCTION_WORDS = ("by", "will", "be", "is", "are", "was", "were", "an")

PERSON, ORG = "person", "org"
VOICES = ("active", "passive")
MIN_WORDS, MAX_WORDS = 6, 20

# Sampling probabilities.
P_PLURAL = 0.35          # a participant is plural (shared by both when the verb shows number)
P_NAME = 0.5             # a singular participant is a name rather than a common noun
P_ADJECTIVE = 0.35
P_PLACE = 0.5
P_TOPIC_PHRASE = 0.5
P_ADVERB = 0.2
P_TIME_FRONT, P_TIME_END = 0.2, 0.3


# --------------------------------------------------------------------------
# Structures
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class SyntheticExample:
    """One sentence with its NER tags and two sentence-level labels.

    ``agent_span`` / ``patient_span``: the word positions ``(start, end)`` (end exclusive) of
    the two participants' noun phrases, and ``plan`` the plan the sentence was realised from
    (None for examples built by hand); they are derived from the same draws, so adding them
    changed no sentence or label. ``plan`` takes no part in comparisons.
    """

    words: tuple[str, ...]
    tags: tuple[str, ...]
    order_label: str
    topic_label: str
    agent_span: tuple[int, int] | None = None
    patient_span: tuple[int, int] | None = None
    plan: SentencePlan | None = field(default=None, compare=False, repr=False)

    @property
    def text(self) -> str:
        return " ".join(self.words)


@dataclass(frozen=True)
class NounPhrase:
    """A participant: its words, IOB2 tags, class (person/org) and number."""

    words: tuple[str, ...]
    tags: tuple[str, ...]
    entity_class: str
    plural: bool


@dataclass(frozen=True)
class SentencePlan:
    """Everything that decides a sentence; :func:`realize` turns it into words."""

    agent: NounPhrase
    patient: NounPhrase
    topic: str
    verb: Verb
    tense: str
    voice: str
    time_front: tuple[str, ...] = ()
    place: tuple[str, ...] = ()          # preposition + location name
    topic_phrase: tuple[str, ...] = ()
    adverb: tuple[str, ...] = ()
    time_end: tuple[str, ...] = ()

    @property
    def subject(self) -> NounPhrase:
        return self.agent if self.voice == "active" else self.patient

    @property
    def order_label(self) -> str:
        return "agent_person" if self.agent.entity_class == PERSON else "agent_org"


# --------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------

def _entity(words: tuple[str, ...], kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return words, (f"B-{kind}",) + (f"I-{kind}",) * (len(words) - 1)


def _person_name(rng: random.Random) -> tuple[str, ...]:
    r = rng.random()
    if r < 0.3:
        return (rng.choice(FIRST_NAMES),)
    if r < 0.9:
        return (rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES))
    return (rng.choice(LAST_NAMES),)


def _org_name(rng: random.Random) -> tuple[str, ...]:
    r = rng.random()
    if r < 0.2:
        return (rng.choice(ORG_HEADS),)
    if r < 0.8:
        return (rng.choice(ORG_HEADS), rng.choice(ORG_SUFFIXES))
    return (rng.choice(ORG_HEADS), rng.choice(ORG_MIDDLES), rng.choice(ORG_SUFFIXES))


def _common_noun_phrase(rng: random.Random, nouns, plural: bool) -> tuple[str, ...]:
    noun = rng.choice(nouns)[1 if plural else 0]
    rest = (rng.choice(ADJECTIVES), noun) if rng.random() < P_ADJECTIVE else (noun,)
    det = rng.choice(PLURAL_DETERMINERS if plural else SINGULAR_DETERMINERS)
    if det == "a" and rest[0][0] in "aeiou":
        det = "an"
    return (det,) + rest


def sample_noun_phrase(rng: random.Random, entity_class: str, plural: bool) -> NounPhrase:
    """A participant of the given class and number (names are always singular)."""
    if not plural and rng.random() < P_NAME:
        if entity_class == PERSON:
            words, tags = _entity(_person_name(rng), "PER")
        else:
            words, tags = _entity(_org_name(rng), "ORG")
    else:
        nouns = PERSON_NOUNS if entity_class == PERSON else ORG_NOUNS
        words = _common_noun_phrase(rng, nouns, plural)
        tags = ("O",) * len(words)
    return NounPhrase(words, tags, entity_class, plural)


def _shows_number(tense: str, voice: str) -> bool:
    """Whether the finite verb form agrees visibly with the subject."""
    return tense == "present" or (tense == "past" and voice == "passive")


def sample_plan(rng: random.Random) -> SentencePlan:
    """Draw one sentence plan (not yet checked for length)."""
    agent_class, patient_class = (PERSON, ORG) if rng.random() < 0.5 else (ORG, PERSON)
    topic = rng.choice(TOPICS)
    tense = rng.choice(TENSES)
    voice = rng.choice(VOICES)
    if _shows_number(tense, voice):
        # Same number for both, so agreement does not reveal the subject.
        agent_plural = patient_plural = rng.random() < P_PLURAL
    else:
        agent_plural = rng.random() < P_PLURAL
        patient_plural = rng.random() < P_PLURAL
    time = rng.choice(TIME_PHRASES[tense])
    r = rng.random()
    return SentencePlan(
        agent=sample_noun_phrase(rng, agent_class, agent_plural),
        patient=sample_noun_phrase(rng, patient_class, patient_plural),
        topic=topic,
        verb=rng.choice(VERBS[topic]),
        tense=tense,
        voice=voice,
        time_front=time if r < P_TIME_FRONT else (),
        time_end=time if P_TIME_FRONT <= r < P_TIME_FRONT + P_TIME_END else (),
        place=_optional_place(rng),
        topic_phrase=rng.choice(TOPIC_PHRASES[topic]) if rng.random() < P_TOPIC_PHRASE else (),
        adverb=(rng.choice(ADVERBS),) if rng.random() < P_ADVERB else (),
    )


def _optional_place(rng: random.Random) -> tuple[str, ...]:
    if rng.random() >= P_PLACE:
        return ()
    return (rng.choice(PLACE_PREPOSITIONS),) + rng.choice(LOCATIONS)


def swap_roles(plan: SentencePlan) -> SentencePlan:
    """The same plan with agent and patient exchanged: same words, other label."""
    return replace(plan, agent=plan.patient, patient=plan.agent)


# --------------------------------------------------------------------------
# Realisation
# --------------------------------------------------------------------------

def verb_group(verb: Verb, tense: str, voice: str, plural_subject: bool) -> tuple[str, ...]:
    """The verb words, agreeing with the subject where English shows it."""
    if voice == "active":
        if tense == "present":
            return (verb.base if plural_subject else verb.third,)
        if tense == "past":
            return (verb.past,)
        return ("will", verb.base)
    if tense == "present":
        return ("are" if plural_subject else "is", verb.participle)
    if tense == "past":
        return ("were" if plural_subject else "was", verb.participle)
    return ("will", "be", verb.participle)


def realize(plan: SentencePlan) -> SyntheticExample:
    """Turn a plan into words, IOB2 tags and labels."""
    words: list[str] = []
    tags: list[str] = []

    def add(ws: tuple[str, ...], ts: tuple[str, ...] | None = None) -> None:
        words.extend(ws)
        tags.extend(ts if ts is not None else ("O",) * len(ws))

    first, second = ((plan.agent, plan.patient) if plan.voice == "active"
                     else (plan.patient, plan.agent))
    add(plan.time_front)
    first_span = (len(words), len(words) + len(first.words))
    add(first.words, first.tags)
    add(verb_group(plan.verb, plan.tense, plan.voice, first.plural))
    if plan.voice == "passive":
        add(("by",))
    second_span = (len(words), len(words) + len(second.words))
    add(second.words, second.tags)
    add(plan.adverb)
    if plan.place:
        add(plan.place[:1])
        add(*_entity(plan.place[1:], "LOC"))
    add(plan.topic_phrase)
    add(plan.time_end)
    agent_span, patient_span = (first_span, second_span) if plan.voice == "active" else (second_span, first_span)
    return SyntheticExample(tuple(words), tuple(tags), plan.order_label, plan.topic, agent_span, patient_span, plan)


def sample_example(rng: random.Random) -> SyntheticExample:
    """Draw plans until one realises to MIN_WORDS..MAX_WORDS words.

    Rejection depends on the length only, which swapping the roles does not
    change, so it keeps the generator symmetric.
    """
    while True:
        example = realize(sample_plan(rng))
        if MIN_WORDS <= len(example.words) <= MAX_WORDS:
            return example


# --------------------------------------------------------------------------
# Public dataset
# --------------------------------------------------------------------------

class SyntheticLanguage:
    """Seeded splits of the synthetic language (see the module docstring).

    Each split has its own random stream, derived from the seed and the split
    name, so a split does not depend on the other splits or their sizes, and
    a smaller split is a prefix of a larger one with the same seed.
    """

    ORDER_LABELS: tuple[str, ...] = ("agent_person", "agent_org")
    TOPIC_LABELS: tuple[str, ...] = TOPICS
    TAGS: tuple[str, ...] = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
    SPLITS: tuple[str, ...] = ("pretrain", "train", "val", "test")

    def __init__(self, seed: int = 0, n_pretrain: int = 20000, n_train: int = 4000,
                 n_val: int = 500, n_test: int = 1000):
        _check_int("seed", seed)
        sizes = {"pretrain": n_pretrain, "train": n_train, "val": n_val, "test": n_test}
        for split, size in sizes.items():
            _check_int(f"n_{split}", size)
            if size < 0:
                raise ValueError(f"n_{split} must be >= 0, got {size}")
        self.seed = seed
        self.sizes = sizes
        self._cache: dict[str, list[SyntheticExample]] = {}

    def split(self, name: str) -> list[SyntheticExample]:
        """The examples of a split: "pretrain", "train", "val" or "test"."""
        if name not in self.sizes:
            raise ValueError(f"unknown split {name!r}; valid splits: {', '.join(self.SPLITS)}")
        if name not in self._cache:
            rng = random.Random(f"shiftlab-synthetic/{self.seed}/{name}")
            self._cache[name] = [sample_example(rng) for _ in range(self.sizes[name])]
        return list(self._cache[name])

    def vocabulary(self) -> list[str]:
        """Every word the grammar can emit, sorted."""
        return vocabulary()

    def __repr__(self) -> str:
        sizes = ", ".join(f"n_{k}={v}" for k, v in self.sizes.items())
        return f"SyntheticLanguage(seed={self.seed}, {sizes})"


def _check_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")


def vocabulary() -> list[str]:
    """Every word the grammar can emit, sorted."""
    words: set[str] = set(FIRST_NAMES + LAST_NAMES + ORG_HEADS + ORG_MIDDLES + ORG_SUFFIXES)
    words.update(w for loc in LOCATIONS for w in loc)
    words.update(w for pair in PERSON_NOUNS + ORG_NOUNS for w in pair)
    words.update(ADJECTIVES + SINGULAR_DETERMINERS + PLURAL_DETERMINERS)
    words.update(f for verbs in VERBS.values() for v in verbs for f in v.forms)
    for phrases in list(TOPIC_PHRASES.values()) + list(TIME_PHRASES.values()):
        words.update(w for p in phrases for w in p)
    words.update(PLACE_PREPOSITIONS + ADVERBS + FUNCTION_WORDS)
    return sorted(words)
