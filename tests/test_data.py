"""Data loaders: the staged copies in ../shared/data, and the download path (checksum, cache,
offline mode) exercised against a loopback HTTP server, never the internet."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import cyclr.data as data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data beside the checkout")


@pytest.fixture
def offline_shared(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("CYCLR_DATA_DIR", str(SHARED))
    monkeypatch.setenv("CYCLR_OFFLINE", "1")
    monkeypatch.setenv("CYCLR_CACHE_DIR", str(tmp_path / "cache"))
    return SHARED


def test_mnist_shapes_labels_and_class_counts(offline_shared: Path) -> None:
    (x, y), (xt, yt) = data.mnist()
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert xt.shape == (10000, 28, 28)
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(yt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_fashion_mnist_is_balanced(offline_shared: Path) -> None:
    (x, y), (_xt, yt) = data.fashion_mnist()
    assert x.shape == (60000, 28, 28)
    assert np.bincount(y).tolist() == [6000] * 10
    assert np.bincount(yt).tolist() == [1000] * 10


def test_text_and_series(offline_shared: Path) -> None:
    text = data.tiny_shakespeare()
    assert len(text) == 1_115_394 and len(set(text)) == 65
    messages, labels = data.sms_spam()
    assert len(messages) == 5574 and int(labels.sum()) == 747
    months, passengers = data.airline_passengers()
    assert len(passengers) == 144 and passengers.sum() == 40363 and months[0] == "1949-01"
    months, spots = data.sunspots()
    assert len(spots) == 2820 and round(float(spots.mean()), 2) == 51.27 and months[-1] == "1983-12"


def test_explicit_data_dir_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CYCLR_DATA_DIR", str(tmp_path / "nothing-here"))
    monkeypatch.setenv("CYCLR_OFFLINE", "1")
    monkeypatch.setenv("CYCLR_CACHE_DIR", str(tmp_path / "cache"))
    assert data.fetch("airline-passengers", data_dir=SHARED) == SHARED / "airline-passengers/airline-passengers.csv"


def test_offline_and_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CYCLR_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("CYCLR_OFFLINE", "1")
    monkeypatch.setenv("CYCLR_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(data.DataError, match="CYCLR_OFFLINE=1 forbids downloading"):
        data.fetch("sunspots")


def test_unknown_file_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: airline-passengers"):
        data.fetch("imagenet")


def test_corrupt_local_file_is_rejected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = tmp_path / "airline-passengers" / "airline-passengers.csv"
    bad.parent.mkdir(parents=True)
    bad.write_text('"Month","Passengers"\n"1949-01",999\n')
    monkeypatch.setenv("CYCLR_OFFLINE", "1")
    with pytest.raises(data.DataError, match="does not match the published"):
        data.fetch("airline-passengers", data_dir=tmp_path)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a folder: the 'canonical source' of these tests."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined, method-assign]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def _use_url(monkeypatch: pytest.MonkeyPatch, key: str, *urls: str) -> None:
    monkeypatch.setitem(data.FILES, key, replace(data.FILES[key], urls=urls))


def test_download_verifies_and_caches(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: tuple[str, Path]
) -> None:
    base, root = server
    shutil.copy(SHARED / "sunspots/monthly-sunspots.csv", root / "sunspots.csv")
    _use_url(monkeypatch, "sunspots", base + "missing.csv", base + "sunspots.csv")  # first mirror fails
    monkeypatch.delenv("CYCLR_DATA_DIR", raising=False)
    monkeypatch.delenv("CYCLR_OFFLINE", raising=False)
    monkeypatch.setenv("CYCLR_CACHE_DIR", str(tmp_path / "cache"))
    path = data.fetch("sunspots")
    assert path == tmp_path / "cache" / "sunspots" / "monthly-sunspots.csv"
    assert path.read_bytes() == (SHARED / "sunspots/monthly-sunspots.csv").read_bytes()
    (root / "sunspots.csv").unlink()  # the cache serves it from now on
    assert data.fetch("sunspots") == path
    assert len(data.sunspots()[1]) == 2820


def test_download_with_wrong_checksum_keeps_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: tuple[str, Path]
) -> None:
    base, root = server
    (root / "sunspots.csv").write_text('"Month","Sunspots"\n"1749-01",1.0\n')
    _use_url(monkeypatch, "sunspots", base + "sunspots.csv")
    monkeypatch.delenv("CYCLR_DATA_DIR", raising=False)
    monkeypatch.delenv("CYCLR_OFFLINE", raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("CYCLR_CACHE_DIR", str(cache))
    with pytest.raises(data.DataError, match="does not match"):
        data.fetch("sunspots")
    assert not any(p.is_file() for p in cache.rglob("*"))


def test_zip_member_is_extracted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: tuple[str, Path]) -> None:
    base, root = server
    with zipfile.ZipFile(root / "smsspamcollection.zip", "w") as archive:
        archive.write(SHARED / "sms-spam-collection/SMSSpamCollection", "SMSSpamCollection")
        archive.writestr("readme", "SMS Spam Collection v.1")
    _use_url(monkeypatch, "sms-spam", base + "smsspamcollection.zip")
    monkeypatch.delenv("CYCLR_DATA_DIR", raising=False)
    monkeypatch.delenv("CYCLR_OFFLINE", raising=False)
    monkeypatch.setenv("CYCLR_CACHE_DIR", str(tmp_path / "cache"))
    messages, labels = data.sms_spam()
    assert len(messages) == 5574 and int(labels.sum()) == 747
