"""Recorded runs: complete provenance, the code's full configuration, and `make record` itself."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vmonf_mini.experiments import PAPER_MNIST
from vmonf_mini.records import config_differences, missing_provenance, read_record

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "book" / "recorded"
#: every record the book shows, and the configuration it must have been made with
EXPECTED = {"mnist_paper": PAPER_MNIST["full"].as_dict()}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_record_has_its_provenance_and_the_codes_full_configuration(name):
    record = read_record(RECORDED / f"{name}.json")
    assert missing_provenance(record) == []
    assert config_differences(record, EXPECTED[name]) == [], (
        "stale record: rerun `make record`"
    )
    assert record["results"]["budget"] == "full"
    assert len(record["results"]["runs"]) == len(record["provenance"]["seeds"]) >= 1


def test_records_stay_small():
    assert sum(p.stat().st_size for p in RECORDED.iterdir()) < 2 * 2**20


def test_a_changed_configuration_or_a_missing_field_is_caught(tmp_path):
    record = json.loads((RECORDED / "mnist_paper.json").read_text())
    changed = dict(PAPER_MNIST["full"].as_dict(), hidden=100)
    assert config_differences(record, changed) == ["hidden: record 200, code 100"]
    del record["provenance"]["commit"]
    assert missing_provenance(record) == ["commit"]


def test_make_record_runs_on_the_smoke_budget(tmp_path):
    import vmonf_mini as vm

    try:
        vm.data.mnist(digits=range(5), split="test", download=False)
    except vm.mnist.MNISTUnavailable:
        pytest.skip("MNIST is not in the download cache (CI copies it from ../shared)")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "record.py"),
            "--budget",
            "smoke",
            "--out",
            str(tmp_path),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = read_record(tmp_path / "mnist_paper.json")
    assert missing_provenance(record) == []
    assert config_differences(record, PAPER_MNIST["smoke"].as_dict()) == []
    assert record["arrays"]["samples"].shape == (1, 5, 4, 784)
    assert 0 <= record["results"]["runs"][0]["acc"] <= 1
