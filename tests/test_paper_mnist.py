"""The paper's MNIST experiment: the switches that decide Table 1, the per-epoch log, the records."""

import math
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import vmonf_mini as vm
from vmonf_mini import training
from vmonf_mini.experiments import (
    EPOCH_LOG_KEYS,
    PAPER_MNIST_VARIANTS,
    PaperMNIST,
    paper_inputs,
    paper_mnist,
    paper_pixels,
    paper_steps,
    paper_variant,
)
from vmonf_mini.records import config_differences, missing_provenance, read_record

RECORDED = Path(__file__).resolve().parent.parent / "book" / "recorded"
TINY = PaperMNIST(
    images=60, epochs=2, blocks=1, hidden=8, encoder_hidden=(16,), samples=2
)


def _pixels(n: int, d: int = 6, seed: int = 0) -> torch.Tensor:
    """Random 8-bit images / 255 (on the grid that dequantization expects)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, d), generator=g).float() / 255


def test_the_variants_differ_only_in_the_switches_and_run_the_papers_length():
    paper = PAPER_MNIST_VARIANTS["paper"]
    assert (paper.preprocessing, paper.temperature_floor) == ("logit", None)
    assert PAPER_MNIST_VARIANTS["paper_floor"] == replace(paper, temperature_floor=0.01)
    assert PAPER_MNIST_VARIANTS["raw"] == replace(
        paper, preprocessing="raw", temperature_floor=0.01
    )
    assert paper.holdout == 5_000 and paper.images is None
    assert paper_steps(30_596 - paper.holdout, paper.epochs, paper.batch_size) == 25_600


def test_a_budget_keeps_its_sizes_and_takes_the_variants_switches():
    smoke = paper_variant("paper_floor", "smoke")
    assert (smoke.epochs, smoke.preprocessing, smoke.temperature_floor) == (
        vm.experiments.PAPER_MNIST["smoke"].epochs,
        "logit",
        0.01,
    )
    with pytest.raises(ValueError, match="variant"):
        paper_variant("nope")
    with pytest.raises(ValueError, match="preprocessing"):
        PaperMNIST(images=1, epochs=1, preprocessing="sqrt")
    with pytest.raises(ValueError, match="holdout"):
        PaperMNIST(images=1, epochs=1, holdout=-1)


def test_logit_inputs_invert_to_the_pixels_within_the_dequantization_noise():
    pixels = _pixels(50, 784)
    config = replace(TINY, preprocessing="logit")
    inputs = paper_inputs(config, pixels, torch.Generator().manual_seed(0))
    assert inputs.abs().max() < 15 and inputs.min() < -5  # logit(1/512) = -6.2
    assert (paper_pixels(config, inputs) - pixels).abs().max() <= 1 / 255 + 1e-6
    assert torch.equal(paper_inputs(TINY, pixels), pixels)


@pytest.mark.parametrize("floor, expected", [(None, 1e-6), (1e-3, 1e-3)])
def test_min_temperature_none_divides_by_the_schedules_own_temperature(
    monkeypatch, floor, expected
):
    seen = []

    def spy(logits, temperature):
        seen.append(temperature)
        return torch.log_softmax(logits / temperature, dim=-1)

    monkeypatch.setattr(training, "tempered_log_q", spy)
    x, _ = vm.data.pinwheel(n_per_class=8, seed=0)
    model = vm.VMoNF(2, 2, blocks=1, encoder_hidden=(4,))
    vm.fit(
        model, x, epochs=1, batch_size=20, temperature=1e-6, min_temperature=floor,
        seed=0, progress=False,
    )  # fmt: skip
    assert seen and set(seen) == {expected}


def test_the_per_epoch_log_and_the_held_out_scores():
    x, y = _pixels(90), torch.arange(90) % 5
    config = replace(TINY, holdout=20, preprocessing="logit", temperature_floor=None)
    result = paper_mnist(config, x, y, x[:30], y[:30], probe=16)
    run = result.runs[0]
    assert len(result.subset) == 60 and "holdout_acc" in run and "test_acc" in run
    log = run["per_epoch"]
    assert sorted(log) == sorted(EPOCH_LOG_KEYS)
    assert all(len(values) == config.epochs for values in log.values())
    steps = run["steps"] // config.epochs
    assert log["temperature"] == pytest.approx(
        [math.exp(-1e-3 * steps * e) for e in (1, 2)]
    )
    assert all(0 <= v <= 1 for v in log["acc"] + log["one_hot"])
    assert all(v > 0 for v in log["encoder_grad"])


def test_a_saturated_encoder_has_one_hot_posteriors_and_exactly_zero_gradient():
    """What the paper's run meets without a floor: (logit gap) / T past about 104 in float32."""
    x, y = _pixels(60), torch.arange(60) % 5
    config = replace(TINY, temperature_rate=20.0, temperature_floor=None)
    log = paper_mnist(config, x, y, x[:10], y[:10], probe=30).runs[0]["per_epoch"]
    assert log["temperature"][-1] < 1e-15
    assert log["one_hot"][-1] == 1.0 and log["encoder_grad"][-1] == 0.0


VARIANT_RECORDS = sorted(RECORDED.glob("mnist_*_seed*.json"))


@pytest.mark.parametrize("path", VARIANT_RECORDS, ids=lambda p: p.stem)
def test_each_variant_record_has_the_codes_configuration_and_a_full_log(path):
    variant, seed = re.fullmatch(r"mnist_(\w+)_seed(\d+)", path.stem).groups()
    record = read_record(path)
    expected = replace(paper_variant(variant, "full"), seeds=(int(seed),))
    assert missing_provenance(record) == []
    assert config_differences(record, expected.as_dict()) == [], "stale record"
    (run,) = record["results"]["runs"]
    assert run["steps"] == 25_600
    assert all(len(v) == expected.epochs for v in run["per_epoch"].values())


def _variant_record(folder, name, seed, acc):
    """A record as ``make record`` writes one per seed (a tiny run's numbers, made up here)."""
    run = dict.fromkeys(vm.experiments.SUMMARY_KEYS, acc)
    run["seed"] = seed
    return vm.records.write_record(
        folder,
        f"mnist_{name}_seed{seed}",
        {"runs": [run]},
        replace(paper_variant(name), seeds=(seed,)).as_dict(),
        {},
        command="test",
        seeds=[seed],
        wall_seconds=1.0,
    )


def test_variant_records_are_read_in_the_variants_seed_order_and_summarised(tmp_path):
    for seed, acc in [(2, 0.9), (0, 0.2)]:  # seed 1 not recorded
        _variant_record(tmp_path, "paper", seed, acc)
    _variant_record(tmp_path, "raw", 0, 0.5)
    records = vm.experiments.variant_records("paper", folders=[tmp_path])
    assert [r["results"]["runs"][0]["seed"] for r in records] == [0, 2]
    summary = vm.experiments.variant_summary(records)
    assert summary["acc"] == dict(median=0.55, min=0.2, max=0.9, seeds=2)
    assert vm.experiments.variant_records("paper_floor", folders=[tmp_path]) == []
    with pytest.raises(ValueError, match="at least one record"):
        vm.experiments.variant_summary([])
    with pytest.raises(ValueError, match="variant"):
        vm.experiments.variant_records("nope", folders=[tmp_path])


def test_records_box_names_every_record_and_refuses_one_without_provenance(tmp_path):
    paths = [_variant_record(tmp_path, "paper", seed, 0.5) for seed in (0, 1)]
    records = [read_record(p) for p in paths]
    box = vm.record_html.records_box(records, "<p>body</p>")
    assert "2 recorded runs, not this build" in box
    assert all(f"mnist_paper_seed{s}.json" in box for s in (0, 1))
    del records[1]["provenance"]["commit"]
    with pytest.raises(ValueError, match="provenance"):
        vm.record_html.records_box(records, "")


def test_the_published_table_in_matched_order_gives_the_published_accuracy():
    table1 = vm.experiments.PAPER_TABLE1
    table = torch.tensor(table1["table"])[:, table1["order"]]
    assert torch.allclose(table.sum(1), torch.ones(5), atol=0.011)
    # each digit's matched cluster on the diagonal, weighted by the thesis's row totals
    rows = torch.tensor([4987, 5609, 4987, 5135, 4878], dtype=torch.float64)
    acc = float((table.diagonal().double() * rows).sum() / rows.sum())
    assert abs(acc - table1["acc"]) < 0.005
