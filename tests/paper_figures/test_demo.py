import json

from lipschitz_lr_paper_figures.demo import RUNS, main


def test_demo_writes_histories_and_figure(tmp_path, data_dir, capsys):
    out = tmp_path / "demo"
    assert (
        main(
            ["--data-dir", str(data_dir), "--out", str(out), "--epochs", "1", "--train-subset", "512", "--no-progress"]
        )
        == 0
    )
    assert (out / "demo.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    for config_name, label, _ in RUNS:
        history = json.loads((out / config_name / "history.json").read_text())
        assert len(history) == 1 and history[0]["lr"] > 0
        assert label in printed
    assert "is ahead (" in printed and "chose its rates itself" in printed and "wall time" in printed
    again = ["--data-dir", str(data_dir), "--out", str(out), "--epochs", "1", "--train-subset", "256", "--no-progress"]
    assert main(again) == 0  # a second demo replaces the first one's output instead of refusing
