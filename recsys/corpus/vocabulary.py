"""The demo corpus's tag vocabulary (MTAT-like), in one place.

There is deliberately no ``instrumental`` tag: songs without a singer carry ``no vocals``
(free text such as "instrumental" is mapped to it by the tagger's text search).
"""

INSTRUMENT_TAGS = [
    "piano", "guitar", "electric guitar", "bass", "drums", "strings", "violin", "cello",
    "flute", "organ", "synth", "harp", "harpsichord", "accordion", "banjo", "trumpet",
    "saxophone", "clarinet", "oboe",
]
VOCAL_TAGS = ["vocals", "male vocal", "female vocal", "no vocals"]
TEMPO_TAGS = ["fast", "slow"]
LOUDNESS_TAGS = ["loud", "quiet"]
STYLE_TAGS = [
    "folk", "rock", "classical", "country", "electronic", "ballad", "pop", "jazz", "baroque",
    "celtic", "ambient", "dance",
]
MOOD_TAGS = ["calm", "energetic", "beat", "solo"]

VOCABULARY: list[str] = (
    INSTRUMENT_TAGS + VOCAL_TAGS + TEMPO_TAGS + LOUDNESS_TAGS + STYLE_TAGS + MOOD_TAGS
)

assert len(VOCABULARY) == len(set(VOCABULARY)) <= 50
