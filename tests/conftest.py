"""Shared fixtures: every test runs in float64 where it checks numerics, with a fixed seed."""

import os

import pytest
import torch

os.environ.setdefault("VMONF_BUDGET", "smoke")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
