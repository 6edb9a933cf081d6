"""Real data sets: download from the canonical source, verify the checksum, cache, load.

Where files are looked for, in order:

1. ``data_dir`` passed to a loader (the CLI's ``--data-dir``),
2. the ``CYCLR_DATA_DIR`` environment variable (the tests point it at ``../shared/data``),
3. the cache, ``$XDG_CACHE_HOME/cyclr`` or ``~/.cache/cyclr`` (``CYCLR_CACHE_DIR`` overrides).

A missing file is downloaded into the cache (never into a given data directory, which may be
read-only), unless ``CYCLR_OFFLINE=1``. Every file's SHA-256 is checked before use, wherever it
came from; a download that does not match is deleted and reported.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import struct
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "FILES",
    "DataError",
    "DataFile",
    "airline_passengers",
    "cache_dir",
    "fashion_mnist",
    "fetch",
    "mnist",
    "sms_spam",
    "sunspots",
    "tiny_shakespeare",
]


class DataError(RuntimeError):
    """A data file is missing and cannot be fetched, or its checksum does not match."""


@dataclass(frozen=True)
class DataFile:
    """One file: where it lives under a data directory, its SHA-256, and where it comes from.

    ``member`` names the file inside a downloaded zip archive (the SMS Spam Collection ships as one).
    """

    path: str
    sha256: str
    urls: tuple[str, ...]
    member: str | None = None


_MNIST = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
_BROWNLEE = "https://raw.githubusercontent.com/jbrownlee/Datasets/master/"


def _idx(folder: str, name: str, sha: str, mirrors: tuple[str, ...]) -> DataFile:
    return DataFile(f"{folder}/{name}", sha, tuple(m + name for m in mirrors))


#: Every file cyclr can load, with the checksums of the published originals.
FILES: dict[str, DataFile] = {
    "mnist/train-images": _idx(
        "mnist",
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        _MNIST,
    ),
    "mnist/train-labels": _idx(
        "mnist",
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        _MNIST,
    ),
    "mnist/test-images": _idx(
        "mnist", "t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", _MNIST
    ),
    "mnist/test-labels": _idx(
        "mnist", "t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", _MNIST
    ),
    "fashion-mnist/train-images": _idx(
        "fashion-mnist",
        "train-images-idx3-ubyte.gz",
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        _FASHION,
    ),
    "fashion-mnist/train-labels": _idx(
        "fashion-mnist",
        "train-labels-idx1-ubyte.gz",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        _FASHION,
    ),
    "fashion-mnist/test-images": _idx(
        "fashion-mnist",
        "t10k-images-idx3-ubyte.gz",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        _FASHION,
    ),
    "fashion-mnist/test-labels": _idx(
        "fashion-mnist",
        "t10k-labels-idx1-ubyte.gz",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        _FASHION,
    ),
    "tinyshakespeare": DataFile(
        "tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",),
    ),
    "sms-spam": DataFile(
        "sms-spam-collection/SMSSpamCollection",
        "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
        ("https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",),
        member="SMSSpamCollection",
    ),
    "airline-passengers": DataFile(
        "airline-passengers/airline-passengers.csv",
        "8cb51be753a718d9be5d76d7e238cc224792754676adc21faa59e954b0201621",
        (_BROWNLEE + "airline-passengers.csv",),
    ),
    "sunspots": DataFile(
        "sunspots/monthly-sunspots.csv",
        "c4ec8cc57d9f6fb6ecdb3e1f37f25b6f4badd5124c55931052b0cd2fc3bc71f3",
        (_BROWNLEE + "monthly-sunspots.csv",),
    ),
}


def cache_dir() -> Path:
    """Where downloads go: ``CYCLR_CACHE_DIR``, else ``$XDG_CACHE_HOME/cyclr``, else ``~/.cache/cyclr``."""
    if os.environ.get("CYCLR_CACHE_DIR"):
        return Path(os.environ["CYCLR_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cyclr"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_VERIFIED: set[tuple[str, int, float]] = set()


def _verified(path: Path, spec: DataFile) -> Path:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime)
    if key not in _VERIFIED:
        digest = _sha256(path)
        if digest != spec.sha256:
            raise DataError(
                f"data file {path}: SHA-256 {digest} does not match the published {spec.sha256}; "
                "the file is truncated, corrupt or not the original. Delete it to download it again.\n"
                + _how_to_supply(spec)
            )
        _VERIFIED.add(key)
    return path


def _download(spec: DataFile, dest: Path, opener: Callable[[str], io.BufferedIOBase] | None = None) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in spec.urls:
        tmp = Path(tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")[1])
        try:
            with (opener or _urlopen)(url) as response, tmp.open("wb") as out:
                shutil.copyfileobj(response, out)
            if spec.member is not None:
                with zipfile.ZipFile(tmp) as archive:
                    tmp.write_bytes(archive.read(spec.member))
            digest = _sha256(tmp)
            if digest != spec.sha256:
                errors.append(f"{url}: SHA-256 {digest} does not match {spec.sha256}")
                continue
            tmp.replace(dest)
            return
        except (OSError, zipfile.BadZipFile, KeyError) as err:
            errors.append(f"{url}: {err}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DataError(f"could not download {spec.path}:\n  " + "\n  ".join(errors) + "\n" + _how_to_supply(spec))


def _urlopen(url: str) -> io.BufferedIOBase:
    return urllib.request.urlopen(url, timeout=60)  # type: ignore[no-any-return]


def fetch(key: str, data_dir: str | Path | None = None) -> Path:
    """The verified local path of data file ``key`` (a key of :data:`FILES`), downloading it into
    the cache if no searched directory has it."""
    if key not in FILES:
        raise KeyError(f"unknown data file {key!r}; known: {', '.join(sorted(FILES))}.")
    spec = FILES[key]
    roots = [Path(d) for d in (data_dir, os.environ.get("CYCLR_DATA_DIR")) if d]
    roots.append(cache_dir())
    for root in roots:
        candidate = root / spec.path
        if candidate.is_file():
            return _verified(candidate, spec)
    looked = "\n".join(f"    {r / spec.path}" for r in roots)
    if os.environ.get("CYCLR_OFFLINE") == "1":
        raise DataError(
            f"data file {spec.path} is not present, and CYCLR_OFFLINE=1 forbids downloading it.\n"
            f"  looked for:\n{looked}\n" + _how_to_supply(spec)
        )
    dest = cache_dir() / spec.path
    try:
        _download(spec, dest)
    except DataError as err:
        raise DataError(f"data file {spec.path} is not present (looked for:\n{looked}\n  ) and {err}") from None
    return _verified(dest, spec)


def _how_to_supply(spec: DataFile) -> str:
    """What a user does when a data file cannot be had: where to get it and where to put it."""
    urls = "\n".join(f"    {u}" for u in spec.urls)
    return (
        f"  to supply it by hand, download it from:\n{urls}\n"
        f"  (SHA-256 {spec.sha256}{'; the file ' + spec.member + ' inside the zip' if spec.member else ''}),\n"
        f"  save it as DIR/{spec.path}, and pass --data-dir DIR (or set CYCLR_DATA_DIR=DIR)."
    )


def _read_idx(path: Path) -> np.ndarray:
    """An idx file (MNIST's format): big-endian magic, dims, then raw uint8."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim not in (1, 3):
        raise DataError(f"{path}: not an idx file of unsigned bytes (magic {magic:#x}).")
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: {data.size} bytes of data for dims {dims}.")
    return data.reshape(dims)


Split = tuple[np.ndarray, np.ndarray]


def _image_set(name: str, data_dir: str | Path | None) -> tuple[Split, Split]:
    def part(split: str) -> Split:
        images = _read_idx(fetch(f"{name}/{split}-images", data_dir))
        labels = _read_idx(fetch(f"{name}/{split}-labels", data_dir))
        return images, labels.astype(np.int64)

    return part("train"), part("test")


def mnist(data_dir: str | Path | None = None) -> tuple[Split, Split]:
    """MNIST: ``((x_train, y_train), (x_test, y_test))``, images uint8 (N, 28, 28), labels int64."""
    return _image_set("mnist", data_dir)


def fashion_mnist(data_dir: str | Path | None = None) -> tuple[Split, Split]:
    """Fashion-MNIST, in MNIST's layout."""
    return _image_set("fashion-mnist", data_dir)


def tiny_shakespeare(data_dir: str | Path | None = None) -> str:
    """Karpathy's tiny-shakespeare text (1,115,394 characters)."""
    return fetch("tinyshakespeare", data_dir).read_text(encoding="utf-8")


def sms_spam(data_dir: str | Path | None = None) -> tuple[list[str], np.ndarray]:
    """SMS Spam Collection: messages and labels (1 = spam), in file order."""
    texts, labels = [], []
    for line in fetch("sms-spam", data_dir).read_text(encoding="utf-8").splitlines():
        label, _, text = line.partition("\t")
        texts.append(text)
        labels.append(1 if label == "spam" else 0)
    return texts, np.asarray(labels, dtype=np.int64)


def _series(key: str, data_dir: str | Path | None) -> tuple[list[str], np.ndarray]:
    lines = fetch(key, data_dir).read_text(encoding="utf-8").strip().splitlines()[1:]
    dates, values = zip(*(line.replace('"', "").split(",") for line in lines))
    return list(dates), np.asarray(values, dtype=np.float64)


def airline_passengers(data_dir: str | Path | None = None) -> tuple[list[str], np.ndarray]:
    """Monthly airline passengers 1949-1960 (thousands): month labels and values."""
    return _series("airline-passengers", data_dir)


def sunspots(data_dir: str | Path | None = None) -> tuple[list[str], np.ndarray]:
    """Monthly Zurich sunspot numbers 1749-1983: month labels and values."""
    return _series("sunspots", data_dir)
