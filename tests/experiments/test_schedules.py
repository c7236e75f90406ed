import pytest
import torch

from lipschitz_lr_experiments.errors import ConfigError
from lipschitz_lr_experiments.schedules import (
    SCHEDULES,
    ScheduleContext,
    build_schedule,
    run_length_args,
    schedule_trajectory,
)


def lrs(name, args, epochs=10, steps_per_epoch=5, lr=0.1, optimizer="sgd"):
    """Per-epoch LRs for epoch schedules, per-step LRs for step schedules."""
    interval = SCHEDULES[name].interval
    if interval == "step":
        return schedule_trajectory(name, args, epochs * steps_per_epoch, 1, lr), interval
    return schedule_trajectory(
        name, args, epochs, steps_per_epoch, lr, momentum=0.9 * (optimizer == "momentum")
    ), interval


def test_step_decay_every_epoch_value():
    values, interval = lrs("step", {"step_size": 3, "gamma": 0.5})
    assert interval == "epoch"
    assert values == pytest.approx([0.1] * 3 + [0.05] * 3 + [0.025] * 3 + [0.0125])


def test_exponential_staircase_per_step():
    values, interval = lrs("exponential", {"decay_steps": 4, "decay_rate": 0.5}, epochs=2)
    assert interval == "step" and values == pytest.approx([0.1] * 4 + [0.05] * 4 + [0.025] * 2)


def test_inverse_time_is_keras_decay():
    values, _ = lrs("inverse_time", {"decay": 0.1}, epochs=1)
    assert values == pytest.approx([0.1 / (1 + 0.1 * t) for t in range(5)])
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    context = ScheduleContext(opt, 1, 1, 1.0)
    sched = build_schedule("constant", context, {"decay": 1e-3}).scheduler  # the fixed rate's hidden Keras decay
    for _ in range(1000):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1 / (1 + 1e-3 * 1000))
    assert "lr_lambdas" in sched.state_dict() and sched.state_dict()["lr_lambdas"][0] == {"decay": 1e-3}


def test_cosine_polynomial_warmup_endpoints():
    cosine, _ = lrs("cosine", {"alpha": 0.1})
    assert cosine[0] == pytest.approx(0.1) and cosine[5] == pytest.approx(0.01 + 0.09 * 0.5)
    poly, _ = lrs("polynomial", {"power": 1.0})
    assert poly == pytest.approx([0.1 * (1 - e / 10) for e in range(10)])
    warm, _ = lrs("warmup", {"start_factor": 0.1, "warmup_epochs": 4})
    assert warm[0] == pytest.approx(0.01) and warm[4:] == pytest.approx([0.1] * 6)


@pytest.mark.parametrize("name", [n for n, spec in SCHEDULES.items() if spec.build is not None])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_every_classic_schedule_builds_moves_and_stays_positive(name, optimizer):
    """Fitted to a 12-epoch run (plateau: patience 2, it is fed a constant loss), every schedule
    changes the learning rate at least once and never makes it negative."""
    args = {"patience": 2} if name == "plateau" else run_length_args(name, 12, 5)
    values, _ = lrs(name, args, epochs=12, optimizer=optimizer)
    assert all(v > 0 for v in values) and len(set(values)) > 1, values


def test_unknown_schedule_argument():
    with pytest.raises(
        ConfigError, match="unknown schedule_args key\\(s\\) gama; this schedule takes: step_size, gamma"
    ):
        SCHEDULES["step"].check_args({"gama": 0.1})


def test_run_length_args_fit_a_short_run():
    assert run_length_args("step", 10, 50) == {"step_size": 3}
    values = schedule_trajectory("step", run_length_args("step", 10, 50), 10, 50, 0.02)
    assert values == pytest.approx([0.02] * 3 + [0.002] * 3 + [0.0002] * 3 + [0.00002])
    assert run_length_args("piecewise", 8, 50) == {"milestones": [4, 6]}
    assert run_length_args("exponential", 8, 50) == {"decay_steps": 50}
    assert run_length_args("cosine", 8, 50) == {} and run_length_args("onecycle", 8, 50) == {}
    for name, spec in SCHEDULES.items():  # every key is one the schedule takes
        spec.check_args(run_length_args(name, 8, 50))


def test_an_unknown_schedule_is_named_with_the_known_ones():
    with pytest.raises(ConfigError, match="unknown schedule 'linear'; expected one of lipschitz, constant, step"):
        SCHEDULES.lookup("linear")
