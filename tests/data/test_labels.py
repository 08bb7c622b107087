"""Labels are 0..K-1 with every class present in the training labels (issue 19):
a stray label is refused naming the file and the labels, not turned into a
201-output network."""
import numpy as np
import pytest

from minikd.data import DataError, load_dataset
from minikd.data.datasets import check_class_labels, label_summary
from minikd.data.mnist import MNIST_FILES
from minikd.experiments import reproduce
from minikd.experiments.variants import idx_bytes


def write_idx(folder, x_train, y_train, x_test, y_test):
    """The four files, raw IDX under MNIST's names (variants.idx_bytes encodes them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in zip(MNIST_FILES, (x_train, y_train, x_test, y_test), strict=True):
        (folder / name).write_bytes(idx_bytes(arr))
    return folder


def folder_with(tmp_path, y_train, y_test):
    rng = np.random.default_rng(0)
    x_tr = rng.integers(0, 256, (len(y_train), 4, 4), dtype=np.uint8)
    x_te = rng.integers(0, 256, (len(y_test), 4, 4), dtype=np.uint8)
    return write_idx(tmp_path / "d", x_tr, np.array(y_train, np.uint8), x_te, np.array(y_test, np.uint8))


def test_a_stray_training_label_is_refused_naming_the_file_and_the_labels(tmp_path):
    y = list(range(10)) * 3
    y[7] = 200
    folder = folder_with(tmp_path, y, list(range(10)))
    with pytest.raises(DataError) as exc:
        load_dataset("idx", data_dir=folder)
    msg = str(exc.value)
    assert str(folder / "train-labels-idx1-ubyte") in msg
    assert "0..9, 200" in msg and "10..199 never occur" in msg and "201 outputs" in msg
    assert "--allow-missing-classes" in msg


def test_a_class_missing_from_training_is_refused(tmp_path):
    folder = folder_with(tmp_path, [0, 1, 3, 3, 1, 0], [0, 1, 3])
    with pytest.raises(DataError, match=r"holds labels 0\.\.1, 3: classes 2 never occur"):
        load_dataset("idx", data_dir=folder)


def test_a_test_label_unknown_to_training_is_refused(tmp_path):
    folder = folder_with(tmp_path, [0, 1, 2, 0, 1, 2], [0, 1, 5])
    with pytest.raises(DataError) as exc:
        load_dataset("idx", data_dir=folder)
    assert str(folder / "t10k-labels-idx1-ubyte") in str(exc.value) and "labels 5 " in str(exc.value)


def test_gaps_are_accepted_with_the_explicit_flag(tmp_path):
    folder = folder_with(tmp_path, [1, 2, 3, 26, 1, 2], [1, 26])   # EMNIST letters: 1..26
    ds = load_dataset("idx", data_dir=folder, allow_missing_classes=True)
    assert ds.n_classes == 27


def test_good_labels_give_k_classes(tmp_path):
    folder = folder_with(tmp_path, [0, 1, 2, 3] * 2, [3, 2])   # a test set need not hold every class
    assert load_dataset("idx", data_dir=folder).n_classes == 4
    assert load_dataset("digits").n_classes == 10


def test_label_helpers():
    assert label_summary(np.array([9, 0, 1, 2, 200, 5, 3, 4, 6, 7, 8])) == "0..9, 200"
    assert label_summary(np.array([3])) == "3"
    assert check_class_labels(np.array([0, 1, 2]), np.array([2]), "tr", "te") == 3


def test_the_command_refuses_it_in_one_line_before_training(tmp_path, capsys):
    y = list(range(10)) * 3
    y[0] = 200
    folder = folder_with(tmp_path, y, list(range(10)))
    with pytest.raises(SystemExit) as exc:
        reproduce.main(["--backend", "numpy", "--dataset", "idx", "--data-dir", str(folder),
                        "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 1 and len(err.splitlines()) == 1 and "200" in err
    assert not (tmp_path / "out").exists()
