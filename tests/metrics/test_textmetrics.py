"""Text metrics against values worked out by hand (ROUGE as in Lin, 2004, and rouge-score's defaults)."""

import pytest

from peftbench.metrics import METRICS
from peftbench.metrics.text import extract_number, lcs_length, normalize, rouge_l, rouge_n, tokens


def test_tokens_lowercase_and_split_on_anything_not_alphanumeric():
    assert tokens("Hello, World! It's 2-3.") == ["hello", "world", "it", "s", "2", "3"]


@pytest.mark.parametrize("pred, ref, r1, r2, rl", [
    # the=min(2,1), cat, on, mat: 4 of 6 each way; bigrams: only "the cat" of 5; LCS the-cat-on-mat = 4
    ("the cat sat on the mat", "the cat lay on a mat", 4 / 6, 1 / 5, 4 / 6),
    # Lin's example: police, the, gunman (3 of 4); bigram "the gunman" (1 of 3); LCS 3
    ("police killed the gunman", "police kill the gunman", 3 / 4, 1 / 3, 3 / 4),
    # LCS ignores order-breaking matches: "the gunman" = 2 of 4
    ("the gunman kill police", "police killed the gunman", 3 / 4, 1 / 3, 2 / 4),
    # P = 1, R = 3/5 -> F = 2 * 0.6 / 1.6 = 0.75; bigrams P = 1, R = 2/4 -> 2/3
    ("a b c", "a b c d e", 0.75, 2 / 3, 0.75),
    ("", "a b", 0.0, 0.0, 0.0),
    ("x y", "a b", 0.0, 0.0, 0.0),
])
def test_rouge_by_hand(pred, ref, r1, r2, rl):
    assert rouge_n(pred, ref, 1) == pytest.approx(r1)
    assert rouge_n(pred, ref, 2) == pytest.approx(r2)
    assert rouge_l(pred, ref) == pytest.approx(rl)


def test_rouge_metrics_average_over_examples():
    preds, refs = ["the cat sat on the mat", "a b c"], ["the cat lay on a mat", "a b c d e"]
    assert METRICS.get("rouge1")(preds, refs) == pytest.approx((4 / 6 + 0.75) / 2)
    assert METRICS.get("rouge2")(preds, refs) == pytest.approx((1 / 5 + 2 / 3) / 2)
    assert METRICS.get("rougel")(preds, refs) == pytest.approx((4 / 6 + 0.75) / 2)


def test_lcs():
    assert lcs_length("a b c d".split(), "a c b d".split()) == 3
    assert lcs_length([], ["a"]) == 0


@pytest.mark.parametrize("text, number", [
    ("Natalia sold 48/2 = 24 clips in May.\n48 + 24 = 72\n#### 72", "72"),  # '####' wins over earlier numbers
    ("#### 1,234", "1234"),
    ("so the total is $18.50.", "18.5"),
    ("The answer is 5 apples and 7 pears", "7"),  # no '####': the last number
    ("it drops to -3 degrees", "-3"),
    ("# # # # 42", "42"),  # a BERT-style tokenizer decodes '####' with spaces: the last number still holds
    ("5.0", "5"),
    ("no number here", ""),
])
def test_extract_number(text, number):
    assert extract_number(text) == number


def test_exact_match_normalises_case_space_and_end_punctuation():
    em = METRICS.get("exact_match")
    assert em(["  The  Answer. ", "72", "7"], ["the answer", "72", "8"]) == pytest.approx(2 / 3)
    assert normalize("Yes!") == "yes"
    assert em([], []) == 0.0


def test_gsm8k_style_exact_match_after_extraction():
    preds = [extract_number(t) for t in ["so it is 72", "I think 5", "#### 1,000"]]
    refs = [extract_number(t) for t in ["... #### 72", "... #### 6", "... #### 1000"]]
    assert METRICS.get("exact_match")(preds, refs) == pytest.approx(2 / 3)
