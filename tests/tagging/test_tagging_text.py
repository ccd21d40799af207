"""Free text -> tags with the bundled sentence-embedding model (offline)."""

from __future__ import annotations

import pytest

from embeddings.text import TextQueryError, TextTagMapper
from recsys.corpus import VOCABULARY


@pytest.fixture(scope="session")
def mapper():
    return TextTagMapper(VOCABULARY)


def test_no_vocals_and_instrumental_map_to_the_same_tag(mapper):
    a, b = mapper.understand("no vocals"), mapper.understand("instrumental")
    assert a.tags == b.tags == ["no vocals"]
    assert a.not_tags == b.not_tags == []
    assert mapper.understand("without singing").tags == ["no vocals"]


def test_gibberish_maps_to_nothing(mapper):
    for text in ["qwzx blorf", "asdkjhasd lkjqwe", "hello world"]:
        result = mapper.understand(text)
        assert result.tags == [] and result.not_tags == [], text
        assert result.unmatched


def test_negation_gives_not_tags(mapper):
    result = mapper.understand("energetic rock with electric guitar, no drums")
    assert result.tags == ["energetic", "rock", "electric guitar"]
    assert result.not_tags == ["drums"]
    assert mapper.understand("without piano").not_tags == ["piano"]
    assert mapper.understand("not instrumental").not_tags == ["no vocals"]


def test_sentence_maps_to_several_tags(mapper):
    result = mapper.understand("a calm piano song with a woman singing")
    assert set(result.tags) == {"calm", "piano", "female vocal"}


def test_semantic_match_reports_similarity(mapper):
    result = mapper.understand("man singing over an acoustic guitar, heavy metal")
    assert "male vocal" in result.tags and "guitar" in result.tags
    semantic = [m for m in result.matches if m.method == "semantic"]
    assert semantic and all(mapper.threshold <= m.similarity <= 1 for m in semantic)
    d = result.to_dict()
    assert set(d) == {"text", "tags", "not_tags", "matches", "unmatched"}


def test_bad_text_gets_a_typed_error(mapper):
    for bad in ["", "   ", "x" * 501, None]:
        with pytest.raises(TextQueryError):
            mapper.understand(bad)
