"""RUNLOCK_IMAGE is recorded in the lock's environment, and the container recipe builds on it by digest."""

from __future__ import annotations

import pytest

from runlock import environment
from runlock.verify.envlock import container_recipe

DIGEST = "sha256:" + "ab" * 32


def test_unset_image_adds_nothing_to_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNLOCK_IMAGE", raising=False)
    assert "container" not in environment.capture()     # recipe ids of identical environments stay put


def test_image_with_digest_is_recorded_and_pinned_in_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLOCK_IMAGE", f"registry.example/team/train:1.4@{DIGEST}")
    env = environment.capture()
    assert env["container"] == {"image": "registry.example/team/train:1.4", "digest": DIGEST,
                                "ref": f"registry.example/team/train:1.4@{DIGEST}"}
    assert container_recipe(env).splitlines()[0] == f"FROM registry.example/team/train:1.4@{DIGEST}"


def test_image_without_digest_is_recorded_but_not_trusted_as_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLOCK_IMAGE", "python:3.12-slim")
    env = environment.capture()
    assert env["container"]["digest"] is None
    assert "no base image digest" in container_recipe(env)
