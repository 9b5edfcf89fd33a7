import json

import pandas as pd
import pytest

from lmem.report import COLUMNS, pareto, report

REQUIRED = ["benchmark", "method", "k", "generator", "n", "em", "f1", "acc", "recall_at_k", "tokens_full",
            "tokens_no_system", "tokens_context", "f1_ci_low", "f1_ci_high", "config_hash", "git_commit",
            "generator_sha256", "data_sha256", "seed"]


def test_required_columns_present():
    assert all(c in COLUMNS for c in REQUIRED)


def test_pareto_frontier():
    pts = [(10, 5), (20, 10), (15, 4), (30, 10), (5, 1)]
    assert pareto(pts) == [4, 0, 1]  # (15,4) and (30,10) are dominated


def test_report_writes_table_and_plots(tmp_path):
    rows = []
    for method, k, tok, f1 in [("closed_book", "all", 20, 1.0), ("bm25", "1", 60, 10.0), ("bm25", "5", 200, 12.0)]:
        row = {c: 0 for c in COLUMNS}
        row.update(benchmark="synth", method=method, k=k, generator="g", n=10, f1=f1, tokens_no_system=tok,
                   f1_ci_low=f1 - 1, f1_ci_high=f1 + 1, recall_at_k=None, webqa_acc=None)
        path = tmp_path / f"{method}{k}.json"
        path.write_text(json.dumps(row))
        rows.append(str(path))
    df = report(rows, str(tmp_path / "out"), "tokens_no_system", "f1")
    assert sorted(zip(df["method"], df["k"])) == [("bm25", "1"), ("bm25", "5"), ("closed_book", "all")]
    assert dict(zip(df["method"] + df["k"], df["f1"])) == {"closed_bookall": 1.0, "bm251": 10.0, "bm255": 12.0}
    assert (tmp_path / "out/results.csv").read_text().startswith("benchmark,method,k,")
    assert "| synth" in (tmp_path / "out/results.md").read_text()
    for ext in ("png", "svg"):
        assert (tmp_path / f"out/plots/synth.{ext}").stat().st_size > 1000


def test_paired_bootstrap_difference():
    from lmem.compare import paired_bootstrap

    a = {str(i): 1.0 for i in range(50)}
    b = {str(i): 0.0 for i in range(50)}
    mean, low, high, n = paired_bootstrap(a, b, samples=200)
    assert (mean, low, high, n) == (1.0, 1.0, 1.0, 50)
    c = {str(i): float(i % 2) for i in range(50)}
    mean, low, high, _ = paired_bootstrap(c, b, samples=500)
    assert mean == 0.5 and low < 0.5 < high and low > 0
    same = paired_bootstrap(c, c, samples=100)
    assert same[:3] == (0.0, 0.0, 0.0)


def test_timings_table_accounts_for_every_job(tmp_path):
    from lmem.io import InputError
    from lmem.timings import timings

    bench = tmp_path / "benchmarks"
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for job, s, rss in (("train/smollm2", 600.5, 4396.2), ("run/synth/bm25/k5", 40.0, 1311.7),
                        ("run/synth/closed_book/kall", 20.0, 1067.8), ("prepare/synth", 0.14, "-")):
        path = bench / f"{job}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{s}\t0:00:00\t{rss}\t1\t1\t1\t0\t0\t0\t0\n")
    jobs = ["train/smollm2", "run/synth/bm25/k5", "run/synth/closed_book/kall", "prepare/synth"]
    summary = timings(bench, jobs, tmp_path)
    rows = pd.read_csv(tmp_path / "timings.csv")
    assert len(rows) == 4 and set(rows["rule"]) == {"train", "run", "prepare"}
    assert rows.set_index("job").at["synth/bm25/k5", "s"] == 40.0
    assert pd.isna(rows.set_index("job").at["synth", "max_rss"])  # "-": not measured
    by_rule = summary.set_index("rule")
    assert by_rule.at["run", "jobs"] == 2 and by_rule.at["run", "s_total"] == 60.0
    assert summary["rule"].iloc[0] == "train" and abs(summary["share"].sum() - 100) < 0.5
    assert "| train " in (tmp_path / "timings.md").read_text()
    with pytest.raises(InputError, match="run/synth/dense/k5"):
        timings(bench, jobs + ["run/synth/dense/k5"], tmp_path)


def test_labels_of_many_close_points_never_overlap(tmp_path):
    """A crowded plot (20 points within a few percent of each other): no two label boxes intersect, and none
    covers a marker; the report's plot of the same rows renders with plain-number ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lmem.report import place_labels, plot_benchmark

    fig, ax = plt.subplots(figsize=(7.2, 5.0))
    xs = [100 + 3 * i for i in range(20)]
    ys = [10 + 0.1 * (i % 4) for i in range(20)]
    ax.scatter(xs, ys)
    ax.set_xscale("log")
    ax.set_xlim(10, 1000)
    ax.set_ylim(0, 20)
    texts = place_labels(ax, xs, ys, [f"method_{i}@5" for i in range(20)])
    fig.canvas.draw()
    from matplotlib.text import Text

    boxes = [Text.get_window_extent(t) for t in texts]  # the label itself (an annotation's box holds its leader)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (texts[i].get_text(), texts[j].get_text())
    plt.close(fig)
    rows = pd.DataFrame([{**{c: 0 for c in COLUMNS}, "benchmark": "b", "method": f"m{i}", "k": "5", "generator": "g",
                          "n": 10, "f1": y, "tokens_no_system": x, "f1_ci_low": float("nan"), "retrieval": "pool"}
                         for i, (x, y) in enumerate(zip(xs, ys))])
    assert plot_benchmark(rows, "b", "tokens_no_system", "f1", tmp_path)[0].stat().st_size > 1000


def test_config_hash_names_the_config_not_the_results_folder():
    """Two results folders with the same config (a local and a cluster run) give the same config_hash; a changed
    option does not."""
    from lmem.config import config_hash
    from lmem.specs import without_locations

    def spec(root, k=5):
        return {"method": "latent_memory", "seed": 0, "generator": {"model": "m"},
                "method_spec": {"k": [k], "compressor": "c", "checkpoint_dir": f"{root}/compressors/c/best",
                                "index_dir": f"{root}/latent_index/c-best/synth"}}

    assert config_hash(without_locations(spec("/a"))) == config_hash(without_locations(spec("/b")))
    assert config_hash(without_locations(spec("/a"))) != config_hash(without_locations(spec("/a", k=1)))
    assert without_locations(spec("/a"))["method_spec"] == {"k": [5], "compressor": "c"}
