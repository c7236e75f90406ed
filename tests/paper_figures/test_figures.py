import json

import pytest
from sklearn import datasets

from lipschitz_lr_experiments.classical import softmax
from lipschitz_lr_paper_figures.__main__ import main
from lipschitz_lr_paper_figures.plots import _spans_orders_of_magnitude


def fake_history(epochs, first_lr=2.0, k=True):
    rows = []
    for e in range(1, epochs + 1):
        lr = first_lr if e == 1 else 2.5 - e * 0.05
        rows.append(
            {
                "epoch": e,
                "lr": lr,
                "k_z": 100.0 if k else None,
                "max_weight_norm": 10.0 if k else None,
                "k": 1 / lr if k else None,
                "train_loss": 1 / e,
                "train_acc": 0.9 + e / 1000,
                "test_loss": 1.1 / e,
                "test_acc": 0.9 + e / 1200,
                "seconds": 1.0,
            }
        )
    return rows


def write_run(root, name, history, device="cpu: x86_64 (2 threads)"):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "history.json").write_text(json.dumps(history))
    (folder / "summary.json").write_text(json.dumps({"device": device, "command": f"lipschitz-lr run {name}"}))


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "mnist_momentum", fake_history(6))
    write_run(root, "mnist_momentum_baseline", fake_history(6, first_lr=0.01, k=False))
    write_run(root / "cifar", "c100_resnet164v2_sgd", fake_history(8, first_lr=2.3e-8))  # nested folders are found
    iris = datasets.load_iris()
    report = {
        "full_batch": [r.__dict__ for r in softmax("iris", iris.data, iris.target, 20, 0.2)],
        "mnist_softmax_sgd": [],
        "choices": [],
    }
    (tmp_path / "classical.json").write_text(json.dumps(report))
    return root


def test_every_figure_is_written_from_a_small_history_folder(tmp_path, runs, capsys):
    out = tmp_path / "figures"
    assert main(["--runs", str(runs), "--out", str(out), "--classical", str(tmp_path / "classical.json")]) == 0
    expected = [
        "per_run/lr_mnist_momentum",
        "per_run/curves_mnist_momentum",
        "per_run/lr_c100_resnet164v2_sgd",
        "per_run/curves_mnist_momentum_baseline",
        "lr_grid_3x3",
        "mnist",
        "mnist_lipschitz",
        "schedules_gallery",
        "classical_softmax_iris",
    ]
    for stem in expected:
        for suffix in (".png", ".pdf"):
            assert (out / f"{stem}{suffix}").stat().st_size > 1000, stem
    printed = capsys.readouterr().out
    assert "panels marked 'not run' for c10_resnet20_sgd" in printed
    table = (out / "table1.md").read_text()
    assert "| MNIST CNN, Momentum, LipschitzLR | `mnist_momentum` | 99.57 | 90.50 | -9.07 | 6 |" in table
    assert "| `c10_resnet20_sgd` | 89.37 | not run |" in table


def test_missing_runs_are_skipped_with_a_line(tmp_path, capsys):
    (tmp_path / "nothing").mkdir()  # a runs folder with no history yet (a missing folder is an error, below)
    assert main(["--runs", str(tmp_path / "nothing"), "--out", str(tmp_path / "figures")]) == 0
    printed = capsys.readouterr().out
    assert "skip lr_grid_3x3" in printed and "skip mnist" in printed and "skip classical figures" in printed
    assert "not run" in (tmp_path / "figures" / "table1.md").read_text()


def test_log_axis_when_a_curve_spans_orders_of_magnitude():
    assert _spans_orders_of_magnitude([2.3e-8, 1.47, 0.65])
    assert not _spans_orders_of_magnitude([2.0, 2.5, 3.0])


def test_bad_histories_are_named_and_skipped(tmp_path, runs, capsys):
    (runs / "mnist_adam").mkdir()
    (runs / "mnist_adam" / "history.json").write_text('[{"epoch": 1, "lr": 0.1')  # cut mid-write
    (runs / "mnist_sgd").mkdir()
    (runs / "mnist_sgd" / "history.json").write_text("[]")
    write_run(runs, "mnist_sgd_hook", [{"epoch": 1, "lr": 2.0}])
    diverged = fake_history(3)
    for row in diverged:
        row["test_acc"] = float("nan")
    write_run(runs, "c10_resnet20_sgd", diverged)
    out = tmp_path / "figures"
    assert main(["--runs", str(runs), "--out", str(out), "--formats", "png"]) == 0
    err = capsys.readouterr().err
    assert f"skip mnist_adam: {runs / 'mnist_adam' / 'history.json'} is not valid JSON" in err
    assert "skip mnist_sgd: " in err and "is empty: no epoch of that run finished" in err
    assert "skip mnist_sgd_hook: " in err and "row 0 lacks train_loss, train_acc, test_loss, test_acc" in err
    table = (out / "table1.md").read_text()
    assert "nan" not in table.lower()
    assert "| `c10_resnet20_sgd` | 89.37 | no finite accuracy | - | 3 |" in table
    assert (out / "mnist.png").exists()  # the good runs are still drawn


def test_a_missing_runs_folder_is_an_error(tmp_path, capsys):
    assert main(["--runs", str(tmp_path / "runz"), "--out", str(tmp_path / "figures")]) == 2
    assert "--runs " + str(tmp_path / "runz") + " is not a directory" in capsys.readouterr().err
    assert not (tmp_path / "figures").exists()


def test_mnist_learning_rate_table_sets_ours_beside_the_authors_logs():
    from lipschitz_lr_paper_figures.table1 import mnist_lr_markdown

    history = fake_history(20)
    table = mnist_lr_markdown({"mnist_sgd": history})
    sgd = next(line for line in table.splitlines() if line.startswith("| `mnist_sgd` "))
    lrs = ", ".join(f"{row['lr']:.4g}" for row in history[:5])
    assert sgd == (
        f"| `mnist_sgd` | {lrs} | {history[-1]['lr']:.4g} (epoch 20) | 91.67 (20) | "
        "2.624, 2.221, 2.952, 2.505, 2.387 | 2.338 | 99.50 |"
    )
    assert "| `mnist_sgd_hook` | not run | - | - | - | - | - |" in table


def write_seeded_run(root, folder, name, seed, history):
    write_run(root, folder, history)
    (root / folder / "config.json").write_text(json.dumps({"name": name, "seed": seed}))


def test_damaged_summaries_and_values_are_named_and_every_table_is_still_written(tmp_path, runs, capsys):
    (runs / "mnist_momentum" / "summary.json").write_text("{not json")
    (runs / "mnist_momentum_baseline" / "summary.json").write_text("[1, 2]")
    for name, key, value in (
        ("mnist_sgd", "lr", "2.0"),
        ("mnist_adam", "test_loss", None),
        ("mnist_sgd_hook", "test_acc", 1e308),
    ):
        history = fake_history(3)
        history[1][key] = value
        write_run(runs, name, history)
    huge = fake_history(3)
    huge[2].update(lr=1e308, train_loss=1e308)  # finite: drawn or, if it cannot be, named
    write_run(runs, "c10_resnet20_sgd", huge)
    out = tmp_path / "figures"
    assert main(["--runs", str(runs), "--out", str(out), "--formats", "png"]) == 0
    err = capsys.readouterr().err
    assert "summary.json: not valid JSON" in err and "summary.json: it holds a list, expected an object" in err
    assert "skip mnist_sgd: " in err and "row 1 has lr='2.0', expected a number" in err
    assert "skip mnist_adam: " in err and "row 1 has test_loss=None, expected a number" in err
    assert "skip mnist_sgd_hook: " in err and "test_acc=1e+308, expected an accuracy in [0, 1]" in err
    table = (out / "table1.md").read_text()
    assert "| `mnist_momentum` | 99.57 | 90.50 | -9.07 | 6 | ? | unknown | `unknown` |" in table
    assert "| `c10_resnet20_sgd` | 89.37 | 90.25 | +0.88 | 3 |" in table
    assert (out / "mnist_lr.md").exists() and (out / "mnist.png").exists()


def test_a_figure_that_fails_is_named_and_the_rest_are_drawn(tmp_path, runs, capsys, monkeypatch):
    import lipschitz_lr_paper_figures.__main__ as figures

    def broken(*args, **kwargs):
        raise OverflowError("cannot draw this")

    monkeypatch.setattr(figures, "plot_lr_grid", broken)
    out = tmp_path / "figures"
    assert main(["--runs", str(runs), "--out", str(out), "--formats", "png"]) == 0
    assert "skip figure lr_grid_3x3: OverflowError: cannot draw this" in capsys.readouterr().err
    assert (out / "table1.md").exists() and (out / "mnist.png").exists() and not (out / "lr_grid_3x3.png").exists()


def test_seeds_are_aggregated_and_a_duplicate_run_is_named_not_silently_replaced(tmp_path, capsys):
    root = tmp_path / "runs"
    for seed, first in ((0, 2.0), (1, 2.0), (2, 2.0)):
        history = fake_history(4, first_lr=first)
        for row in history:
            row["test_acc"] += seed / 100
        write_seeded_run(root, f"mnist_sgd/seed{seed}", "mnist_sgd", seed, history)
    rerun = fake_history(2)
    for row in rerun:
        row["test_acc"] = 0.11
    write_seeded_run(root, "rerun/mnist_sgd", "mnist_sgd", 0, rerun)  # a short rerun of seed 0 elsewhere
    out = tmp_path / "figures"
    assert main(["--runs", str(root), "--out", str(out), "--formats", "png"]) == 0
    captured = capsys.readouterr()
    assert f"skip {root / 'rerun' / 'mnist_sgd'}: another run of mnist_sgd (seed 0) is used" in captured.err
    line = next(row for row in (out / "table1.md").read_text().splitlines() if "`mnist_sgd` |" in row)
    # best test accuracy per seed: 90.33, 91.33, 92.33 -> mean 91.33, sample std 1.00
    assert "| 99.50 | 91.33 ± 1.00 | -8.17 | 4 | 0, 1, 2 |" in line
    assert sorted(p.name for p in (out / "per_run").iterdir()) == sorted(
        f"{kind}_mnist_sgd_seed{seed}.png" for kind in ("lr", "curves") for seed in (0, 1, 2)
    )


def test_per_run_figures_are_off_for_many_runs_unless_asked(tmp_path, capsys):
    from lipschitz_lr_paper_figures.__main__ import PER_RUN_AUTO_LIMIT

    root = tmp_path / "runs"
    for seed in range(PER_RUN_AUTO_LIMIT + 1):
        write_seeded_run(root, f"s{seed}", "mnist_momentum", seed, fake_history(2))
    out = tmp_path / "figures"
    assert main(["--runs", str(root), "--out", str(out), "--formats", "png"]) == 0
    assert f"skip per-run figures: {PER_RUN_AUTO_LIMIT + 1} runs" in capsys.readouterr().out
    assert not (out / "per_run").exists() and (out / "mnist.png").exists()
    assert main(["--runs", str(root), "--out", str(tmp_path / "few"), "--formats", "png", "--no-per-run"]) == 0
    assert not (tmp_path / "few" / "per_run").exists()


def test_a_run_keeps_its_colour_in_every_mnist_figure(tmp_path, monkeypatch):
    """mnist.png and mnist_lipschitz.png draw a run in the same colour (the baseline was first in one and absent
    from the other, so the LipschitzLR runs' colours shifted)."""
    root = tmp_path / "runs"
    write_run(root, "mnist_momentum_baseline", fake_history(3, first_lr=0.01, k=False))
    for name in ("mnist_sgd", "mnist_momentum", "mnist_adam"):
        write_run(root, name, fake_history(3))
    drawn = {}

    def capture(runs, out_stem, title, colours=None, formats=()):
        drawn[out_stem.name] = {name: colours[name] for name in runs}
        return []

    monkeypatch.setattr("lipschitz_lr_paper_figures.__main__.plot_comparison", capture)
    assert main(["--runs", str(root), "--out", str(tmp_path / "figures")]) == 0
    both = set(drawn["mnist"]) & set(drawn["mnist_lipschitz"])
    assert both == {"mnist_sgd", "mnist_momentum", "mnist_adam"}
    assert all(drawn["mnist"][name] == drawn["mnist_lipschitz"][name] for name in both)
    assert len(set(drawn["mnist"].values())) == 4  # one colour per run
