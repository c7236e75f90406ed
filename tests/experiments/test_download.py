"""A machine without the data folder: MNIST is downloaded once into the default folder by torchvision's
downloader, from a real HTTP server on 127.0.0.1 serving the four files (gzipped from the real MNIST); a
corrupted file is refused by its checksum; offline, the CLI and the demo end in one line naming the folder."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torchvision

from lipschitz_lr_experiments import data
from lipschitz_lr_experiments.cli import main as cli_main
from lipschitz_lr_experiments.data import MNIST_SHA256, DatasetUnavailable, load_dataset
from lipschitz_lr_paper_figures.demo import main as demo_main


class Mirror:
    """An HTTP server on 127.0.0.1 serving ``folder``, recording the files it was asked for (torchvision asks for
    each twice: once to follow redirects, once to fetch it)."""

    def __init__(self, folder: Path) -> None:
        self.requests: list[str] = []
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def log_message(self, *args):
                if self.command == "GET":
                    mirror.requests.append(self.path)

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that hung up early (a refused file)
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def archives(data_dir, tmp_path_factory) -> dict[str, bytes]:
    """The four MNIST files as ``.gz`` archives (made here from the real files)."""
    return {
        f"{name}.gz": gzip.compress((data_dir / "MNIST" / "raw" / name).read_bytes(), compresslevel=1, mtime=0)
        for name in MNIST_SHA256
    }


@pytest.fixture
def mirror(archives, tmp_path, monkeypatch) -> Iterator[Mirror]:
    """The archives served from 127.0.0.1, torchvision's MNIST pointed at them (its mirrors, and the archives'
    md5 it checks), and no data folder configured: the default one is a fresh folder."""
    served = tmp_path / "served"
    served.mkdir()
    for name, content in archives.items():
        (served / name).write_bytes(content)
    server = Mirror(served)
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [server.url])
    monkeypatch.setattr(
        torchvision.datasets.MNIST,
        "resources",
        [(name, hashlib.md5(content).hexdigest()) for name, content in archives.items()],
    )
    monkeypatch.delenv("LIPSCHITZ_LR_DATA", raising=False)
    monkeypatch.setattr(data, "default_data_dir", lambda: tmp_path / "data")
    yield server
    server.close()


def test_the_demo_on_a_machine_without_data_downloads_mnist_once(mirror, tmp_path, capsys):
    arguments = ["--out", str(tmp_path / "demo"), "--epochs", "1", "--train-subset", "256", "--no-progress"]
    assert demo_main(arguments) == 0
    raw = tmp_path / "data" / "MNIST" / "raw"
    for name, digest in MNIST_SHA256.items():
        assert hashlib.sha256((raw / name).read_bytes()).hexdigest() == digest
    fetched = len(mirror.requests)
    assert {path.lstrip("/") for path in mirror.requests} == {f"{name}.gz" for name in MNIST_SHA256}
    assert "wall time" in capsys.readouterr().out
    assert load_dataset("mnist").train_images.shape[0] == 60_000  # once: later runs read the folder
    assert len(mirror.requests) == fetched


def test_a_corrupted_archive_is_refused_by_its_md5(mirror, tmp_path, capsys):
    name = "t10k-labels-idx1-ubyte.gz"
    path = tmp_path / "served" / name
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")  # the md5 torchvision checks no longer matches
    assert cli_main(["download", "mnist"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]  # after torchvision's download bars
    assert line.startswith("lipschitz-lr: error: mnist is not under ") and str(tmp_path / "data") in line
    assert "downloading it failed" in line and "corrupted" in line


def test_a_file_that_unpacks_to_other_bytes_is_refused_by_the_published_sha256(mirror, tmp_path, monkeypatch):
    """An archive whose md5 matches (a mirror's own) but whose contents are not MNIST's: the SHA-256 of the
    unpacked file is checked against the published one, and the file is deleted."""
    name = "t10k-labels-idx1-ubyte"
    content = bytearray(gzip.decompress((tmp_path / "served" / f"{name}.gz").read_bytes()))
    content[-1] = (content[-1] + 1) % 10  # one label changed: a valid idx file, not MNIST's
    archive = gzip.compress(bytes(content), mtime=0)
    (tmp_path / "served" / f"{name}.gz").write_bytes(archive)
    resources = [
        (file, hashlib.md5(archive).hexdigest() if file == f"{name}.gz" else md5)
        for file, md5 in torchvision.datasets.MNIST.resources
    ]
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", resources)
    with pytest.raises(DatasetUnavailable, match=rf"{name} as downloaded has SHA-256 .*not the published"):
        load_dataset("mnist")
    assert not (tmp_path / "data" / "MNIST" / "raw" / name).exists()


def test_offline_the_cli_and_the_demo_end_in_one_line(mirror, tmp_path, capsys, monkeypatch):
    mirror.close()  # nothing answers there any more
    out = ["--out", str(tmp_path / "run"), "--epochs", "1"]
    assert cli_main(["run", "mnist_sgd", *out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lipschitz-lr: error: mnist is not under ")
    assert str(tmp_path / "data") in err and "downloading it failed" in err and "$LIPSCHITZ_LR_DATA" in err
    assert demo_main(["--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("demo: mnist is not under ")
    assert cli_main(["run", "mnist_sgd", *out, "--no-download"]) == 2
    assert "downloads are off" in capsys.readouterr().err
