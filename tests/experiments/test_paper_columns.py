"""reproduce's final table and plot: the paper's MNIST numbers appear only beside errors counted
on MNIST's test set, and the seed reproduction's never (it is cited in the rendered docs only)."""
import matplotlib.axes

from minikd.experiments.reproduce_table import comparable_with_paper, plot_curves, print_results, summarize
from minikd.profiles import EPOCHS


def runs(n_eval):
    """Three models' runs; on all 60,000 images for the quick profile's own epochs."""
    hist = [{"epoch": 0, "test_errors": n_eval // 3}, {"epoch": 1, "test_errors": n_eval // 4}]
    return [{"model": k, "teacher_seed": 0, "seed": 0, "test_errors": n_eval // 4, "n_eval": n_eval, "history": hist,
             "train_size": 60000, "epochs": EPOCHS["quick"][k]} for k in ("teacher", "student", "distilled")]


def test_mnist_test_set_shows_the_paper_only(capsys):
    r = runs(10000)
    print_results(r, summarize(r, []), "test", dataset="mnist")
    out = capsys.readouterr().out
    assert "paper" in out and "67" in out and "146" in out and "74" in out
    assert "seed repro" not in out and "171" not in out.split()


def test_digits_idx_and_validation_do_not(capsys):
    for dataset, eval_name, n in (("digits", "test", 360), ("idx", "test", 10000), ("mnist", "validation", 10000)):
        assert not comparable_with_paper(dataset, eval_name)
        r = runs(n)
        print_results(r, summarize(r, []), eval_name, dataset=dataset)
        out = capsys.readouterr().out
        table = out.split("errors out of")[0]
        assert "paper" not in table
        for published in ("67", "146", "74", "100", "171", "111"):
            assert published not in out.split(), (dataset, eval_name, published)
        assert f"errors out of {n} {dataset} {eval_name} images" in out and "not shown" in out


def test_plot_draws_the_paper_lines_only_on_mnist(tmp_path, monkeypatch):
    drawn = []
    real = matplotlib.axes.Axes.axhline
    monkeypatch.setattr(matplotlib.axes.Axes, "axhline",
                        lambda self, y=0, *a, **k: drawn.append(y) or real(self, y, *a, **k))
    plot_curves(runs(360), tmp_path / "digits.png", "test", dataset="digits")
    assert drawn == [] and (tmp_path / "digits.png").stat().st_size > 0
    plot_curves(runs(10000), tmp_path / "mnist.png", "test", dataset="mnist")
    assert sorted(drawn) == [67, 74, 146]
