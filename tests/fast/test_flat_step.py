"""minikd.fast.FlatStep (issue 24, item 3): one buffer for all parameters, gradients and
velocities, behind Trainer(flat=True), off by default. Run on the CuPy stand-in: the same
numbers as the reference step to the bit, 20 launches fewer per step, parameters that are
views of the buffer (checkpoints load into them)."""

import numpy
import pytest

import cupy_standin
from minikd.engine.backend import to_host
from minikd.profiles import profile_configs
from minikd.experiments.stage import prepare_arrays
from minikd.fast import FlatStep, FusedStep
from minikd.train import ReferenceStep, Trainer, build_model, teacher_logits


def configs(digits):
    return profile_configs("quick", n_features=digits.n_features, n_classes=digits.n_classes,
                           image_shape=digits.image_shape, jitter=1, epochs=3)


def trained(cfg, cp, arrays, soft, flat, epochs=2):
    trainer = Trainer(cfg, cp, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                      soft_logits=soft, fast=True, flat=flat)
    trainer.health = None   # two epochs learn little; the arithmetic is what is compared
    launches = []
    for epoch in range(epochs):
        before = cupy_standin.launches()
        trainer.train_epoch(epoch)
        launches.append(cupy_standin.launches() - before)
    return trainer, launches


@pytest.mark.parametrize("stage", ["teacher", "distilled"])
def test_flat_step_equals_the_reference_step_to_the_bit_in_20_launches_fewer(cp, digits, stage):
    """Teacher: dropout, jitter, max-norm; distilled: soft targets and the row bound."""
    cfgs = configs(digits)
    arrays = prepare_arrays(digits, cp)
    soft = teacher_logits(build_model(cfgs["teacher"], cp), arrays["x_train"]) if stage == "distilled" else None
    ref, ref_launches = trained(cfgs[stage], cp, arrays, soft, flat=False)
    flat, flat_launches = trained(cfgs[stage], cp, arrays, soft, flat=True)
    assert type(ref.step) is ReferenceStep and type(flat.step) is FlatStep
    for state in ("model", "optimizer"):
        a, b = getattr(ref, state).state_dict(), getattr(flat, state).state_dict()
        for key in a:
            assert to_host(a[key]).tobytes() == to_host(b[key]).tobytes(), (state, key)
    assert to_host(ref.epoch_means).tobytes() == to_host(flat.epoch_means).tobytes()
    n_batches = -(-arrays["n_train"] // cfgs[stage].batch_size)
    # 6 parameter tensors x 4 launches become 4 launches over the whole buffer
    assert [r - f for r, f in zip(ref_launches, flat_launches, strict=True)] == [20 * n_batches] * 2


def test_parameters_are_views_of_the_buffer_and_checkpoints_load_into_them(cp, digits):
    cfg = configs(digits)["student"]
    arrays = prepare_arrays(digits, cp, train_size=200)
    trainer, _ = trained(cfg, cp, arrays, None, flat=True, epochs=1)
    step = trainer.step
    state = {k: to_host(v).copy() for k, v in trainer.model.state_dict().items()}
    velocity = {k: to_host(v).copy() for k, v in trainer.optimizer.state_dict().items()}
    step.P[...] = 0.0
    step.V[...] = 0.0
    assert all((to_host(v) == 0).all() for v in trainer.model.state_dict().values())
    assert all((to_host(v) == 0).all() for v in trainer.optimizer.state_dict().values())
    trainer.model.load_state_dict(state)              # writes into the views: the buffer holds them again
    trainer.optimizer.load_state_dict(velocity)
    index = {id(layer): i for i, layer in enumerate(trainer.model.layers)}
    back_to_back = numpy.concatenate([state[f"{index[id(layer)]}.{name}"].ravel()
                                      for layer in trainer.optimizer.layers for name in layer.params])
    numpy.testing.assert_array_equal(to_host(step.P), back_to_back)
    assert step.P.size == step.G.size == step.V.size


def test_off_by_default_and_never_instead_of_the_fused_step(cp, digits):
    cfg = configs(digits)["student"]
    arrays = prepare_arrays(digits, cp, train_size=200)
    assert Trainer(cfg, cp, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                   fast=True).step_impl is None                       # CuPy, no flag: the reference step
    host = prepare_arrays(digits, numpy, train_size=200)
    on_numpy = Trainer(cfg, numpy, host["x_train"], host["y_train"], host["x_test"], host["y_test"],
                       fast=True, flat=True)
    assert isinstance(on_numpy.step_impl, FusedStep)                  # NumPy: the fused step still
