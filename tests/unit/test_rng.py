"""The keyed generator: a pure function of its key, and uniform enough to drive the policies."""

import torch

from shiftlab.shifts import rng


def test_pure_function_of_key():
    keys = rng.row_keys(3, 1, torch.tensor([5, 9, 5]), 0)
    u = rng.uniform(keys, 0, 16)
    assert torch.equal(u[0], u[2])
    assert not torch.equal(u[0], u[1])
    assert torch.equal(u, rng.uniform(rng.row_keys(3, 1, torch.tensor([5, 9, 5]), 0), 0, 16))


def test_every_key_component_changes_the_draw():
    base = rng.uniform(rng.row_keys(0, 0, torch.tensor([7]), 0), 0, 64)
    for args in [(1, 0, [7], 0), (0, 1, [7], 0), (0, 0, [8], 0), (0, 0, [7], 1), (0, 0, [7 + 2**32], 0)]:
        other = rng.uniform(rng.row_keys(args[0], args[1], torch.tensor(args[2]), args[3]), 0, 64)
        assert not torch.equal(base, other), args
    assert not torch.equal(base, rng.uniform(rng.row_keys(0, 0, torch.tensor([7]), 0), 1, 64))


def test_uniform_statistics():
    keys = rng.row_keys(0, 0, torch.arange(2000), 0)
    u = rng.uniform(keys, 0, 100)
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean().item() - 0.5) < 0.005
    hist = torch.histc(u, bins=10, min=0, max=1) / u.numel()
    assert (hist - 0.1).abs().max() < 0.005
    # neighbouring positions and neighbouring samples are uncorrelated
    flat = u.flatten()
    assert abs(torch.corrcoef(torch.stack([flat[:-1], flat[1:]]))[0, 1].item()) < 0.01
    assert abs(torch.corrcoef(torch.stack([u[:-1].flatten(), u[1:].flatten()]))[0, 1].item()) < 0.01


def test_randint_range():
    keys = rng.row_keys(0, 0, torch.arange(500), 0)
    high = torch.tensor([[1, 2, 7]]).expand(500, 3)
    r = rng.randint(keys, 0, 3, high)
    assert (r >= 0).all() and (r < high).all()
    assert set(r[:, 2].tolist()) == set(range(7))
