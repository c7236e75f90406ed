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
