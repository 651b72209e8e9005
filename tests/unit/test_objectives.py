"""Shift-prediction objectives (docs/shift_catalogue.md, B.3), checked against hand computations.

Every test runs on a tiny word vocabulary and tiny BERT / GPT-2 backbones built from config,
on batches made by the real :class:`ShiftCollator` from hand-made encoded items (so framing
tokens and padding are present). Each objective's loss is recomputed here from its definition
with explicit Python loops over rows and positions, and a hand-written log-softmax / mean NLL;
only the backbone's hidden states and the objective's own head modules are reused.
"""

from __future__ import annotations

import math

import pytest
import torch

from shiftlab.data.collate import ShiftCollator
from shiftlab.data.tokenization import Framing, build_word_tokenizer
from shiftlab.models import OBJECTIVES, SpecialIds, build_backbone, build_objective
from shiftlab.shifts import Vocab, build_policy
from shiftlab.tasks.pretraining import ShiftPretrainModule

WORDS = (
    "the a cat dog sat ran on under mat rug big small red blue quickly slowly and then home away"
).split()
TOKENIZER = build_word_tokenizer(WORDS)
SPECIAL = SpecialIds(pad=TOKENIZER.pad_token_id, sep=TOKENIZER.sep_token_id, mask=TOKENIZER.mask_token_id)
# Three rows of different lengths: the batch has padding in two of them.
SENTENCES = [WORDS[0:8], WORDS[8:13], WORDS[13:20]]
HIDDEN = 32
MAX_POSITIONS = 64

ENCODER_OBJECTIVES = [n for n, c in OBJECTIVES.items() if "encoder" in c.KINDS]
DECODER_OBJECTIVES = [n for n, c in OBJECTIVES.items() if "decoder" in c.KINDS]
POLICIES = {
    "mask": ("mask", {"rate": 0.4}),
    "infill": ("infill", {"rate": 0.6}),
    "global_shuffle": ("global_shuffle", {}),
    "token_move": ("token_move", {"rate": 0.5, "max_distance": 3}),
}
OFFSET_D = 2  # small, so that some offsets are clipped
OVERFIT_STEPS = 60


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- builders


def encoder_backbone(seed: int = 0):
    torch.manual_seed(seed)
    config = {
        "hidden_size": HIDDEN, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": MAX_POSITIONS, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
    }
    spec = {"name": "tiny-bert", "kind": "encoder", "model_type": "bert", "config": config}
    return build_backbone(spec, TOKENIZER, with_lm_head=True)


def decoder_backbone(seed: int = 0):
    torch.manual_seed(seed)
    config = {
        "n_embd": HIDDEN, "n_layer": 1, "n_head": 2, "n_positions": MAX_POSITIONS,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
    }
    spec = {"name": "tiny-gpt2", "kind": "decoder", "model_type": "gpt2", "config": config}
    return build_backbone(spec, TOKENIZER, with_lm_head=True)


def encoder_decoder_backbone(seed: int = 0):
    torch.manual_seed(seed)
    config = {
        "d_model": HIDDEN, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
        "decoder_attention_heads": 2, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
        "max_position_embeddings": MAX_POSITIONS, "dropout": 0.0, "attention_dropout": 0.0,
    }
    spec = {"name": "tiny-bart", "kind": "encoder_decoder", "model_type": "bart", "config": config}
    return build_backbone(spec, TOKENIZER, with_lm_head=True)


def backbone_for(name: str, seed: int = 0):
    build = {"encoder": encoder_backbone, "decoder": decoder_backbone, "encoder_decoder": encoder_decoder_backbone}
    return build[OBJECTIVES[name].KINDS[0]](seed)


def make_items(kind: str, sentences=SENTENCES):
    """Items in the format of ``EncodedDataset.__getitem__``: framed ids, word ids -1 on framing."""
    framing = Framing.for_backbone(kind, TOKENIZER)
    items = []
    for index, words in enumerate(sentences):
        content = TOKENIZER.convert_tokens_to_ids(list(words))
        ids = list(framing.prefix) + content + list(framing.suffix)
        word_ids = [-1] * len(framing.prefix) + list(range(len(content))) + [-1] * len(framing.suffix)
        items.append({"sample_id": index, "epoch": 0, "input_ids": torch.tensor(ids), "word_ids": torch.tensor(word_ids)})
    return items


def make_batch(kind: str, policy: str = "global_shuffle", sentences=SENTENCES) -> dict:
    name, params = POLICIES.get(policy, (policy, {}))
    shift = build_policy(name, **params)
    if shift.NEEDS_VOCAB:
        shift.bind_vocab(Vocab(size=len(TOKENIZER), pad_id=TOKENIZER.pad_token_id, mask_id=TOKENIZER.mask_token_id,
                               special_ids=tuple(TOKENIZER.all_special_ids)))
    collate = ShiftCollator(shift, seed=0, pad_id=TOKENIZER.pad_token_id)
    batch = collate(make_items(kind, sentences))
    # The policy contract the hand computations rely on: shifted[j] == original[source_index[j]]
    # wherever the token is an original one.
    original = torch.gather(batch["original_ids"], 1, batch["source_index"])
    kept = ~batch["replaced_mask"] & batch["attention_mask"].bool()
    assert torch.equal(batch["input_ids"][kept], original[kept])
    return batch


def content_positions(b: int, sentences=SENTENCES) -> list[int]:
    """Positions of row ``b`` that hold words: after the one framing prefix token, before the suffix."""
    return list(range(1, 1 + len(sentences[b])))


def row_length(b: int, sentences=SENTENCES) -> int:
    return len(sentences[b]) + 2  # one prefix + one suffix framing token


def moved(batch: dict, b: int, j: int) -> bool:
    return int(batch["source_index"][b, j]) != j


# ----------------------------------------------------------------------------- hand-written losses


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    top = logits.max()
    return logits - top - torch.log(torch.exp(logits - top).sum())


def mean_nll(examples: list[tuple[torch.Tensor, int]]) -> torch.Tensor:
    """``examples``: (1-D logits, target class) pairs; mean of ``-log softmax(logits)[target]``."""
    assert examples, "the hand computation found no target: the test batch is too easy"
    return torch.stack([-log_softmax(logits.float())[target] for logits, target in examples]).mean()


def run_objective(objective, backbone, batch):
    inputs = objective.model_inputs(batch)
    hidden = backbone.hidden(inputs["input_ids"], inputs["attention_mask"])
    return objective(hidden, batch, inputs, backbone), inputs


def hidden_of(backbone, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return backbone.hidden(ids, mask)


def pair_score(objective, h_i: torch.Tensor, h_j: torch.Tensor) -> torch.Tensor:
    return (objective.scorer.query(h_i) * objective.scorer.key(h_j)).sum() / math.sqrt(HIDDEN)


def expected_token_restore(objective, backbone, batch):
    hidden = hidden_of(backbone, batch["input_ids"], batch["attention_mask"])
    examples = []
    for b in range(len(SENTENCES)):
        for j in content_positions(b):
            if moved(batch, b, j):
                examples.append((backbone.vocab_logits(hidden[b, j]), int(batch["original_ids"][b, j])))
    return mean_nll(examples)


def expected_pointer(objective, backbone, batch):
    hidden = hidden_of(backbone, batch["input_ids"], batch["attention_mask"])
    examples = []
    for b in range(len(SENTENCES)):
        content = content_positions(b)
        for i in content:
            if not moved(batch, b, i):
                continue
            # Where original token i is now: the shifted position j with source_index[j] == i.
            now_at = [j for j in content if int(batch["source_index"][b, j]) == i]
            assert len(now_at) == 1
            scores = torch.stack([pair_score(objective, hidden[b, i], hidden[b, j]) for j in content])
            examples.append((scores, content.index(now_at[0])))
    return mean_nll(examples)


def expected_origin(objective, backbone, batch):
    hidden = hidden_of(backbone, batch["input_ids"], batch["attention_mask"])
    examples = []
    for b in range(len(SENTENCES)):
        content = content_positions(b)
        for j in content:
            if not moved(batch, b, j):
                continue
            scores = torch.stack([pair_score(objective, hidden[b, j], hidden[b, k]) for k in content])
            examples.append((scores, content.index(int(batch["source_index"][b, j]))))
    return mean_nll(examples)


def expected_offset(objective, backbone, batch):
    hidden = hidden_of(backbone, batch["input_ids"], batch["attention_mask"])
    examples = []
    for b in range(len(SENTENCES)):
        for j in content_positions(b):
            offset = int(batch["source_index"][b, j]) - j
            target = min(max(offset, -OFFSET_D), OFFSET_D) + OFFSET_D
            examples.append((objective.head(hidden[b, j]), target))
    return mean_nll(examples)


def expected_detect(objective, backbone, batch):
    hidden = hidden_of(backbone, batch["input_ids"], batch["attention_mask"])
    examples = []
    for b in range(len(SENTENCES)):
        for j in content_positions(b):
            examples.append((objective.head(hidden[b, j]), int(moved(batch, b, j))))
    return mean_nll(examples)


def next_token_examples(backbone, rows: list[list[int]], scored: list[list[bool]]):
    """Next-token (logits, target) pairs over right-padded ``rows``; ``scored[b][t]``: is token t a target."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), TOKENIZER.pad_token_id)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, : len(row)] = torch.tensor(row)
        mask[b, : len(row)] = 1
    hidden = hidden_of(backbone, ids, mask)
    examples = []
    for b, row in enumerate(rows):
        for t in range(1, len(row)):
            if scored[b][t]:
                examples.append((backbone.vocab_logits(hidden[b, t - 1]), row[t]))
    return examples


def unpadded_rows(ids: torch.Tensor) -> list[list[int]]:
    return [ids[b, : row_length(b)].tolist() for b in range(len(SENTENCES))]


def expected_clm(objective, backbone, batch):
    rows = unpadded_rows(batch["original_ids"])
    return mean_nll(next_token_examples(backbone, rows, [[True] * len(r) for r in rows]))


def expected_clm_shifted(objective, backbone, batch):
    rows = unpadded_rows(batch["input_ids"])
    return mean_nll(next_token_examples(backbone, rows, [[True] * len(r) for r in rows]))


def deshuffle_rows(batch) -> tuple[list[list[int]], list[list[bool]]]:
    """``shifted (framed) + [sep] + original (framed)`` per row, and which tokens are scored."""
    rows, scored = [], []
    for b in range(len(SENTENCES)):
        length = row_length(b)
        shifted = batch["input_ids"][b, :length].tolist()
        original = batch["original_ids"][b, :length].tolist()
        rows.append(shifted + [SPECIAL.sep] + original)
        scored.append([False] * (length + 1) + [True] * length)
    return rows, scored


def expected_deshuffle(objective, backbone, batch):
    rows, scored = deshuffle_rows(batch)
    return mean_nll(next_token_examples(backbone, rows, scored))


def expected_mlm(objective, backbone, batch):
    hidden = hidden_of(backbone, batch["input_ids"], batch["attention_mask"])
    examples = []
    for b in range(len(SENTENCES)):
        for j in content_positions(b):
            if batch["target_mask"][b, j]:
                source = int(batch["source_index"][b, j])
                examples.append((backbone.vocab_logits(hidden[b, j]), int(batch["original_ids"][b, source])))
    return mean_nll(examples)


def expected_seq_order(objective, backbone, batch):
    hidden = hidden_of(backbone, batch["input_ids"], batch["attention_mask"])
    examples = []
    for b in range(len(SENTENCES)):
        changed = any(moved(batch, b, j) or bool(batch["replaced_mask"][b, j]) for j in content_positions(b))
        examples.append((objective.head(hidden[b, 0]), int(changed)))
    return mean_nll(examples)


def expected_detect3(objective, backbone, batch):
    hidden = hidden_of(backbone, batch["input_ids"], batch["attention_mask"])
    examples = []
    for b in range(len(SENTENCES)):
        for j in content_positions(b):
            label = 2 if batch["replaced_mask"][b, j] else int(moved(batch, b, j))
            examples.append((objective.head(hidden[b, j]), label))
    return mean_nll(examples)


def expected_seq2seq_denoise(objective, backbone, batch):
    """The encoder reads the shifted rows; the decoder reads [start] + original[:-1] and
    predicts the original: next-token NLL by hand over every real original token."""
    model = backbone.model
    examples = []
    for b in range(len(SENTENCES)):
        length = row_length(b)
        source = batch["input_ids"][b : b + 1, :length]
        target = batch["original_ids"][b, :length].tolist()
        decoder_in = torch.tensor([[model.config.decoder_start_token_id] + target[:-1]])
        out = model(input_ids=source, attention_mask=torch.ones_like(source), decoder_input_ids=decoder_in)
        examples += [(out.logits[0, t], target[t]) for t in range(length)]
    return mean_nll(examples)


EXPECTED = {
    "seq2seq_denoise": expected_seq2seq_denoise,
    "mlm": expected_mlm,
    "seq_order": expected_seq_order,
    "token_restore": expected_token_restore,
    "pointer": expected_pointer,
    "origin": expected_origin,
    "offset": expected_offset,
    "detect": expected_detect,
    "clm": expected_clm,
    "clm_shifted": expected_clm_shifted,
    "deshuffle": expected_deshuffle,
    "causal_detect": expected_detect,
}
PARAMS = {"offset": {"max_offset": OFFSET_D}}


# ----------------------------------------------------------------------------- 1. losses by hand


def test_every_objective_has_a_hand_computation():
    assert set(EXPECTED) == set(OBJECTIVES)


SHIFTING = [p for p in POLICIES if p not in ("mask", "infill")]


@pytest.mark.parametrize("policy", SHIFTING)
@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_loss_matches_hand_computation(name, policy):
    backbone = backbone_for(name).eval()
    objective = build_objective(name, backbone, SPECIAL, **PARAMS.get(name, {})).eval()
    if name == "mlm":
        policy = "mask"  # mlm scores the positions a masking policy marks; shifting policies mark none
    batch = make_batch(backbone.kind, policy)
    assert (batch["moved_mask"].any() or policy == "mask") and not batch["attention_mask"].all()  # moves and padding
    if name == "offset":
        clipped = (batch["source_index"] - torch.arange(batch["source_index"].shape[1])).abs() > OFFSET_D
        assert clipped.any() or policy != "global_shuffle"
    with torch.no_grad():
        result, _ = run_objective(objective, backbone, batch)
        expected = EXPECTED[name](objective, backbone, batch)
    assert torch.isfinite(result.loss)
    torch.testing.assert_close(result.loss, expected, rtol=1e-5, atol=1e-5)


def test_pointer_and_origin_targets_differ_on_the_test_batch():
    """The batch's permutations are not involutions, so swapping the two targets would be caught."""
    backbone = encoder_backbone().eval()
    pointer = build_objective("pointer", backbone, SPECIAL).eval()
    batch = make_batch("encoder")
    with torch.no_grad():
        loss, _ = run_objective(pointer, backbone, batch)
        as_origin = expected_origin(pointer, backbone, batch)
    assert not torch.allclose(loss.loss, as_origin)


# ----------------------------------------------------------------------------- 2. clm == transformers' loss


def hf_causal_lm_loss(backbone, ids, mask, labels=None):
    if labels is None:
        labels = ids.masked_fill(mask == 0, -100)
    return backbone.model(input_ids=ids, attention_mask=mask, labels=labels).loss


@pytest.mark.parametrize("name, key", [("clm", "original_ids"), ("clm_shifted", "input_ids")])
def test_clm_equals_transformers_loss(name, key):
    backbone = decoder_backbone().eval()
    objective = build_objective(name, backbone, SPECIAL)
    batch = make_batch("decoder")
    assert not torch.equal(batch["input_ids"], batch["original_ids"])
    with torch.no_grad():
        result, inputs = run_objective(objective, backbone, batch)
        expected = hf_causal_lm_loss(backbone, batch[key], batch["attention_mask"])
    assert torch.equal(inputs["input_ids"], batch[key])
    torch.testing.assert_close(result.loss, expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- 3. deshuffle


def test_deshuffle_builds_shifted_sep_original_then_padding():
    backbone = decoder_backbone().eval()
    objective = build_objective("deshuffle", backbone, SPECIAL)
    batch = make_batch("decoder")
    inputs = objective.model_inputs(batch)
    rows, scored = deshuffle_rows(batch)
    width = 2 * max(row_length(b) for b in range(len(SENTENCES))) + 1
    assert inputs["input_ids"].shape == inputs["attention_mask"].shape == inputs["labels"].shape == (len(rows), width)
    for b, row in enumerate(rows):
        padding = width - len(row)
        assert inputs["input_ids"][b].tolist() == row + [SPECIAL.pad] * padding
        assert inputs["attention_mask"][b].tolist() == [1] * len(row) + [0] * padding
        labels = [token if is_scored else -100 for token, is_scored in zip(row, scored[b])] + [-100] * padding
        assert inputs["labels"][b].tolist() == labels
    with torch.no_grad():
        result, _ = run_objective(objective, backbone, batch)
        expected = hf_causal_lm_loss(backbone, inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
    torch.testing.assert_close(result.loss, expected, rtol=1e-5, atol=1e-5)


def test_deshuffle_too_long_raises_mentioning_max_length():
    backbone = decoder_backbone()
    objective = build_objective("deshuffle", backbone, SPECIAL)
    # 29 words + 2 framing = 31 tokens: 2 * 31 + 1 = 63 positions fit in 64.
    fits = [(WORDS * 2)[:29]]
    assert objective.model_inputs(make_batch("decoder", sentences=fits))["input_ids"].shape[1] == 63
    # 30 words: 65 positions do not.
    too_long = [(WORDS * 2)[:30]]
    with pytest.raises(ValueError, match="max_length"):
        objective.model_inputs(make_batch("decoder", sentences=too_long))


def test_deshuffle_needs_a_separator():
    with pytest.raises(ValueError, match="separator"):
        build_objective("deshuffle", decoder_backbone(), SpecialIds(pad=TOKENIZER.pad_token_id, sep=None))


# ----------------------------------------------------------------------------- 4. nothing moved


@pytest.mark.parametrize("name", ["token_restore", "pointer", "origin"])
def test_no_move_gives_a_differentiable_zero(name):
    backbone = encoder_backbone()
    objective = build_objective(name, backbone, SPECIAL)
    batch = make_batch("encoder", "identity")
    assert not batch["moved_mask"].any()
    result, _ = run_objective(objective, backbone, batch)
    assert result.loss.requires_grad
    assert result.loss.item() == 0.0, f"{name} with nothing moved gave {result.loss.item()}, not 0"
    result.loss.backward()
    for parameter_name, parameter in [*backbone.named_parameters(), *objective.named_parameters()]:
        if parameter.grad is not None:
            assert torch.isfinite(parameter.grad).all(), f"{name}: non-finite gradient on {parameter_name}"


def test_nothing_moved_keeps_a_combined_loss_finite():
    """A batch where nothing moved (identity control, or a low-rate policy on short rows) must not
    turn the weighted total of several objectives into NaN."""
    backbone = encoder_backbone()
    objectives = {name: build_objective(name, backbone, SPECIAL) for name in ("pointer", "detect")}
    total, logs = ShiftPretrainModule(backbone, objectives).compute_losses(make_batch("encoder", "identity"))
    assert torch.isfinite(total), f"total loss {total.item()} (logs: {logs})"


def test_detect_with_nothing_moved_still_has_a_loss():
    backbone = encoder_backbone()
    objective = build_objective("detect", backbone, SPECIAL)
    result, _ = run_objective(objective, backbone, make_batch("encoder", "identity"))
    assert result.loss.item() > 0.0
    result.loss.backward()
    assert objective.head.weight.grad is not None and objective.head.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- 5. build_objective


def test_unknown_objective_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown objective") as error:
        build_objective("nope", encoder_backbone(), SPECIAL)
    for name in OBJECTIVES:
        assert name in str(error.value)


@pytest.mark.parametrize(
    "name, build, fitting",
    [("pointer", decoder_backbone, DECODER_OBJECTIVES), ("clm", encoder_backbone, ENCODER_OBJECTIVES)],
    ids=["encoder-objective-on-decoder", "decoder-objective-on-encoder"],
)
def test_objective_on_the_wrong_backbone_kind(name, build, fitting):
    backbone = build()
    with pytest.raises(ValueError) as error:
        build_objective(name, backbone, SPECIAL)
    message = str(error.value)
    assert name in message and backbone.kind in message
    listed = message.rsplit(":", 1)[1]  # "...; objectives for a(n) <kind>: a, b, c"
    assert [n.strip() for n in listed.split(",")] == fitting


@pytest.mark.parametrize("name, params", [("offset", {"max_offset": 0}), ("detect", {"bogus": 1}), ("pointer", {"max_offset": 3})])
def test_bad_parameters_raise_value_error(name, params):
    with pytest.raises(ValueError, match=name):
        build_objective(name, encoder_backbone(), SPECIAL, **params)


# ----------------------------------------------------------------------------- 6. several objectives


@pytest.mark.parametrize(
    "kind, first, second",
    [("encoder", "token_restore", "detect"), ("decoder", "clm", "causal_detect")],
)
def test_weighted_sum_of_objectives(kind, first, second):
    backbone = (encoder_backbone() if kind == "encoder" else decoder_backbone()).eval()
    objectives = {name: build_objective(name, backbone, SPECIAL) for name in (first, second)}
    module = ShiftPretrainModule(backbone, objectives, {first: 1.0, second: 0.5})
    batch = make_batch(kind)
    with torch.no_grad():
        total, logs = module.compute_losses(batch)
        alone = {name: run_objective(objective, backbone, batch)[0].loss for name, objective in objectives.items()}
    torch.testing.assert_close(total, 1.0 * alone[first] + 0.5 * alone[second], rtol=1e-5, atol=1e-6)
    for name in (first, second):
        torch.testing.assert_close(logs[name].loss, alone[name], rtol=1e-5, atol=1e-6)


def test_missing_weight_defaults_to_one():
    backbone = encoder_backbone()
    module = ShiftPretrainModule(backbone, {n: build_objective(n, backbone, SPECIAL) for n in ("detect", "offset")}, {"detect": 2.0})
    assert module.weights == {"detect": 2.0, "offset": 1.0}


def test_weights_naming_an_unknown_objective_raise():
    backbone = encoder_backbone()
    with pytest.raises(ValueError, match="pointer"):
        ShiftPretrainModule(backbone, {"detect": build_objective("detect", backbone, SPECIAL)}, {"detect": 1.0, "pointer": 0.5})


def test_no_objective_raises():
    with pytest.raises(ValueError, match="at least one"):
        ShiftPretrainModule(encoder_backbone(), {})


# ----------------------------------------------------------------------------- 7. overfitting one batch


OVERFIT_POLICY = {"mlm": "mask", "seq_order": "token_move"}  # mlm needs targets; seq_order both classes


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_overfits_one_batch(name):
    backbone = backbone_for(name)
    module = ShiftPretrainModule(backbone, {name: build_objective(name, backbone, SPECIAL)})
    batch = make_batch(backbone.kind, OVERFIT_POLICY.get(name, "global_shuffle"))
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
    losses = []
    for _ in range(OVERFIT_STEPS):
        loss, _ = module.compute_losses(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    final = module.compute_losses(batch)[0].item()
    assert final < 0.4 * losses[0], f"{name}: loss {losses[0]:.3f} -> {final:.3f}"


def test_detect_three_way_labels_replaced_tokens():
    backbone = encoder_backbone().eval()
    objective = build_objective("detect", backbone, SPECIAL, classes=3).eval()
    batch = make_batch("encoder", "mask")
    assert batch["replaced_mask"].any()
    with torch.no_grad():
        result, _ = run_objective(objective, backbone, batch)
        torch.testing.assert_close(result.loss, expected_detect3(objective, backbone, batch), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="classes"):
        build_objective("detect", backbone, SPECIAL, classes=4)


def test_seq2seq_denoise_equals_transformers_loss_and_builds_span_targets():
    backbone = encoder_decoder_backbone().eval()
    batch = make_batch("encoder_decoder", "global_shuffle")
    objective = build_objective("seq2seq_denoise", backbone, SPECIAL).eval()
    labels = batch["original_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    with torch.no_grad():
        ours, _ = run_objective(objective, backbone, batch)
        theirs = backbone.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss
    torch.testing.assert_close(ours.loss, theirs, rtol=1e-5, atol=1e-5)

    spans = build_objective("seq2seq_denoise", backbone, SPECIAL, target="spans")
    infill = make_batch("encoder_decoder", "infill")
    targets = spans.labels(infill)
    for b in range(len(SENTENCES)):
        hidden = [int(t) for t in infill["restore_ids"][b] if t != -100]
        row = [int(t) for t in targets[b] if t != -100]
        assert row[-1] == TOKENIZER.sep_token_id
        assert [t for t in row[:-1] if t != TOKENIZER.mask_token_id] == hidden
        starts = sum(1 for j in range(infill["restore_ids"].shape[1])
                     if infill["restore_ids"][b, j] != -100 and (j == 0 or infill["restore_ids"][b, j - 1] == -100))
        assert row.count(TOKENIZER.mask_token_id) == starts
    with pytest.raises(ValueError, match="target"):
        build_objective("seq2seq_denoise", backbone, SPECIAL, target="everything")


def test_objectives_without_targets_under_a_policy_fail_early():
    from shiftlab.models.objectives import check_policy_fits

    backbone = encoder_backbone()
    mlm = build_objective("mlm", backbone, SPECIAL)
    with pytest.raises(ValueError, match="no targets under shift policy 'token_move'.*mask, infill"):
        check_policy_fits(mlm, build_policy("token_move"))
    check_policy_fits(mlm, build_policy("mask"))
    check_policy_fits(mlm, build_policy("compose", steps=[{"name": "mask"}, {"name": "rotate"}]))
    with pytest.raises(ValueError, match="puts new tokens in"):
        check_policy_fits(build_objective("detect", backbone, SPECIAL, classes=3), build_policy("delete"))
    check_policy_fits(build_objective("detect", backbone, SPECIAL), build_policy("identity"))
