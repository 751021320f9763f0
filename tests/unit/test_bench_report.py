"""The bench report: figures read back from the benches' Markdown, and the goals held against
them (pure; no bench is run and no chart is drawn)."""

import pytest

from bench.report import (
    ARGO_SCALE_WHY,
    ARGO_WHY,
    Figures,
    Scale,
    figures,
    goals,
    render,
    runtime_figures,
    tables,
)

pytestmark = pytest.mark.unit

RUNTIME = """# Payment runtime benchmark

- payment-runtime POST /api/v1/payments, max: 1,135/s, p50 2.8 ms, p99 21.3 ms, p99.9 41.8 ms (1358 requests); server CPU 1.85 ms/payment
- payment-runtime at ~70% of max:       791/s, p50 6.2 ms, p99 48.7 ms, p99.9 54.8 ms (917 requests)
- pgbench, the same SQL transaction:    2159 tx/s, latency avg 13.808 ms
- ratio risk on/off (median of 3 paired rounds): throughput 0.710, p50 1.438, p99 1.546, CPU/payment 1.338
- stripe-mock POST /v1/payment_intents: 1514/s, p50 9.5 ms, p99 103.3 ms
"""  # noqa: E501

SCALE = """## Operator at scale (2026-12-02, 2 CPUs)

| N | floor (SSA, no operator) s | paydeck s | ratio | CPU-s/object | peak RSS MiB | API requests/pass | writes in an idle resync |
|---:|---:|---:|---:|---:|---:|---:|---:|
| 50 | 16.1 | 35.3 | 2.19 | 0.271 | 152 | 14.4 | 0 |
| 1000 | 100.0 | 110.0 | 1.10 | 0.040 | 140 | 3.0 | 2 |
"""  # noqa: E501

ARGO = """## Paydeck beside Argo Rollouts

| N | figure | Argo Rollouts | Paydeck | Paydeck / Argo |
|---:|---|---:|---:|---:|
| 200 | promote p50 s | 9.00 | 8.00 | 0.89 |
| 200 | promoted in time | 200 | 150 | 0.75 |
| 200 | promote max s | 9.00 | nan | n/a |
| 200 | step latency p95 s | 0.046 | 0.600 | 13.0 |
"""


def by_name(items):
    return {g.name: g for g in items}


def test_tables_are_rows_keyed_by_their_header():
    (rows,) = list(tables(ARGO))
    assert rows[1] == {"N": "200", "figure": "promoted in time", "Argo Rollouts": "200",
                       "Paydeck": "150", "Paydeck / Argo": "0.75"}


def test_runtime_goals_read_from_the_bullets_with_thousands_separators():
    rt = runtime_figures(RUNTIME)
    assert (rt.max_per_s, rt.cpu_ms, rt.paced_p99_ms, rt.pgbench_tps) == (1135, 1.85, 48.7, 2159)
    g = by_name(goals(Figures(runtime=rt)))
    assert g["runtime throughput"].met is True  # 1135 / 2159 = 0.526
    assert g["runtime CPU per payment"].met is True
    assert g["runtime p99 at 70 % of max"].met is True
    assert g["risk checks on (velocity, rate limit)"].met is False  # 0.71 and 1.34
    assert "x0.71" in g["risk checks on (velocity, rate limit)"].measured
    slower = runtime_figures(RUNTIME.replace("1,135/s", "1,000/s"))
    assert by_name(goals(Figures(runtime=slower)))["runtime throughput"].met is False


def test_a_missing_report_is_open_never_met():
    g = goals(Figures())
    assert g and all(item.met is None for item in g)
    assert runtime_figures("- pgbench, the same SQL: 10 tx/s") is None


def test_scale_goals_judge_the_largest_n_and_any_idle_write_fails(tmp_path):
    (tmp_path / "operator_scale.md").write_text(SCALE)
    g = by_name(goals(figures(tmp_path)))
    assert g["operator: all Ready"].met is True  # 1.10 at N = 1,000
    assert "N = 1,000" in g["operator: all Ready"].measured
    assert g["operator CPU per object"].met is True
    assert g["operator peak RSS"].met is True  # 140 MiB = 146.8 MB
    assert g["writes per idle resync"].met is False  # 2 writes at N = 1,000


def test_idle_writes_are_judged_where_measured_and_open_when_nowhere(tmp_path):
    (tmp_path / "operator_scale.md").write_text(
        SCALE.replace("| 2 |", "| 0 |").replace("| 14.4 | 0 |", "| 14.4 | not measured |"))
    g = by_name(goals(figures(tmp_path)))
    assert g["writes per idle resync"].met is True
    assert g["writes per idle resync"].measured == "0 (N = 1000)"
    (tmp_path / "operator_scale.md").write_text(SCALE.replace("| 2 |", "| not measured |")
                                                .replace("| 14.4 | 0 |", "| 14.4 | not measured |"))
    assert by_name(goals(figures(tmp_path)))["writes per idle resync"].met is None


def test_a_goal_at_1000_is_not_met_by_a_smaller_run_but_can_be_missed_by_one():
    small = Scale(200, 60.0, 66.0, 0.04, 100, 3.0, 0)
    g = by_name(goals(Figures(scale=[small])))
    assert g["operator: all Ready"].met is None  # 1.1 at 200 says nothing about 1,000
    slow = Scale(200, 60.0, 90.0, 0.30, 100, 3.0, 0)
    assert by_name(goals(Figures(scale=[slow])))["operator: all Ready"].met is False


def test_a_faster_p50_with_rollouts_left_unpromoted_is_not_met(tmp_path):
    (tmp_path / "rollouts_compare.md").write_text(
        ARGO + "| 1 | promote p50 s | 0.50 | 1.00 | 2.00 |\n"
        "| 1 | promoted in time | 1 | 1 | 1.00 |\n")
    g = by_name(goals(figures(tmp_path)))
    canary = g["canary 10 → 50 → 100 (N = 200)"]
    assert canary.met is False
    assert "150 of 200 promoted in time" in canary.measured
    assert g["canary step latency p95 (N = 200)"].met is False
    # at N = 200 the gap is the control plane's work, at N = 1 one rollout's events
    assert canary.where == ARGO_SCALE_WHY
    assert g["canary 10 → 50 → 100 (N = 1)"].where == ARGO_WHY


def test_render_nests_each_bench_section_under_the_page():
    text = render(Figures(), ["# Runtime\n\n## Profile\n"], [], "today", "here")
    assert "\n## Runtime\n" in text and "\n### Profile" in text
    assert text.startswith("# Benchmarks")


def test_an_unmet_goal_names_the_profile_that_explains_it_and_a_met_one_none():
    from bench.report import OPERATOR_PROFILE, RUNTIME_PROFILE, goals_table

    rt = runtime_figures(RUNTIME)
    g = by_name(goals(Figures(runtime=rt, scale=[Scale(50, 16.1, 35.3, 0.271, 152, 14.4, 0)])))
    risk = g["risk checks on (velocity, rate limit)"]
    assert risk.met is False and risk.where == RUNTIME_PROFILE
    assert g["operator: all Ready"].where == OPERATOR_PROFILE
    table = goals_table(list(g.values()))
    assert f"| **not met** | {RUNTIME_PROFILE} |" in table
    assert table.splitlines()[2].endswith("| met |  |")  # runtime throughput: nothing to explain


def test_the_length_of_a_whole_run_is_a_goal(tmp_path):
    from bench.__main__ import durations

    (tmp_path / "durations.md").write_text(durations({"scale": 600.0, "argo": 300.0}))
    g = by_name(goals(figures(tmp_path)))["make bench, every bench"]
    assert (g.measured, g.met) == ("15.0 min", True)
    (tmp_path / "durations.md").write_text(durations({"scale": 1500.0}))
    g = by_name(goals(figures(tmp_path)))["make bench, every bench"]
    assert (g.measured, g.met) == ("25.0 min", False) and "make bench" in g.where
    assert by_name(goals(Figures()))["make bench, every bench"].met is None
