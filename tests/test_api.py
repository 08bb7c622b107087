"""minikd's public API: ``import minikd``, ``minikd.load(path)``, ``predict``, ``predict_proba``.

The checkpoints are written by ``run_stage`` -- what ``minikd reproduce`` and
the section-3 scripts run -- on the bundled digits, with small networks that
learn in a few seconds: a teacher with dropout (so a prediction made in
training mode would differ from one in eval mode) and a distilled student.
"""
import importlib.metadata
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import minikd
from minikd.engine.backend import to_host
from minikd.checkpoints import read_checkpoint
from minikd.experiments.stage import prepare_arrays, run_stage


@pytest.fixture(scope="module")
def digits():
    return minikd.load_dataset("digits")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits):
    """{stage name: (checkpoint path, Trainer)} for a teacher and a distilled student."""
    out = tmp_path_factory.mktemp("run")
    arrays = prepare_arrays(digits, np)
    meta = {"dataset": "digits", "data": digits.fingerprint()}
    teacher_cfg = minikd.StageConfig("teacher", (64, 100, 10), epochs=20, input_dropout=0.2, hidden_dropout=0.5,
                                     image_shape=(8, 8))
    teacher, entry_t = run_stage(teacher_cfg, arrays, np, out=out, meta=meta, progress=False)
    soft = minikd.teacher_logits(teacher.model, arrays["x_train"])
    distilled_cfg = minikd.StageConfig("distilled", (64, 50, 10), epochs=20, temperature=4.0,
                                       grad_bound=1.0, image_shape=(8, 8))
    distilled, entry_d = run_stage(distilled_cfg, arrays, np, out=out, meta=meta, soft_logits=soft,
                                   progress=False)
    assert entry_t["test_errors"] < 60 and entry_d["test_errors"] < 60, (entry_t, entry_d)  # they learned
    return {"teacher": (out / "teacher.npz", teacher), "distilled": (out / "distilled_seed0.npz", distilled)}


@pytest.fixture(scope="module")
def teacher(trained):
    return minikd.load(trained["teacher"][0])


# --------------------------------------------------------------------------- the package
def test_version_is_the_installed_distributions():
    assert minikd.__version__ == importlib.metadata.version("minikd"), \
        "minikd.__version__ differs from the installed metadata: reinstall (pip install -e .)"


def test_every_public_name_exists_and_import_stays_light():
    for name in minikd.__all__:
        assert hasattr(minikd, name), name
    code = ("import sys, minikd; print([m for m in ('matplotlib', 'sklearn', 'tqdm', 'pooch', 'requests', "
            "'cupy', 'minikd.experiments.stage') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- load and predict
@pytest.mark.parametrize("stage", ["teacher", "distilled"])
def test_load_predicts_what_the_trained_network_predicts(trained, digits, stage):
    path, trainer = trained[stage]
    model = minikd.load(path)
    assert isinstance(model, minikd.TrainedModel) and model.config == trainer.cfg
    assert (model.n_features, model.n_classes, model.image_shape) == (64, 10, (8, 8))
    assert model.meta["dataset"] == "digits" and model.epochs_done == 20 and str(path) in repr(model)
    x = minikd.to_float(digits.x_test)
    expected = to_host(trainer.model.forward(x, train=False))   # eval mode: no dropout
    np.testing.assert_array_equal(model.logits(x), expected)
    np.testing.assert_array_equal(model.predict(x), expected.argmax(axis=1))
    assert (model.predict(digits.x_test) != digits.y_test).sum() == trainer.history[-1].test_errors


def test_predict_proba_rows_sum_to_one_and_temperature_flattens(teacher, digits):
    z = teacher.logits(digits.x_test).astype(np.float64)
    p1 = teacher.predict_proba(digits.x_test)
    assert p1.shape == (360, 10) and p1.dtype == np.float64 and (p1 >= 0).all()
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(p1.argmax(axis=1), teacher.predict(digits.x_test))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p1, e / e.sum(axis=1, keepdims=True), rtol=1e-12)
    previous = p1
    for t in (2, 5, 20, 1e6):
        p = teacher.predict_proba(digits.x_test, temperature=t)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(p.argmax(axis=1), p1.argmax(axis=1))   # T rescales, never reorders
        assert (p.max(axis=1) < previous.max(axis=1)).all()                  # each row flatter than at lower T
        previous = p
    np.testing.assert_allclose(previous, 0.1, atol=1e-4)                     # T -> infinity: uniform


def test_uint8_images_are_scaled_as_in_training(teacher, digits):
    images = digits.x_test                                   # uint8 (360, 8, 8), 0..255
    expected = teacher.logits(minikd.to_float(images))
    for x in (images, images.reshape(360, 64), images.reshape(360, 64) / 255.0,
              (images / np.float32(255)).reshape(360, 64), list(minikd.to_float(images))):
        np.testing.assert_array_equal(teacher.logits(x), expected)
    np.testing.assert_array_equal(teacher.predict(images[:0]), np.zeros(0, dtype=int))   # an empty batch


BAD_INPUTS = {
    # case: (x, words the message must contain besides the expected shapes)
    "float images": (np.zeros((3, 8, 8)), "x.reshape(len(x), -1)"),
    "uint8 of another size": (np.zeros((3, 9, 9), np.uint8), "got uint8 of shape (3, 9, 9)"),
    "float rows of another length": (np.zeros((3, 63)), "got float64 of shape (3, 63)"),
    "one row": (np.zeros(64), "x[None]"),
    "int64 pixels": (np.zeros((3, 8, 8), np.int64), "x.astype(np.uint8)"),
    "unscaled floats": (np.full((3, 64), 255.0), "got values in [255, 255]"),
    "negative floats": (np.full((3, 64), -0.5), "scaled to [0, 1]"),
    "NaN": (np.full((3, 64), np.nan), "NaN"),
    "booleans": (np.zeros((3, 64), bool), "got bool"),
    "strings": (np.array([["a"] * 64]), "got <U1"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_refused_naming_the_expected_shape(teacher, case):
    x, words = BAD_INPUTS[case]
    for call in (teacher.predict, teacher.predict_proba):
        with pytest.raises(ValueError) as err:
            call(x)
        message = str(err.value)
        assert "uint8 images (N, 8, 8)" in message or "scaled to [0, 1]" in message, message
        assert words in message, message


@pytest.mark.parametrize("t", [0, -1.0, float("nan"), float("inf"), True, "4"])
def test_bad_temperature_is_refused(teacher, digits, t):
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        teacher.predict_proba(digits.x_test, temperature=t)


def test_input_on_another_backend_comes_to_the_host(teacher, digits, xp):
    x = xp.asarray(digits.x_test)
    np.testing.assert_array_equal(teacher.predict(x), teacher.predict(digits.x_test))


# --------------------------------------------------------------------------- files that are not models
def test_load_refuses_what_is_not_a_checkpoint(tmp_path, trained):
    with pytest.raises(minikd.CheckpointError, match="does not exist"):
        minikd.load(tmp_path / "nope.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip archive")
    with pytest.raises(minikd.CheckpointError, match=f"{junk} is unreadable"):
        minikd.load(junk)
    header, arrays = read_checkpoint(trained["teacher"][0])
    first = next(k for k in arrays if k.startswith("param.") and k.endswith(".W"))   # the first Dense's W
    arrays[first] = arrays[first][:, :7]                       # one array of another shape
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, header=np.array(json.dumps(header)), **arrays)
    with pytest.raises(minikd.CheckpointError, match=f"{wrong}: its arrays do not fit the 64-100-10 network"):
        minikd.load(wrong)


def test_an_unfinished_stage_loads_with_a_warning(tmp_path, trained):
    header, arrays = read_checkpoint(trained["distilled"][0])
    header["epochs_done"] = 3
    path = tmp_path / "distilled_seed0.npz"
    np.savez(path, header=np.array(json.dumps(header)), **arrays)
    with pytest.warns(UserWarning, match="finished only 3 of its 20 epochs"):
        model = minikd.load(path)
    assert model.epochs_done == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        minikd.load(trained["distilled"][0])                   # a finished one: no warning


# --------------------------------------------------------------------------- scikit-learn's names
def test_the_scikit_learn_names(teacher, digits):
    """classes_ (what predict returns), n_features_in_ (D) and score(x, y): accuracy, the share of
    rows whose prediction equals the label, on uint8 images as on float rows."""
    np.testing.assert_array_equal(teacher.classes_, np.arange(10))
    assert teacher.n_features_in_ == 64 == teacher.n_features
    predicted = teacher.predict(digits.x_test)
    assert set(np.unique(predicted)) <= set(teacher.classes_.tolist())
    expected = float((predicted == digits.y_test).mean())
    assert 0.5 < expected < 1.0                             # a trained teacher, with some errors: a real check
    assert teacher.score(digits.x_test, digits.y_test) == expected
    assert teacher.score(minikd.to_float(digits.x_test), list(digits.y_test)) == expected
    wrong = (digits.y_test + 1) % 10                         # every label moved: the score moves with it
    assert teacher.score(digits.x_test, wrong) == float((predicted == wrong).mean())


@pytest.mark.parametrize("y, words", [
    (np.zeros(359, int), r"y has shape \(359,\).*\(360,\) labels"),
    (np.full(360, 10), r"integer class labels in \[0, 10\).*\[10, 10\]"),
    (np.full(360, -1), r"integer class labels in \[0, 10\)"),
    (np.zeros(360) + 0.5, r"integer class labels in \[0, 10\); got float64"),
])
def test_score_refuses_labels_that_do_not_fit(teacher, digits, y, words):
    with pytest.raises(ValueError, match=words):
        teacher.score(digits.x_test, y)


def test_an_unknown_checkpoint_format_is_refused_naming_both_versions(tmp_path, trained):
    """A checkpoint of another format version (an older or a newer minikd) is refused, naming its
    version and the one this minikd reads; never read with guessed fix-ups."""
    from minikd.checkpoints import FORMAT, SUPPORTED_FORMATS
    assert FORMAT == "minikd-checkpoint-2" and SUPPORTED_FORMATS == (FORMAT,)
    header, arrays = read_checkpoint(trained["teacher"][0])
    for version in ("minikd-checkpoint-1", "minikd-checkpoint-3", None):
        path = tmp_path / f"{version}.npz"
        np.savez(path, header=np.array(json.dumps({**header, "format": version})), **arrays)
        with pytest.raises(minikd.CheckpointError) as err:
            minikd.load(path)
        message = str(err.value)
        assert str(path) in message and f"format version is {version!r}" in message, message
        assert "'minikd-checkpoint-2'" in message, message
