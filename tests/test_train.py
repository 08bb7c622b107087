"""End-to-end proofs of the engine: it learns, the fused step equals the
reference step, resume equals an uninterrupted run, divergence is caught."""
import numpy as np
import pytest
from dataclasses import replace
from sklearn.datasets import load_digits

from minikd.engine.backend import to_host
from minikd.engine.losses import softmax
from minikd import train
from minikd.train import build_model, DivergenceError, StageConfig, Trainer, bound_rows_, predict_logits


def digits_arrays(xp):
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int32)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    return (xp.asarray(x[:1400]), xp.asarray(y[:1400]), xp.asarray(x[1400:]), xp.asarray(y[1400:]))


@pytest.mark.parametrize("fast", [False, True])
def test_mlp_learns_sklearn_digits(xp, fast):
    """A small MLP trained by the engine reaches >= 95% test accuracy in seconds."""
    x_tr, y_tr, x_te, y_te = digits_arrays(xp)
    cfg = StageConfig("student", (64, 128, 128, 10), epochs=15, batch_size=50, lr=0.1, lr_decay=0.95,
                      momentum_ramp=3, init_std=0.1, image_shape=(8, 8))
    trainer = Trainer(cfg, xp, x_tr, y_tr, x_te, y_te, fast=fast)
    trainer.fit()
    errors = trainer.history[-1].test_errors
    accuracy = 1.0 - errors / len(y_te)
    assert accuracy >= 0.95, f"test accuracy {accuracy:.3f}"
    assert trainer.history[-1].loss < trainer.history[0].loss


def _teacher_like_cfg(**kw):
    base = dict(name="teacher", sizes=(64, 48, 40, 10), epochs=2, batch_size=32, input_dropout=0.2,
                hidden_dropout=0.5, max_norm=0.5, jitter=1, image_shape=(8, 8), lr=0.5,
                lr_decay=0.9, momentum_ramp=1, init_std=0.1)
    base.update(kw)
    return StageConfig(**base)


@pytest.mark.parametrize("distill", [False, True])
def test_fused_step_equals_reference_step(distill):
    """The optimised CPU step (momentum folded into sgemm, in-place masks) gives
    the reference step's parameters to float32 rounding, with dropout, jitter,
    max-norm and both losses."""
    x_tr, y_tr, x_te, y_te = digits_arrays(np)
    x_tr, y_tr = x_tr[:320], y_tr[:320]
    soft = None
    if distill:
        soft = np.random.default_rng(1).standard_normal((320, 10)).astype(np.float32) * 5
    cfg = _teacher_like_cfg(hard_weight=0.5, temperature=4.0)
    ref = Trainer(cfg, np, x_tr, y_tr, x_te, y_te, soft_logits=soft, fast=False,
                  model=build_model(cfg, np, fast=True))   # the fused step's mask sampler too
    fused = Trainer(cfg, np, x_tr, y_tr, x_te, y_te, soft_logits=soft, fast=True)
    assert ref.step_impl is None and fused.step_impl is not None
    ref.health = fused.health = None   # 2 epochs on 320 rows: arithmetic, not a network that must learn
    ref.fit()
    fused.fit()
    init = Trainer(cfg, np, x_tr, y_tr, x_te, y_te).model
    for (l1, n1), (l2, n2), (l0, n0) in zip(ref.model.parameters(), fused.model.parameters(),
                                            init.parameters(), strict=True):
        a, b = l1.params[n1], l2.params[n2]
        assert not np.allclose(a, l0.params[n0]), "training did not move the parameters"
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * float(np.abs(a).max()))
    np.testing.assert_allclose([h.loss for h in fused.history], [h.loss for h in ref.history], rtol=1e-5)


@pytest.mark.parametrize("fast", [False, True], ids=["reference", "fast"])
def test_resume_equals_uninterrupted(xp, fast):
    x_tr, y_tr, x_te, y_te = digits_arrays(xp)
    cfg = _teacher_like_cfg(epochs=4, momentum_ramp=4)  # a 1-epoch ramp to p = 0.99 learns nothing in 4 epochs
    full = Trainer(cfg, xp, x_tr, y_tr, x_te, y_te, fast=fast)
    full.fit()
    first = Trainer(StageConfig(**{**cfg.__dict__, "epochs": 2}), xp, x_tr, y_tr, x_te, y_te, fast=fast)
    first.fit()
    resumed = Trainer(cfg, xp, x_tr, y_tr, x_te, y_te, fast=fast)
    resumed.model.load_state_dict(first.model.state_dict())
    resumed.optimizer.load_state_dict(first.optimizer.state_dict())
    resumed.start_epoch = 2
    resumed.fit()
    for (l1, n1), (l2, n2) in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        np.testing.assert_array_equal(to_host(l1.params[n1]), to_host(l2.params[n2]))
    assert full.history[-1].test_errors == resumed.history[-1].test_errors


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_is_caught(xp):
    x_tr, y_tr, x_te, y_te = digits_arrays(xp)
    cfg = StageConfig("student", (64, 32, 10), epochs=3, lr=1e15, rule="classic", momentum_start=0.9,
                      momentum_end=0.9, init_std=1.0, image_shape=(8, 8))
    trainer = Trainer(cfg, xp, x_tr, y_tr, x_te, y_te)
    with pytest.raises(DivergenceError, match="lower --lr"):
        trainer.fit()


def test_soft_targets_shape_is_checked(xp):
    x_tr, y_tr, x_te, y_te = digits_arrays(xp)
    cfg = StageConfig("distilled", (64, 16, 10), epochs=1, image_shape=(8, 8))
    with pytest.raises(ValueError, match="teacher logits"):
        Trainer(cfg, xp, x_tr, y_tr, x_te, y_te, soft_logits=xp.zeros((10, 10), dtype=xp.float32))


def test_predict_logits_chunks_match_one_pass(xp):
    x_tr, y_tr, x_te, y_te = digits_arrays(xp)
    trainer = Trainer(StageConfig("student", (64, 16, 10), epochs=1, image_shape=(8, 8), init_std=0.3),
                      xp, x_tr, y_tr, x_te, y_te)
    whole = trainer.model.forward(x_tr, train=False)
    chunked = predict_logits(trainer.model, x_tr, batch_size=300)
    np.testing.assert_allclose(to_host(chunked), to_host(whole), rtol=1e-5, atol=1e-6)


def test_distillation_loss_is_logged_in_parts():
    """loss = hard_weight * hard + soft_weight T^2 (H(q) + KL(q || p)); the log shows hard and the KL term,
    which starts near T^2 KL(q || uniform) and falls as the student learns the teacher."""
    x_tr, y_tr, x_te, y_te = digits_arrays(np)
    rng = np.random.default_rng(2)
    soft = (np.eye(10, dtype=np.float32)[y_tr] * 8 + rng.standard_normal((len(y_tr), 10)).astype(np.float32))
    cfg = StageConfig("distilled", (64, 64, 64, 10), epochs=4, image_shape=(8, 8), lr=0.3, lr_decay=0.9,
                      momentum_ramp=2, init_std=0.1, temperature=4.0, hard_weight=0.5)
    tr = Trainer(cfg, np, x_tr, y_tr, x_te, y_te, soft_logits=soft)
    tr.fit()
    log_q = np.log(softmax(soft.astype(np.float64), cfg.temperature))
    floor = cfg.soft_weight * cfg.temperature ** 2 * float(-(np.exp(log_q) * log_q).sum(axis=1).mean())  # T^2 H(q)
    for h in tr.history:
        assert h.hard_loss is not None and h.soft_kl >= 0
        total = cfg.hard_weight * h.hard_loss + h.soft_kl + floor
        assert total == pytest.approx(h.loss, rel=2e-2)
    assert tr.history[-1].soft_kl < 0.7 * tr.history[0].soft_kl
    student = Trainer(replace(cfg, name="student"), np, x_tr, y_tr, x_te, y_te)
    student.fit()
    assert student.history[0].hard_loss is None and student.history[0].soft_kl is None


@pytest.mark.parametrize("fast", [False, True])
def test_float64_inputs_are_cast_once_on_both_steps(fast):
    """X / 255.0 in a notebook is float64: the Trainer casts it once to the model's float32, so
    both steps run (the fused one needs float32) and train exactly as on float32 rows."""
    x_tr, y_tr, x_te, y_te = digits_arrays(np)
    cfg = StageConfig("student", (64, 32, 10), epochs=2, batch_size=50, lr=0.1, lr_decay=0.95,
                      momentum_ramp=3, init_std=0.1, image_shape=(8, 8))
    as32 = Trainer(cfg, np, x_tr, y_tr, x_te, y_te, fast=fast)
    as64 = Trainer(cfg, np, x_tr.astype(np.float64), y_tr, x_te.astype(np.float64), y_te, fast=fast)
    assert (as64.step_impl is not None) == fast and as64.x_train.dtype == np.float32
    as32.fit()
    as64.fit()
    for (l1, n1), (l2, n2) in zip(as32.model.parameters(), as64.model.parameters(), strict=True):
        np.testing.assert_array_equal(l1.params[n1], l2.params[n2])
    with pytest.raises(ValueError, match="x_train has dtype uint8: give float rows"):
        Trainer(cfg, np, (x_tr * 16).astype(np.uint8), y_tr, x_te, y_te)


def test_the_reference_step_draws_masks_with_the_engines_own_sampler():
    """What a learner reads (layers.bernoulli_mask) is what the reference step runs; the fast
    path's sampler is plugged in only with the fused step."""
    from minikd.engine.layers import Dropout, bernoulli_mask
    from minikd.fast.masks import raw_stream_mask
    x_tr, y_tr, x_te, y_te = digits_arrays(np)
    cfg = _teacher_like_cfg()
    for fast, sampler in ((False, bernoulli_mask), (True, raw_stream_mask)):
        drops = [layer for layer in Trainer(cfg, np, x_tr, y_tr, x_te, y_te, fast=fast).model.layers
                 if isinstance(layer, Dropout)]
        assert len(drops) == 3 and all(layer.sampler is sampler for layer in drops)


def test_the_default_step_is_the_fast_one_and_fast_false_the_reference():
    """Trainer(fast=True) is the default, as in every command; fast=False runs ReferenceStep."""
    x_tr, y_tr, x_te, y_te = digits_arrays(np)
    cfg = StageConfig("student", (64, 16, 10), epochs=1, image_shape=(8, 8))
    assert Trainer(cfg, np, x_tr, y_tr, x_te, y_te).step_impl is not None
    reference = Trainer(cfg, np, x_tr, y_tr, x_te, y_te, fast=False)
    assert reference.step_impl is None and isinstance(reference.step, train.ReferenceStep)


# --------------------------------------------------------------------------- the per-row bound's activity
def test_bound_rows_writes_each_rows_factor():
    """bound_rows_'s factors are min(1, limit / ||d_n||), computed here in float64, and each row
    becomes d_n times its factor: its direction kept, its length at most the limit."""
    rng = np.random.default_rng(0)
    d = (rng.standard_normal((50, 10)) * rng.uniform(0.01, 3, (50, 1))).astype(np.float32)
    d[7] = 0.0                                                 # a zero row: factor 1, no division by 0
    before = d.astype(np.float64)
    limit = 1.0
    scale = np.empty((50, 1), np.float32)
    out = bound_rows_(d, limit, scale_out=scale)
    assert out is d
    norms = np.linalg.norm(before, axis=1, keepdims=True)
    factors = np.minimum(1.0, limit / np.maximum(norms, 1e-300))
    assert 0 < (factors < 1).sum() < 50                         # some rows clipped, some not
    np.testing.assert_allclose(scale, factors, rtol=1e-6)
    np.testing.assert_allclose(d, before * factors, rtol=1e-6, atol=1e-7)
    assert (np.linalg.norm(d.astype(np.float64), axis=1) <= limit * (1 + 1e-6)).all()


def bound_trainer(grad_bound, epochs=2):
    x_tr, y_tr, x_te, y_te = digits_arrays(np)
    soft = np.random.default_rng(1).standard_normal((len(y_tr), 10)).astype(np.float32) * 10
    cfg = StageConfig("distilled", (64, 32, 10), epochs=epochs, batch_size=100, image_shape=(8, 8), lr=0.1,
                      lr_warmup=1, momentum_ramp=2, init_std=0.1, temperature=4.0, grad_bound=grad_bound)
    tr = Trainer(cfg, np, x_tr, y_tr, x_te, y_te, soft_logits=soft)
    tr.health = None                                        # the bound's arithmetic, not learning
    return tr


def test_the_log_shows_how_often_the_bound_acts():
    """A bound no row reaches clips nothing (bound_clipped 0, no scale); one every row exceeds clips
    all (bound_clipped 1, their mean scale below 1); without a bound, nothing is logged."""
    huge = bound_trainer(1e9)
    huge.fit()
    assert all(h.bound_clipped == 0.0 and h.bound_scale is None for h in huge.history)
    tiny = bound_trainer(1e-6)
    tiny.fit()
    assert all(h.bound_clipped == 1.0 and 0.0 < h.bound_scale < 1.0 for h in tiny.history)
    off = bound_trainer(None)
    off.fit()
    assert all(h.bound_clipped is None and h.bound_scale is None for h in off.history)


def test_the_logged_activity_is_the_share_of_rows_clipped_and_their_mean_factor(monkeypatch):
    """Each epoch's bound_clipped is the share of the epoch's rows whose ||d_n|| exceeded the limit,
    and bound_scale the mean of their factors limit / ||d_n||, both computed here from the rows the
    loss handed to bound_rows_."""
    tr = bound_trainer(3.0, epochs=3)                         # about a quarter of the rows clipped
    seen = {}                                                 # epoch -> [the rows' factors]
    real = train.bound_rows_
    epoch = {"now": 0}

    def spy(d, limit, scale_out=None):
        norms = np.linalg.norm(d.astype(np.float64), axis=1)
        seen.setdefault(epoch["now"], []).append(np.minimum(1.0, limit / np.maximum(norms, 1e-300)))
        return real(d, limit, scale_out=scale_out)

    real_epoch = Trainer.train_epoch

    def train_epoch(self, e):
        epoch["now"] = e
        return real_epoch(self, e)

    monkeypatch.setattr(train, "bound_rows_", spy)
    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    tr.fit()
    clipped_shares = []
    for h in tr.history:
        factors = np.concatenate(seen[h.epoch])
        assert factors.size == len(tr.y_train)
        clipped = factors[factors < 1]
        assert h.bound_clipped == pytest.approx(clipped.size / factors.size, abs=1e-12)
        assert h.bound_scale == pytest.approx(clipped.mean(), rel=1e-5)
        clipped_shares.append(h.bound_clipped)
    assert any(0 < share < 1 for share in clipped_shares)         # the bound acted on some rows, not all
