"""The release's cyclic cosine: exact values, shape, warm-up, and exact resume through
LambdaLR's state."""
from __future__ import annotations


import pytest
import torch

from irconstyle.train.schedule import CyclicCosine, build_scheduler, cyclic_cosine_lr

RELEASE = dict(base_lr=3e-4, periods=[243312, 460320], eta_mins=[3e-4, 1e-6],
               restart_weights=[1, 1])


def test_release_values():
    lr = lambda t: cyclic_cosine_lr(t, **RELEASE)  # noqa: E731
    assert lr(1) == pytest.approx(3e-4, rel=1e-12)
    assert lr(243312) == pytest.approx(3e-4, rel=1e-12)
    # Iteration t is scheduler position e = t - 1 (the release steps its scheduler for
    # t > 1).  Hand-computed points of the cosine from 3e-4 to 1e-6 over 460320 positions:
    # its midpoint e = 243312 + 230160, t = 473473: cos(pi/2) = 0, lr = (3e-4 + 1e-6) / 2;
    assert lr(473473) == pytest.approx(1.505e-4, rel=1e-12)
    # a quarter in, t = 243312 + 115080 + 1: 1e-6 + 1.495e-4 * (1 + cos(pi/4)) = 2.5621246e-4;
    assert lr(358393) == pytest.approx(2.5621246e-4, rel=1e-7)
    # one position before the midpoint: what the reference prints, rounded.
    assert lr(473472) == pytest.approx(1.505e-4, rel=1e-5)
    assert lr(703632) == pytest.approx(1e-6, rel=1e-7)
    assert lr(703633) == 1e-6 and lr(10**7) == 1e-6  # past the end: the floor


def test_release_shape():
    lr = lambda t: cyclic_cosine_lr(t, **RELEASE)  # noqa: E731
    assert {lr(t) for t in range(1, 243314, 997)} == {3e-4}
    tail = [lr(t) for t in range(243313, 703633, 1013)]
    assert all(a > b for a, b in zip(tail, tail[1:]))


def test_restart_weights_and_several_periods():
    kw = dict(base_lr=1.0, periods=[10, 10], eta_mins=[0.0, 0.0], restart_weights=[1.0, 0.5])
    assert cyclic_cosine_lr(1, **kw) == pytest.approx(1.0)
    assert cyclic_cosine_lr(11, **kw) == pytest.approx(0.0)       # end of the first period
    # second period (restart weight 0.5) one position in: 0.25 * (1 + cos(pi / 10)) = 0.48776413
    assert cyclic_cosine_lr(12, **kw) == pytest.approx(0.48776413, rel=1e-7)


def test_linear_warmup():
    kw = dict(RELEASE, warmup_iters=100)
    assert cyclic_cosine_lr(1, **kw) == pytest.approx(3e-4 / 100)
    assert cyclic_cosine_lr(50, **kw) == pytest.approx(3e-4 * 50 / 100)
    assert cyclic_cosine_lr(100, **kw) == pytest.approx(3e-4)
    assert cyclic_cosine_lr(101, **kw) == cyclic_cosine_lr(101, **RELEASE)


def test_bad_lengths_are_errors():
    with pytest.raises(ValueError, match="eta_mins"):
        CyclicCosine(base_lr=1.0, periods=[1, 2], eta_mins=[0.0])


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-3)


def test_lambdalr_follows_the_pure_function_and_resumes_exactly():
    sched_fn = dict(base_lr=2e-3, periods=[4, 9], eta_mins=[2e-3, 1e-5], warmup_iters=3)
    opt = _optimizer()
    sched = build_scheduler(opt, CyclicCosine(**sched_fn))
    seen = []
    for t in range(1, 14):
        seen.append(opt.param_groups[0]["lr"])  # the lr iteration t uses
        opt.step()
        sched.step()
        if t == 6:
            saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    assert seen == pytest.approx([cyclic_cosine_lr(t, **sched_fn) for t in range(1, 14)], rel=1e-12)
    # resume from the state after iteration 6
    opt2 = _optimizer()
    sched2 = build_scheduler(opt2, CyclicCosine(**sched_fn))
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    resumed = []
    for _ in range(7, 14):
        resumed.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    assert resumed == seen[6:]
