"""Tests for minikd.data: IDX reading, where MNIST comes from, the downloader,
the three datasets, batches, the validation split and the jitter.

The downloader (pooch, with our mirrors and messages) runs against a real HTTP
server on 127.0.0.1 started here; no test touches the internet or the user's
cache (see ``_isolated``). The server publishes the shared MNIST copy, whose
gzip bytes differ from the mirrors' files, so the tests that download give
pooch that copy's digests (``published``): the check itself is pooch's.

The real-MNIST tests read the folder in $MINIKD_DATA_DIR (CI sets it), else
../shared/data/mnist beside the repository. Without it they skip with a
reason -- except with CI=true, where they fail: CI must run them.
"""
import gzip
import hashlib
import http.server
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from minikd.data import datasets as DS
from minikd.data import idx as I
from minikd.data import mnist as M
from minikd.engine.backend import to_host
from minikd.data import DataError, load_dataset, read_idx, to_float, train_val_split
from minikd.data.augment import jitter, random_shifts, translate
from minikd.data.mnist import MNIST_FILES, default_cache_dir, download_file, download_mnist, resolve_data_dir

REPO = Path(__file__).resolve().parents[2]
MNIST_DIR = Path(os.environ.get("MINIKD_DATA_DIR") or REPO.parent / "shared" / "data" / "mnist")
IN_CI = os.environ.get("CI", "").lower() in ("true", "1")

TRAIN_HIST = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_HIST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No test sees the user's data folder or cache, or reaches a real mirror."""
    monkeypatch.delenv("MINIKD_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for module in (M, DS):
        monkeypatch.setattr(module, "MNIST_MIRRORS", ("http://127.0.0.1:9/not-a-mirror/",))
    for var in ("no_proxy", "NO_PROXY"):  # the test server is local even behind a proxy
        monkeypatch.setenv(var, "127.0.0.1,localhost")


# --------------------------------------------------------------------------- helpers
def idx_bytes(array, *, dtype_code=0x08, magic=b"\x00\x00"):
    """The IDX encoding of a uint8 array (header + row-major data)."""
    a = np.asarray(array, dtype=np.uint8)
    header = magic + bytes([dtype_code, a.ndim]) + np.asarray(a.shape, dtype=">u4").tobytes()
    return header + a.tobytes()


def write_idx_folder(folder, x_train, y_train, x_test, y_test, gz=False):
    """The four files under MNIST's names, raw or gzipped."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in zip(MNIST_FILES, (x_train, y_train, x_test, y_test), strict=True):
        blob = idx_bytes(arr)
        (folder / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(blob) if gz else blob)
    return folder


def snapshot(folder):
    """Every entry below ``folder`` with its size and mtime."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(Path(folder).rglob("*"))}


def mnist_dir():
    """The real MNIST folder, or skip (fail in CI) with the reason."""
    if not all(M._find(MNIST_DIR, n) for n in MNIST_FILES):
        reason = (f"real MNIST not found in {MNIST_DIR}: set MINIKD_DATA_DIR to a folder "
                  f"holding the four MNIST files")
        if IN_CI:
            pytest.fail(reason + " (CI=true: these tests must run)")
        pytest.skip(reason)
    return MNIST_DIR


def mnist_gz(name):
    """The gzip bytes of one real MNIST file (compressed here, reproducibly, if the copy is raw)."""
    path = M._find(mnist_dir(), name)
    raw = path.read_bytes()
    return raw if raw[:2] == I.GZIP_MAGIC else gzip.compress(raw, mtime=0)


@pytest.fixture
def published(monkeypatch):
    """The test server's files are the published ones: pooch checks downloads
    against the SHA-256 of ``mnist_gz`` instead of the real mirrors' digests."""
    for name in MNIST_FILES:
        monkeypatch.setitem(M.MNIST_GZ_SHA256, name, hashlib.sha256(mnist_gz(name)).hexdigest())


def small_gz(name="t10k-labels-idx1-ubyte"):
    """For the failure tests: the smallest real file, gzipped."""
    return mnist_gz(name)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Looks the path up in ``server.routes`` (path -> handler(request)), else 404."""

    def do_GET(self):
        self.server.requests.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
        else:
            route(self)

    def log_message(self, *args):
        pass


def serve(body, declared=None):
    """A route that answers 200 with ``body``, claiming ``declared`` bytes."""
    def route(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body) if declared is None else declared))
        handler.end_headers()
        handler.wfile.write(body)
    return route


@pytest.fixture
def http_server():
    """start(routes) -> (server, "http://127.0.0.1:PORT"); stopped after the test."""
    servers = []

    def start(routes):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.routes, server.requests = routes, []
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


LABELS = "t10k-labels-idx1-ubyte"   # the smallest file: the one the failure tests fetch


def cache_folder(tmp_path):
    """An empty mnist folder in a cache of this test's own."""
    folder = tmp_path / "cache" / "mnist"
    folder.mkdir(parents=True)
    return folder


# --------------------------------------------------------------------------- IDX reader
@pytest.mark.parametrize("shape", [(3, 4, 5), (7,), (2, 1, 1)])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, shape, gz):
    a = np.random.default_rng(0).integers(0, 256, size=shape).astype(np.uint8)
    blob = idx_bytes(a)
    path = tmp_path / ("f.gz" if gz else "f")
    path.write_bytes(gzip.compress(blob) if gz else blob)
    got = read_idx(path)
    assert got.dtype == np.uint8 and got.shape == shape
    np.testing.assert_array_equal(got, a)
    got[...] = 0  # an ordinary writable array


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "gz-without-suffix").write_bytes(gzip.compress(idx_bytes(a)))
    (tmp_path / "raw-with-suffix.gz").write_bytes(idx_bytes(a))
    np.testing.assert_array_equal(read_idx(tmp_path / "gz-without-suffix"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "raw-with-suffix.gz"), a)


GOOD = idx_bytes(np.arange(60, dtype=np.uint8).reshape(3, 4, 5))
MALFORMED = {
    # case: (file content, words the message must contain)
    "wrong magic": (b"\x00\x01" + GOOD[2:], "not an IDX file"),
    "a zip archive": (b"PK\x03\x04" + GOOD[4:], "not an IDX file"),
    "float32 dtype code": (idx_bytes(np.zeros(3), dtype_code=0x0D), "data type 0x0d"),
    "zero dimensions": (b"\x00\x00\x08\x00", "0 dimensions"),
    "truncated header": (GOOD[:9], "truncated"),
    "truncated data": (GOOD[:-1], "truncated"),
    "trailing bytes": (GOOD + b"\x00\x00", "2 unexpected bytes"),
    "empty file": (b"", "too short"),
    "damaged gzip": (gzip.compress(GOOD)[:-10], "damaged gzip"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_read_idx_rejects_malformed_files(tmp_path, case):
    content, words = MALFORMED[case]
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_idx(path)
    message = str(err.value)
    assert str(path) in message and words in message
    assert "\n" not in message


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope-idx1-ubyte")


# --------------------------------------------------------------------------- idx datasets
def small_idx(n_train=12, n_test=5, hw=(6, 5), n_classes=12, seed=0):
    """Every class 0..n_classes-1 occurs in the training labels (n_train >= n_classes)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n_train, *hw)), rng.permutation(np.arange(n_train) % n_classes),
            rng.integers(0, 256, (n_test, *hw)), rng.integers(0, n_classes, n_test))


@pytest.mark.parametrize("gz", [False, True])
def test_idx_dataset_any_size_and_classes(tmp_path, gz):
    xtr, ytr, xte, yte = small_idx(n_classes=12)
    folder = write_idx_folder(tmp_path / "fashion", xtr, ytr, xte, yte, gz=gz)
    ds = load_dataset("idx", data_dir=folder)
    # the largest label decides n_classes (every class occurs: tests/data/test_labels.py)
    assert (ds.name, ds.n_classes, ds.image_shape, ds.n_features) == ("idx", 12, (6, 5), 30)
    assert ds.source == str(folder)
    np.testing.assert_array_equal(ds.x_train, xtr)
    np.testing.assert_array_equal(ds.y_test, yte)


def test_idx_dataset_from_the_environment_variable(tmp_path, monkeypatch):
    folder = write_idx_folder(tmp_path / "d", *small_idx())
    monkeypatch.setenv("MINIKD_DATA_DIR", str(folder))
    assert load_dataset("idx").x_train.shape == (12, 6, 5)


@pytest.mark.parametrize("problem, words", [
    ("count mismatch", "holds 12 images but"),
    ("shape mismatch", "both must have one size"),
    ("labels not 1-d", "labels must be 1-dimensional"),
    ("images not 3-d", "images must be 3-dimensional"),
    ("missing file", "has no t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz"),
])
def test_idx_dataset_structure_errors(tmp_path, problem, words):
    xtr, ytr, xte, yte = small_idx()
    if problem == "count mismatch":
        ytr = ytr[:-1]
    elif problem == "shape mismatch":
        xte = xte[:, :5, :5]
    elif problem == "labels not 1-d":
        ytr = ytr.reshape(3, 4)
    elif problem == "images not 3-d":
        xtr = xtr.reshape(12, 30)
    folder = write_idx_folder(tmp_path / "d", xtr, ytr, xte, yte)
    if problem == "missing file":
        (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=words) as err:
        load_dataset("idx", data_dir=folder)
    assert str(folder) in str(err.value)


def test_idx_needs_a_folder():
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("idx")


def test_named_folder_must_exist(tmp_path):
    with pytest.raises(DataError, match=r"nowhere \(--data-dir\) does not exist"):
        load_dataset("mnist", data_dir=tmp_path / "nowhere")


def test_unknown_dataset():
    with pytest.raises(DataError, match="choose --dataset mnist, idx or digits"):
        load_dataset("cifar")


def test_bad_file_gives_one_short_message(tmp_path):
    """What a script prints for a truncated file: one line naming it, with advice."""
    xtr, ytr, xte, yte = small_idx()
    folder = write_idx_folder(tmp_path / "mine", xtr, ytr, xte, yte, gz=True)
    bad = folder / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(idx_bytes(xtr)[:-7]))
    with pytest.raises(DataError) as err:
        load_dataset("idx", data_dir=folder)
    message = str(err.value)
    assert str(bad) in message and "truncated" in message and "fetch it again" in message
    assert "\n" not in message and len(message) < 300
    # no chained exception that a traceback would drag along
    assert err.value.__context__ is None or err.value.__suppress_context__


# --------------------------------------------------------------------------- where data comes from
def test_resolve_data_dir_flag_wins_over_environment(monkeypatch):
    assert resolve_data_dir(None) is None
    monkeypatch.setenv("MINIKD_DATA_DIR", "/from/env")
    assert resolve_data_dir(None) == "/from/env"
    assert resolve_data_dir("/from/flag") == "/from/flag"
    assert resolve_data_dir("~/x") == os.path.expanduser("~/x")


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "minikd"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "minikd"


def test_no_cache_and_no_download(tmp_path):
    with pytest.raises(DataError, match="downloading is off"):
        load_dataset("mnist", download=False, cache_dir=tmp_path / "empty")


# --------------------------------------------------------------------------- real MNIST
@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist", data_dir=mnist_dir())


def test_mnist_counts_shapes_and_histograms(mnist):
    assert (mnist.name, mnist.n_classes, mnist.image_shape, mnist.n_features) == ("mnist", 10, (28, 28), 784)
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_test.shape == (10000, 28, 28)
    assert mnist.x_train.dtype == np.uint8 and mnist.y_train.shape == (60000,)
    assert np.bincount(mnist.y_train).tolist() == TRAIN_HIST
    assert np.bincount(mnist.y_test).tolist() == TEST_HIST
    assert mnist.x_train.max() == 255 and mnist.x_train[:, 0, 0].max() == 0  # dark corners


def test_mnist_checksums_of_the_shared_copy():
    for name in MNIST_FILES:
        data = I._read_bytes(M._find(mnist_dir(), name))
        assert hashlib.sha256(data).hexdigest() == M.MNIST_SHA256[name], name


def test_mnist_through_the_environment_variable(monkeypatch):
    folder = mnist_dir()
    monkeypatch.setenv("MINIKD_DATA_DIR", str(folder))
    ds = load_dataset("mnist")
    assert ds.source == str(folder) and len(ds.y_test) == 10000


def test_tampered_mnist_is_refused_but_loads_as_idx(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in MNIST_FILES[:3]:
        src = M._find(mnist_dir(), name)
        shutil.copy(src, folder / src.name)
    labels = bytearray(I._read_bytes(M._find(mnist_dir(), MNIST_FILES[3])))
    labels[8] = (labels[8] + 1) % 10  # one test label changed: structure intact, checksum not
    bad = folder / MNIST_FILES[3]
    bad.write_bytes(bytes(labels))
    before = snapshot(folder)
    with pytest.raises(DataError, match="not MNIST's t10k-labels-idx1-ubyte") as err:
        load_dataset("mnist", data_dir=folder)
    assert str(bad) in str(err.value) and "--dataset idx" in str(err.value)
    assert snapshot(folder) == before  # the user's file is reported, not deleted
    assert load_dataset("idx", data_dir=folder).n_classes == 10


def test_user_folder_is_never_modified(tmp_path, http_server):
    """Neither a good load nor a missing file writes into the user's folder, and
    a missing file there is an error, never a download."""
    server, url = http_server({f"/m/{n}.gz": serve(mnist_gz(n)) for n in MNIST_FILES})
    folder = tmp_path / "mine"
    shutil.copytree(mnist_dir(), folder)
    before = snapshot(folder)
    load_dataset("mnist", data_dir=folder, mirrors=[url + "/m/"])
    assert snapshot(folder) == before

    victim = M._find(folder, "t10k-images-idx3-ubyte")
    victim.unlink()
    before = snapshot(folder)
    with pytest.raises(DataError) as err:
        load_dataset("mnist", data_dir=folder, mirrors=[url + "/m/"], timeout=2)
    message = str(err.value)
    assert "has no t10k-images-idx3-ubyte" in message and str(folder) in message
    assert "--data-dir" in message and M.MNIST_MIRRORS[0] in message  # which folder, where to get it
    assert snapshot(folder) == before and server.requests == []
    assert not (tmp_path / "xdg-cache").exists()  # nothing went to the cache either


# --------------------------------------------------------------------------- downloader
def test_download_into_cache_then_load_offline(tmp_path, http_server, published):
    server, url = http_server({f"/m/{n}.gz": serve(mnist_gz(n)) for n in MNIST_FILES})
    ds = load_dataset("mnist", mirrors=[url + "/m/"], timeout=5, retries=0)
    assert len(ds.y_train) == 60000 and np.bincount(ds.y_test).tolist() == TEST_HIST
    cache = tmp_path / "xdg-cache" / "minikd" / "mnist"
    assert ds.source == str(cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{n}.gz" for n in MNIST_FILES)
    assert len(server.requests) == 4

    again = load_dataset("mnist", mirrors=[url + "/m/"])   # pooch's cache: its digests match, no request
    assert len(server.requests) == 4
    server.shutdown()  # and with the download off, no network at all
    offline = load_dataset("mnist", download=False)
    np.testing.assert_array_equal(again.y_train, ds.y_train)
    np.testing.assert_array_equal(offline.x_test, ds.x_test)


def test_damaged_cache_file_is_replaced(tmp_path, http_server, published):
    server, url = http_server({f"/m/{n}.gz": serve(mnist_gz(n)) for n in MNIST_FILES})
    cache = tmp_path / "c"
    shutil.copytree(mnist_dir(), cache / "mnist")
    for p in (cache / "mnist").glob(LABELS + "*"):
        p.write_bytes(p.read_bytes()[:100])  # truncated in the cache
    ds = load_dataset("mnist", cache_dir=cache, mirrors=[url + "/m/"], retries=0)
    assert np.bincount(ds.y_test).tolist() == TEST_HIST
    assert server.requests == [f"/m/{LABELS}.gz"]


def test_cache_is_verified_when_the_download_is_off(tmp_path):
    cache = tmp_path / "c"
    folder = cache / "mnist"
    folder.mkdir(parents=True)
    for name in MNIST_FILES:
        (folder / f"{name}.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x00"))
    with pytest.raises(DataError, match="is not MNIST's train-images-idx3-ubyte"):
        load_dataset("mnist", cache_dir=cache, download=False)


def test_first_mirror_404_then_second(tmp_path, http_server, published):
    body = small_gz()
    server, url = http_server({f"/good/{LABELS}.gz": serve(body)})
    folder = cache_folder(tmp_path)
    got = download_file(LABELS, folder, mirrors=[url + "/bad/", url + "/good"], timeout=5, retries=2)
    assert got == folder / f"{LABELS}.gz" and got.read_bytes() == body
    # a 404 is not retried; the second mirror is asked once
    assert server.requests == [f"/bad/{LABELS}.gz", f"/good/{LABELS}.gz"]
    assert [p.name for p in folder.iterdir()] == [f"{LABELS}.gz"]   # nothing else written

    assert download_file(LABELS, folder, mirrors=[url + "/good"]) == got   # cached: not asked again
    assert len(server.requests) == 2


def test_download_mnist_fetches_what_is_missing_and_clears_stale_temporaries(tmp_path, http_server,
                                                                                 published):
    server, url = http_server({f"/m/{n}.gz": serve(mnist_gz(n)) for n in MNIST_FILES})
    folder = cache_folder(tmp_path)
    for name in MNIST_FILES[:3]:
        (folder / f"{name}.gz").write_bytes(mnist_gz(name))   # already in the cache
    stale = folder / "tmpk2j4_x9c"                            # pooch's temporary, left by a killed download
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fresh = folder / "tmp_in_use"                             # another process's download under way
    fresh.write_bytes(b"in progress")
    assert download_mnist(folder.parent, mirrors=[url + "/m/"], timeout=5, retries=0) == folder
    assert server.requests == [f"/m/{LABELS}.gz"]
    assert not stale.exists() and fresh.exists()


def test_corrupted_body_fails_checksum_and_leaves_nothing(tmp_path, http_server, published):
    raw = bytearray(gzip.decompress(small_gz()))
    raw[-1] = (raw[-1] + 1) % 10  # a valid IDX file with one wrong label
    server, url = http_server({f"/m/{LABELS}.gz": serve(gzip.compress(bytes(raw)))})
    folder = cache_folder(tmp_path)
    with pytest.raises(DataError) as err:
        download_file(LABELS, folder, mirrors=[url + "/m/"], timeout=5, retries=2)
    assert "wrong SHA-256" in str(err.value) and url in str(err.value)
    assert snapshot(folder) == {}  # no partial, no unverified file
    assert len(server.requests) == 1  # wrong bytes are not fetched again


def test_response_cut_short(tmp_path, http_server, published):
    body = small_gz()
    server, url = http_server({f"/m/{LABELS}.gz": serve(body[:len(body) // 2], len(body))})
    folder = cache_folder(tmp_path)
    with pytest.raises(DataError, match="cut short"):
        download_file(LABELS, folder, mirrors=[url + "/m/"], timeout=5, retries=0)
    assert snapshot(folder) == {}


def test_cut_short_is_retried(tmp_path, http_server, published):
    body = small_gz()
    answers = [serve(body[:100], len(body)), serve(body)]
    server, url = http_server({f"/m/{LABELS}.gz": lambda h: answers.pop(0)(h)})
    folder = cache_folder(tmp_path)
    download_file(LABELS, folder, mirrors=[url + "/m/"], timeout=5, retries=1)
    assert (folder / f"{LABELS}.gz").read_bytes() == body
    assert len(server.requests) == 2


def test_server_that_never_answers_times_out(tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections are accepted by the kernel; nothing ever replies
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/m/"
    folder = cache_folder(tmp_path)
    try:
        t0 = time.perf_counter()
        with pytest.raises(DataError) as err:
            download_file(LABELS, folder, mirrors=[url], timeout=0.5, retries=0)
        assert time.perf_counter() - t0 < 5
    finally:
        silent.close()
    assert "no answer within 0.5 s" in str(err.value)
    assert snapshot(folder) == {}


def test_every_mirror_failing_says_what_was_tried(tmp_path, http_server):
    server, url = http_server({f"/err/{LABELS}.gz": lambda h: h.send_error(503)})
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{refused.getsockname()[1]}/x/"  # bound, not listening: refused
    folder = cache_folder(tmp_path)
    try:
        with pytest.raises(DataError) as err:
            download_file(LABELS, folder, mirrors=[url + "/err/", dead, url + "/missing/", "nonsense"],
                          timeout=2, retries=1)
    finally:
        refused.close()
    message = str(err.value)
    assert f"{url}/err/{LABELS}.gz: HTTP 503" in message and "(2 attempts)" in message
    assert f"{dead}{LABELS}.gz: Connection refused (2 attempts)" in message
    assert f"{url}/missing/{LABELS}.gz: HTTP 404" in message
    assert f"nonsense/{LABELS}.gz: not an http(s) URL" in message
    assert "--data-dir" in message and "--dataset digits" in message and "by hand" in message
    assert snapshot(folder) == {}


# --------------------------------------------------------------------------- digits
def test_digits_offline_and_deterministic():
    ds = load_dataset("digits")
    assert (ds.name, ds.n_classes, ds.image_shape, ds.n_features) == ("digits", 10, (8, 8), 64)
    assert ds.x_train.shape == (1437, 8, 8) and ds.x_test.shape == (360, 8, 8)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.max() == 255 and ds.x_train.min() == 0
    assert set(np.unique(ds.y_train)) == set(range(10)) == set(np.unique(ds.y_test))
    again = load_dataset("digits")
    np.testing.assert_array_equal(again.x_test, ds.x_test)


# --------------------------------------------------------------------------- arrays for training
def test_to_float_scales_to_unit_interval(xp):
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    out = to_float(images, xp)
    assert out.shape == (1, 4) and out.dtype == np.float32
    np.testing.assert_allclose(to_host(out), [[0.0, 1.0, 0.2, 0.4]], rtol=1e-7)


def test_train_val_split():
    tr, va = train_val_split(60000)
    np.testing.assert_array_equal(va, np.arange(50000, 60000))
    np.testing.assert_array_equal(tr, np.arange(50000))
    tr, va = train_val_split(1437)
    assert len(va) == 1437 // 6 and va[-1] == 1436 and len(tr) + len(va) == 1437
    tr, va = train_val_split(100, val_size=0)
    assert len(tr) == 100 and len(va) == 0
    with pytest.raises(DataError, match="validation size 100"):
        train_val_split(100, val_size=100)


# --------------------------------------------------------------------------- translate / jitter
TINY = np.arange(1, 13, dtype=np.float32).reshape(3, 4)
EXPECTED = {  # (dy, dx): TINY shifted, zero fill. +dy moves down, +dx moves right.
    (0, 0): TINY,
    (1, 0): [[0, 0, 0, 0], [1, 2, 3, 4], [5, 6, 7, 8]],
    (0, -2): [[3, 4, 0, 0], [7, 8, 0, 0], [11, 12, 0, 0]],
    (-1, 1): [[0, 5, 6, 7], [0, 9, 10, 11], [0, 0, 0, 0]],
    (2, 2): [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 2]],
    (-2, -1): [[10, 11, 12, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
}


def test_translate_known_image(xp):
    shifts = np.array(list(EXPECTED))
    images = xp.asarray(np.stack([TINY] * len(shifts)))
    out = translate(images, shifts)
    assert type(out) is type(images) and out.dtype == np.float32
    np.testing.assert_array_equal(to_host(out), np.array(list(EXPECTED.values()), dtype=np.float32))


def reference_translate(images, shifts):
    """The definition, one pixel at a time."""
    out = np.zeros_like(images)
    n, h, w = images.shape
    for i, (dy, dx) in enumerate(shifts):
        for y in range(h):
            for x in range(w):
                if 0 <= y - dy < h and 0 <= x - dx < w:
                    out[i, y, x] = images[i, y - dy, x - dx]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_translate_matches_definition(xp, dtype):
    rng = np.random.default_rng(1)
    images = (rng.random((25, 7, 6)) * 200).astype(dtype)
    shifts = np.array([(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)])  # all 25
    out = translate(xp.asarray(images), xp.asarray(shifts))
    assert out.dtype == dtype
    np.testing.assert_array_equal(to_host(out), reference_translate(images, shifts))
    buf = xp.zeros((25, 7, 6), dtype=dtype)
    assert translate(xp.asarray(images), shifts, out=buf) is buf
    np.testing.assert_array_equal(to_host(buf), reference_translate(images, shifts))


def test_translate_zero_fill_and_limits(xp):
    ones = xp.asarray(np.ones((1, 28, 28), dtype=np.float32))
    out = to_host(translate(ones, np.array([[2, -2]])))
    assert out[0, :2].sum() == 0 and out[0, :, -2:].sum() == 0 and out.sum() == 26 * 26
    assert translate(xp.zeros((0, 5, 5), dtype=np.float32), np.zeros((0, 2), dtype=int)).shape == (0, 5, 5)
    assert to_host(translate(ones, np.array([[3, 0]]), max_shift=3))[0, :3].sum() == 0


def test_translate_refuses_out_of_range_shifts():
    with pytest.raises(ValueError, match=r"\[-2, 2\]"):
        translate(np.ones((1, 5, 5)), np.array([[3, 0]]))
    with pytest.raises(ValueError, match="shape"):
        translate(np.ones((2, 5, 5)), np.array([[1, 0]]))


def test_random_shifts_cover_the_range():
    s = random_shifts(np.random.default_rng(0), 5000)
    assert s.shape == (5000, 2) and s.min() == -2 and s.max() == 2
    assert len({tuple(r) for r in s.tolist()}) == 25


def test_jitter_is_reproducible(xp):
    images = xp.asarray(np.random.default_rng(2).random((50, 28, 28), dtype=np.float32))
    a = to_host(jitter(images, np.random.default_rng(7)))
    b = to_host(jitter(images, np.random.default_rng(7)))
    c = to_host(jitter(images, np.random.default_rng(8)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    shifts = random_shifts(np.random.default_rng(7), 50)
    np.testing.assert_array_equal(a, to_host(translate(images, shifts)))
