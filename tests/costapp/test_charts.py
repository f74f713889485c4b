"""Chart functions return plotly figure dicts that show idle and shared as such."""

import json

from costapp import charts


def test_daily_stacked_puts_teams_largest_first_then_shared_and_idle():
    fig = charts.daily_stacked(["2026-03-01", "2026-03-02"], {"a": [1, 1], "b": [5, 5],
                                                              "zero": [0, 0]},
                               "USD", idle=[2, 2], shared=[1, 0])
    names = [t["name"] for t in fig["data"]]
    assert names == ["b", "a", "Shared", "Idle"]
    assert fig["layout"]["barmode"] == "stack"
    idle = fig["data"][-1]
    assert idle["marker"]["color"] == charts.IDLE_COLOUR
    json.dumps(fig)  # serialisable as is


def test_bar_keeps_the_largest_and_sums_the_rest():
    labels = [f"ns{i}" for i in range(30)]
    fig = charts.bar(labels, list(range(30)), "EUR", limit=10)
    ys = fig["data"][0]["y"]
    assert len(ys) == 10 and ys[0] == "other (21)"
    assert fig["data"][0]["x"][0] == sum(range(21))
    assert ys[-1] == "ns29"


def test_bar_colours_idle_and_shared_lines_grey():
    fig = charts.bar(["__idle__", "__shared__", "web"], [1, 2, 3], "USD")
    colours = dict(zip(fig["data"][0]["y"], fig["data"][0]["marker"]["color"], strict=True))
    assert colours["__idle__"] == charts.IDLE_COLOUR
    assert colours["__shared__"] == charts.SHARED_COLOUR


def test_empty_inputs_give_an_empty_but_valid_figure():
    fig = charts.daily_stacked([], {}, "USD", idle=[], shared=[])
    assert fig["data"] == [] and "layout" in fig
    assert charts.trend([], [], "USD")["data"][0]["x"] == []


def test_pools_stacks_allocated_and_idle():
    fig = charts.pools(["general/on-demand"], [10.0], [3.0], "USD")
    assert [t["name"] for t in fig["data"]] == ["Allocated", "Idle"]

