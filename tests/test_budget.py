"""The budget switch: a chapter's choice holds for every later call; VMONF_BUDGET wins when set."""

import json

import pytest

import vmonf_mini as vm
from vmonf_mini import runtime

SIZES = {"smoke": {"epochs": 2}, "default": {"epochs": 100}, "full": {"epochs": 400}}


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("VMONF_BUDGET", raising=False)
    monkeypatch.setattr(runtime, "_chosen", None)


def test_the_chosen_budget_is_used_by_every_later_call(no_env):
    assert vm.budget() == "default"
    assert vm.budget("full") == "full"
    # the README's recipe: after vm.budget("full"), pick and budget() read the choice, not the default
    assert vm.pick(SIZES) == {"epochs": 400}
    assert vm.budget() == "full"
    assert vm.budget(" Smoke ") == "smoke" and vm.pick(SIZES) == {"epochs": 2}


def test_the_environment_wins_over_the_chapters_choice(no_env, monkeypatch):
    monkeypatch.setenv("VMONF_BUDGET", "smoke")
    assert vm.budget("full") == "smoke"
    assert vm.pick(SIZES) == {"epochs": 2}
    monkeypatch.delenv("VMONF_BUDGET")
    assert (
        vm.budget() == "full"
    )  # the choice was remembered, the environment only overrode it


def test_pick_with_an_explicit_name_does_not_change_the_choice(no_env):
    vm.budget("default")
    assert vm.pick(SIZES, "full") == {"epochs": 400}
    assert vm.budget() == "default"


def test_bad_names_are_refused(no_env, monkeypatch):
    with pytest.raises(ValueError, match="budget must be one of"):
        vm.budget("huge")
    assert vm.budget() == "default"  # a refused name is not remembered
    with pytest.raises(ValueError, match="budget must be one of"):
        vm.pick(SIZES, "huge")
    monkeypatch.setenv("VMONF_BUDGET", "huge")
    with pytest.raises(ValueError, match="VMONF_BUDGET"):
        vm.budget()


def test_the_times_file_has_every_chapter_and_budget():
    from pathlib import Path

    times = runtime.budget_times()
    chapters = sorted(
        p.stem
        for p in (Path(__file__).resolve().parents[1] / "book").glob(
            "[0-9][0-9]_*.ipynb"
        )
    )
    assert sorted(times["chapters"]) == chapters
    for chapter, by_budget in times["chapters"].items():
        assert sorted(by_budget) == sorted(runtime.BUDGETS), chapter
        for records in by_budget.values():
            assert set(records) <= set(times["hardware"]), chapter
            for record in records.values():
                assert record is None or record["status"] in (
                    "ok",
                    "failed",
                    "stopped",
                ), (chapter, record)


@pytest.mark.parametrize(
    "record, text",
    [
        (None, "not measured"),
        ({"status": "ok", "seconds": 12.4}, "12 s"),
        ({"status": "ok", "seconds": 600}, "10 min"),
        ({"status": "failed", "seconds": 30}, "failed after 30 s"),
        (
            {"status": "stopped", "seconds": 7200},
            "not run to its end (stopped after 2.0 h)",
        ),
    ],
)
def test_describe_time(record, text):
    assert runtime.describe_time(record) == text


def test_full_budget_hint_on_a_gpu_only_and_below_full(no_env, monkeypatch, capsys):
    times = {
        "hardware": {"cpu-2": {"name": "2 CPU cores"}, "h200": {"name": "NVIDIA H200"}},
        "chapters": {
            "06_pinwheel": {
                "full": {
                    "cpu-2": {"status": "stopped", "seconds": 3600},
                    "h200": {"status": "ok", "seconds": 300},
                }
            }
        },
    }
    monkeypatch.setattr(runtime, "budget_times", lambda: json.loads(json.dumps(times)))
    vm.full_budget_hint("06_pinwheel", SIZES, "cpu")
    assert capsys.readouterr().out == ""
    vm.budget("default")
    assert (
        vm.full_budget_hint("06_pinwheel", SIZES, "cuda") is None
    )  # prints; nothing to display
    text = capsys.readouterr().out
    assert "{'epochs': 400}" in text
    assert (
        "5 min on NVIDIA H200" in text
        and "not run to its end (stopped after 60 min) on 2 CPU cores" in text
    )
    vm.full_budget_hint("01_other", SIZES, "cuda")
    assert (
        "has not been measured yet (not measured on 2 CPU cores; not measured on NVIDIA H200)"
        in capsys.readouterr().out
    )
    vm.budget("full")
    vm.full_budget_hint("06_pinwheel", SIZES, "cuda")
    assert capsys.readouterr().out == ""


def test_the_books_timings_table_is_the_times_file():
    """book/timings.md shows vmonf_mini/budget_times.json as `chapter_times.py --render` writes it."""
    import importlib.util
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "bench"
    sys.path.insert(0, str(bench))
    try:
        spec = importlib.util.spec_from_file_location(
            "chapter_times", bench / "chapter_times.py"
        )
        chapter_times = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(chapter_times)
    finally:
        sys.path.remove(str(bench))
    page = chapter_times.PAGE.read_text(encoding="utf-8")
    shown = (
        page.split(chapter_times.TABLE_START, 1)[1]
        .split(chapter_times.TABLE_END, 1)[0]
        .strip()
    )
    assert shown == chapter_times.render_table(runtime.budget_times()), (
        "run: python bench/chapter_times.py --render"
    )
