"""scripts/make_figures.py: each figure is built on digits from real model output."""
import numpy as np
import pytest

from minikd.engine.losses import softmax
from minikd.experiments import figures

PNG = b"\x89PNG\r\n\x1a\n"
SMALL = ["--epochs", "8", "--teacher-width", "200", "--width", "100", "--init-std", "0.1"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    return out, figures.make_figures([*SMALL, "--out", str(out)])


def test_every_figure_is_written_as_png(made):
    out, m = made
    assert [p.name for p in m["paths"]] == ["softmax_temperature.png", "dark_knowledge.png",
                                            "gradient_scale.png", "learning_curves_digits.png"]
    for path in m["paths"]:
        data = path.read_bytes()
        assert path.parent == out and data.startswith(PNG) and len(data) > 10_000, path


def test_the_models_behind_the_figures_learned(made):
    _, m = made
    v, z = m["teacher_logits"], m["student_logits"]
    assert v.shape == z.shape == (360, 10)
    curves = m["learning_curves"]
    assert set(curves) == {"teacher", "student", "distilled"}
    for key, errs in curves.items():
        assert len(errs) == 8 and all(0 <= e <= 360 for e in errs), key
        assert errs[-1] < 0.5 * 324, f"{key} ended at {errs[-1]} errors of 360: near chance"


def test_softmax_figure_is_the_engine_softmax(made):
    _, m = made
    a = m["softmax_temperature"]
    p1, p20 = a["bars"][1.0], a["bars"][20.0]
    assert p1[0] == pytest.approx(1 / (1 + np.exp(-6.0)))       # logits (10, 4) at T = 1
    assert p20[0] == pytest.approx(1 / (1 + np.exp(-6.0 / 20)))  # and at T = 20
    assert np.all(np.diff(a["curves"][20.0]) > 0)                 # p_1 rises with z


def test_dark_knowledge_shows_a_confident_digit_beside_an_ambiguous_one(made):
    _, m = made
    b, v = m["dark_knowledge"], m["teacher_logits"]
    confident, ambiguous = b["rows"]
    assert b["kinds"] == ["confident", "ambiguous"] and b["labels"][0] != b["labels"][1]
    top2 = np.sort(v, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    assert margin[ambiguous] == margin.min()                     # the most ambiguous image
    assert v[confident].argmax() == b["labels"][0]                # the confident one is right ...
    assert margin[confident] >= np.median(margin)                 # ... and confidently so
    for t, probs in b["probs"].items():
        np.testing.assert_allclose(probs, softmax(v[b["rows"]].astype(np.float64), t), rtol=1e-12)
        for r in range(2):                                        # every T ranks the classes alike
            wrong = [c for c in np.argsort(-probs[r], kind="stable") if c != b["labels"][r]]
            assert wrong == b["ranking"][r], (t, r)
    entropy = {t: -(p * np.log(p)).sum(axis=1) for t, p in b["probs"].items()}
    assert np.all(entropy[1.0] < entropy[4.0]) and np.all(entropy[4.0] < entropy[20.0])


def test_dark_knowledge_bars_at_t_20_are_readable(made):
    """At T = 20 every q is near 1/C: drawn as q - 1/C on a linear axis, the bars must
    span a good part of the panel (not all at 7-12% of a log axis)."""
    _, m = made
    b = m["dark_knowledge"]
    lo, hi = b["high_t_ylim"]
    deviation = b["probs"][b["high_t"]] - 0.1
    assert lo < deviation.min() < 0 < deviation.max() < hi
    assert np.abs(deviation).max() / (hi - lo) > 0.3


def test_gradient_scale_table_reaches_its_limit(made):
    _, m = made
    t = m["gradient_scale_table"]
    assert t["temperatures"][0] == 1.0 and t["temperatures"][-1] == 100.0
    assert abs(t["scaled"][-1] / t["limit"] - 1) < 0.05


def test_gradient_scale_follows_one_over_t_squared(made):
    _, m = made
    g = m["gradient_scale"]
    t = np.array(g["temperatures"])
    unscaled, scaled = np.array(g["unscaled"]), np.array(g["scaled"])
    np.testing.assert_allclose(scaled, unscaled * t ** 2, rtol=1e-12)
    # Without T^2 the soft gradient falls as 1/T^2 at high T; with it, it tends to
    # (z - v) / (C N). Both approximations err by O(|z| / T): the errors must shrink with T.
    local_slope = np.diff(np.log(unscaled)) / np.diff(np.log(t))
    assert abs(local_slope[-1] + 2) < 0.05
    assert abs(local_slope[-1] + 2) < abs(local_slope[t[1:] <= 10][-1] + 2)
    off = np.abs(scaled / g["limit"] - 1)
    assert off[-1] < 0.05
    assert off[-1] < off[t >= 50][0] < off[t >= 20][0]


def test_figures_from_a_finished_run(made, tmp_path):
    """--teacher and --results: nothing is trained but the student for the gradient
    figure, which comes from the results' checkpoint when it is there."""
    import json
    from minikd.experiments import reproduce
    run = tmp_path / "run"
    # all 1,437 digits: on 300 the health check rightly refuses a 2-epoch teacher still at chance
    assert reproduce.main(["--dataset", "digits", "--backend", "numpy", "--epochs", "2", "--out", str(run)]) == 0
    res = json.loads((run / "results.json").read_text())
    out = tmp_path / "figs"
    m = figures.make_figures(["--teacher", str(run / "teacher.npz"), "--results", str(run / "results.json"),
                              "--out", str(out)])
    assert m["learning_curves"]["teacher"] == [h["test_errors"] for h in res["models"]["teacher"]["history"]]
    for path in m["paths"]:
        assert path.read_bytes().startswith(PNG)


def test_bad_inputs_stop_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        figures.make_figures(["--results", str(tmp_path / "missing.json"), "--out", str(tmp_path)])
    assert "missing.json" in capsys.readouterr().err
    bad = tmp_path / "teacher.npz"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit):
        figures.make_figures(["--teacher", str(bad), "--out", str(tmp_path)])
    assert "teacher.npz" in capsys.readouterr().err
