"""The release's cyclic cosine: exact values, shape, warm-up, and exact resume through
LambdaLR's state."""
from __future__ import annotations

import math

import pytest
import torch

from irconstyle.train.schedule import CyclicCosine, build_scheduler, cyclic_cosine_lr

RELEASE = dict(base_lr=3e-4, periods=[243312, 460320], eta_mins=[3e-4, 1e-6],
               restart_weights=[1, 1])


def cosine(e: float, start: int, period: int, hi: float, lo: float) -> float:
    return lo + 0.5 * (hi - lo) * (1 + math.cos(math.pi * (e - start) / period))


def test_release_values():
    lr = lambda t: cyclic_cosine_lr(t, **RELEASE)  # noqa: E731
    assert lr(1) == pytest.approx(3e-4, rel=1e-12)
    assert lr(243312) == pytest.approx(3e-4, rel=1e-12)
    # iteration t is scheduler position t - 1 (the release steps its scheduler for t > 1)
    assert lr(473472) == pytest.approx(cosine(473471, 243312, 460320, 3e-4, 1e-6), rel=1e-12)
    assert lr(473472) == pytest.approx(1.505e-4, rel=1e-5)  # the reference's rounded value
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
    assert cyclic_cosine_lr(12, **kw) == pytest.approx(cosine(11, 10, 10, 0.5, 0.0))


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
