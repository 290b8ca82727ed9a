"""Shared test setup: everything offline, every test with its own image store."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from pixplan.tools.store import ImageStore


@pytest.fixture
def store(tmp_path, monkeypatch) -> ImageStore:
    """A fresh image store, also made the process default so tools called without config use it."""
    monkeypatch.setenv("PIXPLAN_STORE", str(tmp_path / "store"))
    return ImageStore(tmp_path / "store")


@pytest.fixture
def tool_config(store) -> dict:
    """The RunnableConfig that points tools at the test's store."""
    return {"configurable": {"store_dir": str(store.root)}}
