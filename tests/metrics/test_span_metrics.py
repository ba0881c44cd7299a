"""Entity-level scores (seqeval, conlleval's chunking) and SQuAD's exact match / F1, against values
computed by hand from the definitions."""

import pytest

from peftbench.metrics import METRICS
from peftbench.metrics.squad import normalize_answer


def score(name, preds, refs):
    return METRICS.get(name)(preds, refs)


def test_entity_scores_count_whole_entities_with_type_start_and_end():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG", "O"]]  # 3 entities
    # PER right; LOC missed; ORG cut short (wrong end: no credit); a spurious MISC
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "I-ORG", "O", "B-MISC"]]
    # found: PER, ORG(0-1), MISC = 3; correct: PER = 1; gold 3
    assert score("entity_precision", pred, gold) == pytest.approx(1 / 3)
    assert score("entity_recall", pred, gold) == pytest.approx(1 / 3)
    assert score("entity_f1", pred, gold) == pytest.approx(1 / 3)
    assert score("token_accuracy", pred, gold) == pytest.approx(5 / 8)  # 3 of 4, then 2 of 4


def test_entity_scores_read_iob1_as_conlleval_does():
    # IOB1: an entity starts with I-; B- only between two adjacent entities of one type
    gold = [["I-PER", "I-PER", "B-PER", "O", "I-LOC"]]  # PER(0-1), PER(2), LOC(4)
    pred = [["I-PER", "I-PER", "I-PER", "O", "I-LOC"]]  # PER(0-2), LOC(4)
    assert score("entity_precision", pred, gold) == pytest.approx(1 / 2)
    assert score("entity_recall", pred, gold) == pytest.approx(1 / 3)
    assert score("entity_f1", pred, gold) == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))


def test_no_predicted_entities_score_zero_not_an_error():
    assert score("entity_f1", [["O", "O"]], [["B-PER", "O"]]) == 0.0


def test_squad_normalisation_drops_case_punctuation_articles_and_spaces():
    assert normalize_answer("  The  Eiffel-Tower, in Paris! ") == "eiffeltower in paris"
    assert normalize_answer("an apple a day") == "apple day"


def test_squad_exact_match_and_f1_take_the_best_gold_answer():
    preds = ["the Eiffel Tower", "in Paris France", "1889", ""]
    refs = [["Eiffel Tower", "tower"],  # EM 1, F1 1
            ["Paris", "Paris, France"],  # EM 0; F1 vs "paris france": p 2/3, r 1 -> 0.8
            ["in 1887"],  # EM 0, F1 0
            ["Gustave Eiffel"]]  # empty prediction of an answerable question: 0, 0
    assert score("squad_exact_match", preds, refs) == pytest.approx(1 / 4)
    assert score("squad_f1", preds, refs) == pytest.approx((1 + 0.8 + 0 + 0) / 4)


def test_squad_v2_no_answer_scores_one_only_for_an_empty_prediction():
    refs = [[], [], ["blue"]]
    preds = ["", "something", "Blue."]
    assert score("squad_exact_match", preds, refs) == pytest.approx(2 / 3)
    assert score("squad_f1", preds, refs) == pytest.approx(2 / 3)


def test_squad_f1_counts_repeated_tokens_as_a_bag():
    # pred tokens: new york new york (4), gold: new york (2): overlap 2 -> p 1/2, r 1, F1 2/3
    assert score("squad_f1", ["New York, New York"], [["New York"]]) == pytest.approx(2 / 3)
