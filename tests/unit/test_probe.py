"""The probe's parts on hand-made models and batches (no training): conditions, labels that follow
their words, the numbers of a pass, determinism, and the written table."""

from __future__ import annotations

import json

import pytest
import torch

from shiftlab.probing import ProbeTarget, conditions_for, parse_condition, run_probe
from shiftlab.probing.perturb import back_to_original, perturb
from shiftlab.probing.report import probe_table, write_probe
from shiftlab.shifts import build_policy
from shiftlab.utils.labels import IGNORE_INDEX

CLS, SEP, PAD = 1, 2, 0


def make_rows(n: int, seed: int = 0, subwords: bool = False):
    """Framed rows of 3-9 words; a word is 1 token (or 1-3 tokens with ``subwords``). Token ids >= 10."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        words = int(torch.randint(3, 10, (1,), generator=gen))
        ids, word_ids = [CLS], [-1]
        for w in range(words):
            pieces = int(torch.randint(1, 4, (1,), generator=gen)) if subwords else 1
            ids += torch.randint(10, 60, (pieces,), generator=gen).tolist()
            word_ids += [w] * pieces
        rows.append((i, ids + [SEP], word_ids + [-1]))
    return rows


def batches(rows, batch_size: int, label_of):
    """Padded batches as the task data module gives them; ``label_of(ids, word_ids)`` -> label(s)."""
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        width = max(len(ids) for _, ids, _ in chunk)
        batch = {"input_ids": torch.full((len(chunk), width), PAD), "word_ids": torch.full((len(chunk), width), -1),
                 "attention_mask": torch.zeros(len(chunk), width, dtype=torch.long),
                 "sample_ids": torch.tensor([i for i, _, _ in chunk])}
        labels = []
        for r, (_, ids, word_ids) in enumerate(chunk):
            batch["input_ids"][r, :len(ids)] = torch.tensor(ids)
            batch["word_ids"][r, :len(ids)] = torch.tensor(word_ids)
            batch["attention_mask"][r, :len(ids)] = 1
            labels.append(label_of(ids, word_ids))
        if isinstance(labels[0], list):
            batch["labels"] = torch.full((len(chunk), width), IGNORE_INDEX)
            for r, row in enumerate(labels):
                batch["labels"][r, :len(row)] = torch.tensor(row)
        else:
            batch["labels"] = torch.tensor(labels)
        out.append(batch)
    return out


def first_before_last(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """A "model" that only word order can satisfy: class 1 iff the first word's id is below the last's."""
    last = attention_mask.sum(dim=1) - 2
    first_id, last_id = input_ids[:, 1], input_ids.gather(1, last.unsqueeze(1)).squeeze(1)
    return torch.nn.functional.one_hot((first_id < last_id).long(), 2).float()


def order_label(ids, word_ids):
    return int(ids[1] < ids[-2])


def classification_target(tmp_path, batch_size=8, n=200, predict=first_before_last):
    return ProbeTarget(task="order", family="classification", label_names=["no", "yes"],
                       loader=batches(make_rows(n), batch_size, order_label), predict=predict, out_dir=tmp_path)


# ---------------------------------------------------------------------------------- conditions

def test_a_condition_reads_back_from_its_spec_and_names_itself():
    condition = parse_condition("local_shuffle:window=3,rate=1.0@word")
    assert condition.params == (("window", 3), ("rate", 1.0))
    assert condition.name == "local_shuffle_w3_word" and parse_condition(condition.spec()) == condition
    assert parse_condition("global_shuffle@token").name == "global_shuffle_token"
    assert parse_condition("identity").name == "identity"


@pytest.mark.parametrize("spec, says", [
    ("mask@word", "permutations only"),
    ("infill", "permutations only"),
    ("rotate@sentence", "sentence"),
    ("nonsense", "unknown shift policy"),
    ("token_move:speed=2@word", "unknown parameter"),
    ("token_move:rate@word", "not key=value"),
    ("local_shuffle:window=12@word", "window must be"),
])
def test_a_bad_condition_is_refused_naming_it(spec, says):
    with pytest.raises(ValueError, match=says) as error:
        parse_condition(spec)
    assert spec.split("@")[0].split(":")[0] in str(error.value)


def test_grids_start_with_identity_and_hold_each_condition_once():
    full = conditions_for("full")
    assert full[0].is_identity and sum(c.is_identity for c in full) == 1
    assert len({c.spec() for c in full}) == len(full) == 31
    assert {c.unit for c in full[1:]} == {"word", "token"}
    chosen = conditions_for(None, ["rotate@word", "identity", "rotate@word"])
    assert [c.name for c in chosen] == ["identity", "rotate_word"]
    with pytest.raises(ValueError, match="unknown probe grid"):
        conditions_for("huge")


# --------------------------------------------------------------------------------- perturbation

def test_tagging_labels_move_with_their_words():
    rows = make_rows(40, seed=3, subwords=True)

    def first_subword_labels(ids, word_ids):  # the word's index as its label, on its first sub-word
        return [w if w >= 0 and (j == 0 or word_ids[j - 1] != w) else IGNORE_INDEX for j, w in enumerate(word_ids)]

    for batch in batches(rows, 8, first_subword_labels):
        for unit in ("word", "token"):
            out = perturb(build_policy("global_shuffle", unit=unit), batch, seed=0, draw=1)
            # every label is the one of the token now at its position, which is where it came from
            assert torch.equal(out.labels, batch["labels"].gather(1, out.source_index))
            assert sorted(out.labels[out.labels >= 0].tolist()) == sorted(batch["labels"][batch["labels"] >= 0].tolist())
            special = batch["word_ids"] < 0
            assert torch.equal(out.input_ids[special], batch["input_ids"][special])  # framing and padding stay
            if unit == "word":  # whole words move: a label still sits on its word's first sub-word
                moved_words = batch["word_ids"].gather(1, out.source_index)
                labelled = out.labels >= 0
                assert torch.equal(out.labels[labelled], moved_words[labelled])
            assert torch.equal(back_to_original(out.input_ids, out.source_index), batch["input_ids"])


def test_moved_fraction_counts_moved_tokens_of_each_row():
    batch = batches(make_rows(30), 30, order_label)[0]
    assert perturb(build_policy("identity"), batch, seed=0, draw=0).moved.eq(0).all()
    rotated = perturb(build_policy("rotate", unit="word"), batch, seed=0, draw=0).moved
    assert rotated.eq(1).all()  # a rotation moves every word of rows with >= 2 words


# ------------------------------------------------------------------------------------ the runner

def test_an_order_reading_model_falls_to_chance_without_order(tmp_path):
    target = classification_target(tmp_path, n=400)
    conditions = conditions_for(None, ["global_shuffle@word", "adjacent_swap:rate=0.5@word"])
    result = run_probe(target, conditions, draws=4, seed=0, progress=False)
    identity, shuffled, swapped = result.results
    assert identity.draws == [pytest.approx({"acc": 1.0, "f1_macro": 1.0, "moved": 0.0, "acc_drop": 0.0,
                                             "f1_macro_drop": 0.0, "acceptance": 1.0})]
    mean = sum(d["acc"] for d in shuffled.draws) / 4
    assert abs(mean - 0.5) < 0.05
    assert all(d["acc_drop"] == pytest.approx(1.0 - d["acc"]) for d in shuffled.draws)
    assert all(d["acceptance"] == pytest.approx(d["acc"]) for d in shuffled.draws)  # identity is always right
    assert shuffled.right_only == 0.0  # nothing is wrong unpermuted
    assert 0.5 < sum(d["acc"] for d in swapped.draws) / 4 < 1.0


def test_right_only_counts_examples_a_permutation_puts_right(tmp_path):
    wrong = lambda ids, mask: 1 - first_before_last(ids, mask)  # noqa: E731  always wrong unpermuted
    result = run_probe(classification_target(tmp_path, n=200, predict=wrong), conditions_for(None, ["global_shuffle@word"]),
                       draws=3, seed=0, progress=False)
    identity, shuffled = result.results
    assert identity.draws[0]["acc"] == 0.0
    # right under some draw = right under draw 1, 2 or 3: at least the best draw's accuracy
    assert shuffled.right_only >= max(d["acc"] for d in shuffled.draws) > 0.3


def test_a_position_free_tagger_is_untouched_by_any_permutation(tmp_path):
    rows = make_rows(60, seed=5, subwords=True)
    label_of = lambda ids, word_ids: [i % 3 if w >= 0 else IGNORE_INDEX for i, w in zip(ids, word_ids)]  # noqa: E731
    predict = lambda ids, mask: torch.nn.functional.one_hot(ids % 3, 3).float()  # noqa: E731
    target = ProbeTarget(task="tags", family="tagging", label_names=["O", "B-PER", "I-PER"],
                         loader=batches(rows, 8, label_of), predict=predict, out_dir=tmp_path)
    result = run_probe(target, conditions_for("small"), draws=2, seed=0, progress=False)
    for item in result.results:
        for draw in item.draws:
            assert draw["acc"] == 1.0 and draw["acc_drop"] == 0.0 and draw["acceptance"] == 1.0, item.condition
    assert result.skipped == []  # multi-token words: token units are not word units


def test_the_probe_does_not_depend_on_batch_size_and_is_keyed_by_seed(tmp_path):
    conditions = conditions_for(None, ["token_move:rate=0.5@word", "ngram_shuffle:n=2@word"])
    runs = [run_probe(classification_target(tmp_path, batch_size=size), conditions, draws=2, seed=seed, progress=False)
            for size, seed in ((4, 0), (32, 0), (32, 1))]
    small, large, other_seed = ([item.draws for item in r.results] for r in runs)
    assert small == large
    assert other_seed != large


def test_a_word_level_tokenizer_leaves_out_the_token_twins(tmp_path):
    result = run_probe(classification_target(tmp_path), conditions_for(None, ["rotate@word", "rotate@token",
                                                                              "ngram_shuffle:n=2@token"]),
                       draws=1, progress=False)
    assert [item.condition.name for item in result.results] == ["identity", "rotate_word", "ngram_shuffle_n2_token"]
    assert result.skipped == ["rotate@token: every test word is one token, so it equals rotate@word"]


def test_the_probe_writes_its_json_table_and_plot(tmp_path):
    result = run_probe(classification_target(tmp_path), conditions_for("small"), draws=2, progress=False)
    paths = write_probe(result, tmp_path / "out")
    assert {p.name for p in paths} == {"probe.json", "probe.md", "probe.csv", "probe.tex", "probe.png"}
    saved = json.loads((tmp_path / "out" / "probe.json").read_text())
    assert [c["name"] for c in saved["conditions"]][:2] == ["identity", "local_shuffle_w3_word"]
    assert saved["conditions"][1]["summary"]["acc"]["mean"] == pytest.approx(
        sum(d["acc"] for d in saved["conditions"][1]["draws"]) / 2)
    table = probe_table(result)
    assert table.rows[0].values[0] == "identity" and table.rows[0].n == 1 and table.rows[1].n == 2
    markdown = (tmp_path / "out" / "probe.md").read_text()
    assert "over draws" in markdown and "right_only" in markdown
    csv_header = (tmp_path / "out" / "probe.csv").read_text().splitlines()[0]
    assert "acc:mean" in csv_header and "acceptance:std" in csv_header


def test_a_run_keeps_the_means_of_every_condition_probed_so_far(tmp_path):
    from shiftlab.probing.report import record_in_run

    target = classification_target(tmp_path)
    record_in_run(run_probe(target, conditions_for(None, ["rotate@word"]), draws=2, progress=False), tmp_path)
    record_in_run(run_probe(target, conditions_for(None, ["global_shuffle@word"]), draws=1, progress=False), tmp_path)
    saved = json.loads((tmp_path / "probe_metrics.json").read_text())
    assert {"order/probe/rotate_word/acc", "order/probe/global_shuffle_word/acc", "order/probe/identity/acc",
            "order/probe/rotate_word/acceptance", "order/probe/global_shuffle_word/right_only"} <= set(saved)
