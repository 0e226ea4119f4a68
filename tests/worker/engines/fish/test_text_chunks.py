"""Long text in chunks: bounded, in order, cut at sentence boundaries (Latin and CJK)."""

from __future__ import annotations

import re

import pytest

from worker.engines.fish.text_chunks import split_text


def _letters(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_short_text_is_one_chunk() -> None:
    assert split_text("  Hello there. How are you?  ", 200) == ["Hello there. How are you?"]


def test_sentences_are_packed_up_to_the_limit_and_never_cut() -> None:
    sentences = [f"Sentence number {n} says something short." for n in range(20)]
    text = " ".join(sentences)
    chunks = split_text(text, 100)
    assert all(len(chunk) <= 100 for chunk in chunks)
    assert " ".join(chunks) == text  # order kept, nothing lost or added
    for chunk in chunks:  # every chunk starts and ends on a sentence boundary
        assert chunk.startswith("Sentence number") and chunk.endswith("short.")
    assert len(chunks) == 10  # two 41-character sentences fit in 100, three do not


def test_cjk_text_is_cut_after_its_own_punctuation() -> None:
    text = "今天天气很好。我们去公园散步吧！你觉得怎么样？好的，我们走吧。"
    chunks = split_text(text, 12)
    assert chunks == ["今天天气很好。", "我们去公园散步吧！", "你觉得怎么样？", "好的，我们走吧。"]
    assert "".join(chunks) == text  # no spaces inserted between CJK sentences


def test_a_long_sentence_is_cut_at_clauses_then_words() -> None:
    clause = "and then the fox jumped over another sleeping dog"
    text = ", ".join([clause] * 6) + "."
    chunks = split_text(text, 120)
    assert all(len(chunk) <= 120 for chunk in chunks)
    assert all(chunk.endswith((",", ".")) for chunk in chunks)  # clause boundaries
    assert _letters("".join(chunks)) == _letters(text)
    words = split_text("word " * 50, 23)
    assert all(len(chunk) <= 23 for chunk in words)
    assert words[0] == "word word word word"


def test_text_without_any_boundary_is_cut_anywhere() -> None:
    assert split_text("a" * 250, 100) == ["a" * 100, "a" * 100, "a" * 50]


def test_mixed_scripts_and_line_breaks() -> None:
    text = "First line without a stop\nSecond line. 第三句。Fourth!"
    chunks = split_text(text, 30)
    assert all(len(chunk) <= 30 for chunk in chunks)
    assert _letters("".join(chunks)) == _letters(text)
    assert chunks[0] == "First line without a stop"


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_blank_text_has_no_chunks(text: str) -> None:
    assert split_text(text, 100) == []
