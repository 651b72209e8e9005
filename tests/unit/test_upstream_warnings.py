"""Known upstream warnings are silenced by default, each with its reason; the switch shows them."""

from __future__ import annotations

import warnings

import pytest

from shiftlab.utils.upstream_warnings import ENV, KNOWN, silence_known_upstream_warnings

NOISE = "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)` instead."


def emitted(message: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_known_upstream_warnings()
        warnings.warn(message, UserWarning, stacklevel=2)
    return [str(w.message) for w in caught]


def test_known_noise_is_silenced_and_anything_else_is_shown(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert emitted(NOISE) == []
    assert emitted("your learning rate is nan") == ["your learning rate is nan"]


@pytest.mark.parametrize("value", ["1", "true"])
def test_the_switch_shows_them_all(monkeypatch, value):
    monkeypatch.setenv(ENV, value)
    assert emitted(NOISE) == [NOISE]


def test_every_entry_says_why():
    assert all(len(why) > 20 for _, why in KNOWN)
