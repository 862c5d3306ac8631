"""Recorded runs: complete provenance, the code's full configuration, and `make record` itself."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def _write(folder, **overrides):
    from vmonf_mini.records import write_record

    arguments = dict(
        folder=folder,
        name="r",
        results={"acc": 0.5},
        config={"epochs": 1},
        arrays={"x": np.zeros(2)},
        command="c",
        seeds=[0],
        wall_seconds=2.0,
    )
    arguments.update(overrides)
    return write_record(**arguments)


@pytest.mark.parametrize("wall", [float("nan"), float("inf"), -1.0, "5", None, True])
def test_a_record_without_a_finite_wall_time_is_refused_before_any_file(tmp_path, wall):
    """D11: NaN wall time was written as bare NaN and counted as complete provenance."""
    with pytest.raises(ValueError, match="wall_seconds must be a finite number"):
        _write(tmp_path, wall_seconds=wall)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "results, place",
    [
        ({"acc": float("nan")}, "results['acc'] = nan"),
        (
            {"runs": [{"loss": [1.0, np.float32("inf")]}]},
            "results['runs'][0]['loss'][1]",
        ),
    ],
)
def test_a_non_finite_result_is_refused_and_leaves_the_old_record(
    tmp_path, results, place
):
    """D11: the JSON must be strict; a failed write keeps the previous record whole."""
    path = _write(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ValueError, match=re.escape(place)):
        _write(tmp_path, results=results, arrays={"x": np.ones(5)})
    with pytest.raises(ValueError, match=r"config\['lr'\] = -inf"):
        _write(tmp_path, config={"lr": -np.inf})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert read_record(path)["results"] == {"acc": 0.5}


def test_a_record_is_strict_json_and_complete(tmp_path):
    path = _write(tmp_path, results={"acc": np.float64(0.25)}, wall_seconds=0)
    record = json.loads(
        path.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}")
    )
    assert record["provenance"]["wall_seconds"] == 0.0
    assert missing_provenance(read_record(path)) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.npz"]


def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    """Writing is atomic: an error while saving the arrays leaves neither file behind."""

    def broken(file, **arrays):
        file.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        _write(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_read_record_refuses_bare_nan(tmp_path):
    path = _write(tmp_path)
    path.write_text(
        path.read_text().replace('"wall_seconds": 2.0', '"wall_seconds": NaN')
    )
    with pytest.raises(ValueError, match="NaN, which strict JSON does not allow"):
        read_record(path)


@pytest.mark.parametrize("wall", [float("nan"), float("inf"), -3.0, "long", True])
def test_a_wall_time_that_is_not_a_finite_number_counts_as_missing(wall):
    """D11: a NaN wall time counted as complete provenance (and the box said "nan min")."""
    from vmonf_mini.record_html import record_box

    record = json.loads((RECORDED / "mnist_paper.json").read_text())
    record["provenance"]["wall_seconds"] = wall
    assert missing_provenance(record) == ["wall_seconds"]
    with pytest.raises(ValueError, match="lacks provenance for its box"):
        record_box(record, "")


@pytest.mark.parametrize(
    "record, problem",
    [
        ({"provenance": ["x"], "config": {"a": 1}}, "'provenance' must be a mapping"),
        ({"provenance": {}, "config": [1]}, "'config' must be a mapping"),
        (["not", "a", "record"], "a record must be a mapping"),
    ],
)
def test_the_checkers_name_a_malformed_record(record, problem):
    """D11: a non-dict provenance crashed with AttributeError."""
    with pytest.raises(ValueError, match=problem):
        missing_provenance(record)
    if "provenance" not in problem:
        with pytest.raises(ValueError, match=problem):
            config_differences(record, {"a": 1})


def test_a_null_config_is_missing_and_cannot_be_compared():
    """D11: config_differences crashed with "'NoneType' object is not iterable"."""
    record = {"provenance": {}, "config": None}
    assert missing_provenance(record)[-1] == "config"
    with pytest.raises(ValueError, match="no configuration"):
        config_differences(record, {"a": 1})


def test_a_box_of_several_records_is_refused_when_one_lacks_provenance():
    from vmonf_mini.record_html import records_box

    record = json.loads((RECORDED / "mnist_paper.json").read_text())
    assert "2 recorded runs" in records_box([record, record], "<p>body</p>")
    incomplete = {**record, "provenance": {**record["provenance"], "commit": ""}}
    with pytest.raises(
        ValueError, match="lacks provenance for its box: \\['commit'\\]"
    ):
        records_box([record, incomplete], "")
    with pytest.raises(ValueError, match="at least one record"):
        records_box([], "")
