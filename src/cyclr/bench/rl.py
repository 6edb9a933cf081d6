"""Reinforcement-learning tasks on Gymnasium's CartPole-v1: ``cartpole-dqn`` (DQN) and
``cartpole-pg`` (REINFORCE).

RL has no data set: the agent makes its own experience, so :meth:`load` returns empty tensors
and each task overrides :meth:`~.tasks.Task.run` and :meth:`~.tasks.Task.range_test`. The
budget is counted in the task's ``step_unit`` (env steps for DQN, episodes for REINFORCE), and
the schedule advances once per unit over the whole budget. The metric is the standard "solved"
measure: the mean return of the last 100 completed training episodes, a missing episode
counting as 0 until there are 100 (CartPole-v1 is solved at 475).

Everything random is drawn from the run's seed (the initialisation, the environment, a NumPy
generator for exploration and action sampling, a torch generator for replay sampling), so two
strategies of a seed differ only through their learning rates.

Gymnasium is imported only inside the methods: importing :mod:`cyclr.bench` registers the tasks
without it.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from .tasks import Task, TaskData, register
from .train import RunResult

if TYPE_CHECKING:
    from ..finder import RangeTestResult
    from .strategies import Plan

__all__ = ["CartPoleDQN", "CartPolePG", "RLRunResult", "RLTask", "last_mean"]


def last_mean(returns: list[float], window: int = 100) -> float:
    """The mean return of the last ``window`` episodes, a missing episode counting as 0."""
    return float(sum(returns[-window:])) / window


@dataclass
class RLRunResult(RunResult):
    """A :class:`~.train.RunResult` plus every training episode: its return and the schedule step
    (env step or episode count) at which it ended."""

    episode_returns: list[float] = field(default_factory=list)
    episode_ends: list[int] = field(default_factory=list)


class _NumpyMLP:
    """Acting without autograd: the ``Linear``/``ReLU`` layers of an ``nn.Sequential`` as NumPy
    views of its parameters (shared memory: the optimizer's in-place updates show at once).
    About 5x cheaper than a torch forward pass on one observation."""

    def __init__(self, model: nn.Module) -> None:
        self.layers: list[tuple[np.ndarray, np.ndarray] | None] = []
        for m in model.modules():
            if isinstance(m, nn.Linear):
                assert m.bias is not None
                self.layers.append((m.weight.detach().numpy(), m.bias.detach().numpy()))
            elif isinstance(m, nn.ReLU):
                self.layers.append(None)
            elif not isinstance(m, nn.Sequential):
                raise TypeError(f"acting in NumPy supports Linear and ReLU layers only, not {type(m).__name__}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            if layer is None:
                x = np.maximum(x, 0.0, dtype=np.float32)
            else:
                x = layer[0] @ x + layer[1]
        return x


def _mlp(sizes: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


class _Loop:
    """The bookkeeping both agents share: evaluation steps, LR trace, episode returns, mean loss
    since the last evaluation, divergence."""

    def __init__(self, task: RLTask, opt: torch.optim.Optimizer, total: int, epochs: int) -> None:
        from .train import evaluation_steps

        self.task, self.opt, self.total = task, opt, total
        per_epoch = total // epochs
        self.eval_at = evaluation_steps(per_epoch, epochs, task.evals_per_epoch)
        self.trace_every = max(1, total // 200)
        self.top = max(range(len(opt.param_groups)), key=lambda i: float(opt.param_groups[i]["lr"]))
        self.result = RLRunResult()
        self.losses: list[torch.Tensor] = []
        self.t0 = time.perf_counter()

    def trace(self, step: int) -> None:
        """Before schedule step ``step`` (0-based): log the LR and momentum now in effect."""
        if step % self.trace_every == 0:
            self.result.trace(step, self.opt, self.top)

    def episode(self, step: int, ret: float) -> None:
        self.result.episode_returns.append(ret)
        self.result.episode_ends.append(step)

    def done(self, step: int) -> bool:
        """After ``step`` schedule steps: evaluate if due; True when the run must stop."""
        if step not in self.eval_at and step != self.total:
            return False
        mean = float(torch.stack(self.losses).mean()) if self.losses else math.nan  # NaN: no update yet
        trained = bool(self.losses)
        self.losses.clear()
        if trained and not math.isfinite(mean):
            self.result.diverged = True
            return True
        if step in self.eval_at:
            metric = last_mean(self.result.episode_returns, self.task.window)
            self.result.record(step, metric, mean, time.perf_counter() - self.t0, self.task.reached(metric))
        return False

    def loss(self, value: torch.Tensor) -> None:
        self.losses.append(value.detach())

    def finish(self, step: int) -> RLRunResult:
        self.result.steps = step
        self.result.seconds = time.perf_counter() - self.t0
        return self.result


class RLTask(Task):
    """A CartPole-v1 task: the shared settings, the empty data and the budget in ``step_unit``."""

    domain = "rl"
    metric = "mean return (last 100 episodes)"
    higher_is_better = True
    target = 475.0
    optimizers = ("adam",)
    strategies = ("constant", "cosine", "triangular", "sine", "one_cycle", "auto")
    seeds = 5
    env_id: ClassVar[str] = "CartPole-v1"
    obs_dim: ClassVar[int] = 4
    n_actions: ClassVar[int] = 2
    gamma: ClassVar[float] = 0.99
    #: episodes in the metric's moving window
    window: ClassVar[int] = 100
    #: the budget of one "epoch", in ``step_unit``
    per_epoch: ClassVar[int] = 1000

    def load(self, data_dir: str | Path | None = None) -> TaskData:
        """No data set: empty tensors (the agent collects its own experience)."""
        empty = torch.empty(0)
        return TaskData(empty, empty, empty, empty)

    def steps_per_epoch(self, data: TaskData, batch_size: int | None = None) -> int:
        return self.per_epoch

    def evaluate(self, model: nn.Module, data: TaskData, batch_size: int = 256) -> float:
        raise NotImplementedError(f"{self.name}: the metric comes from the training episodes (see run()).")

    def make_env(self) -> Any:
        import gymnasium as gym

        return gym.make(self.env_id)

    def _check_plan(self, plan: Plan) -> None:
        if plan.peer_max_lr is not None or plan.schedule is None:
            raise ValueError(
                f"{self.name}: an RL task runs cyclr schedules only; the 'peer' strategy (torch-lr-finder) "
                "needs a data set, which RL does not have."
            )


# ============================================================================ DQN
@register
class CartPoleDQN(RLTask):
    """DQN on CartPole-v1: replay buffer (100k), hard-updated target network (every 500 env
    steps), epsilon-greedy decaying linearly from 1 to 0.02 over 10k steps, Huber loss,
    gradient-norm clipping at 10, batch 64 from 1k learning starts (SB3's classic-control
    settings), one update per env step, a 64x64 MLP. One schedule step is one env step; the
    updates use the LR then in effect. (SB3's cadence, one update every 4 steps, and 3 other
    settings tried did not reach 475 within 150k steps at a constant LR.)"""

    name = "cartpole-dqn"
    description = "CartPole-v1, DQN (replay buffer, target network), 64x64 MLP"
    step_unit = "env steps"
    batch_size = 64
    epochs = 10
    per_epoch = 15_000
    evals_per_epoch = 5
    default_lr = {"sgd": 5e-3, "adam": 5e-4}
    hidden: ClassVar[int] = 64
    buffer_size: ClassVar[int] = 100_000
    learning_starts: ClassVar[int] = 1_000
    train_freq: ClassVar[int] = 1
    gradient_steps: ClassVar[int] = 1
    #: env steps between hard target-network updates (SB3's ``target_update_interval``)
    target_update_interval: ClassVar[int] = 500
    exploration_steps: ClassVar[int] = 10_000
    eps_start: ClassVar[float] = 1.0
    eps_final: ClassVar[float] = 0.02
    max_grad_norm: ClassVar[float] = 10.0
    #: range test: random-policy transitions to regress on
    range_test_transitions: ClassVar[int] = 10_000

    def model(self) -> nn.Module:
        return _mlp((self.obs_dim, self.hidden, self.hidden, self.n_actions))

    def epsilon(self, step: int) -> float:
        frac = min(1.0, step / self.exploration_steps)
        return self.eps_start + frac * (self.eps_final - self.eps_start)

    def td_loss(self, q: nn.Module, target: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Huber loss of Q(s, a) against ``r + gamma * max_a' target(s', a')`` (no bootstrap at a
        terminal state; a time-limit truncation is not terminal)."""
        obs, act, rew, nxt, term = batch
        q_sa = q(obs).gather(1, act).squeeze(1)
        with torch.no_grad():
            y = rew + self.gamma * (1.0 - term) * target(nxt).max(1).values
        return nn.functional.smooth_l1_loss(q_sa, y)

    def run(self, data: TaskData, plan: Plan, *, optimizer: str, epochs: int, seed: int, batch_size: int) -> RunResult:
        """Train a DQN agent for ``epochs * per_epoch`` env steps under ``plan``."""
        from ..torch import Scheduler
        from .train import make_optimizer

        self._check_plan(plan)
        assert plan.schedule is not None
        torch.manual_seed(seed)
        q = self.model()
        target = copy.deepcopy(q).requires_grad_(False)
        opt = make_optimizer(optimizer, self.param_groups(q), float(plan.schedule(0)))
        sched = Scheduler(opt, plan.schedule, momentum=plan.momentum, past_end="hold")
        params = [p for g in opt.param_groups for p in g["params"]]
        act = _NumpyMLP(q)
        env = self.make_env()
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        cap = self.buffer_size
        b_obs, b_next = torch.zeros(cap, self.obs_dim), torch.zeros(cap, self.obs_dim)
        b_act = torch.zeros(cap, 1, dtype=torch.int64)
        b_rew, b_term = torch.zeros(cap), torch.zeros(cap)
        n_obs, n_next, n_act, n_rew, n_term = (t.numpy() for t in (b_obs, b_next, b_act, b_rew, b_term))
        total = epochs * self.per_epoch
        loop = _Loop(self, opt, total, epochs)
        obs, _ = env.reset(seed=seed)
        ret, size, step = 0.0, 0, 0
        with warnings.catch_warnings():  # no update before learning_starts: torch's order warning is moot
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
            for step in range(total):
                loop.trace(step)
                if rng.random() < self.epsilon(step):
                    a = int(rng.integers(self.n_actions))
                else:
                    a = int(np.argmax(act(obs)))
                nxt, r, terminated, truncated, _ = env.step(a)
                i = step % cap
                n_obs[i], n_next[i], n_act[i, 0], n_rew[i], n_term[i] = obs, nxt, a, r, float(terminated)
                size = min(size + 1, cap)
                ret += float(r)
                if terminated or truncated:
                    loop.episode(step + 1, ret)
                    obs, _ = env.reset()
                    ret = 0.0
                else:
                    obs = nxt
                if (step + 1) % self.target_update_interval == 0:
                    target.load_state_dict(q.state_dict())
                if step + 1 > self.learning_starts and (step + 1) % self.train_freq == 0:
                    for _ in range(self.gradient_steps):
                        idx = torch.randint(size, (batch_size,), generator=gen)
                        loss = self.td_loss(q, target, (b_obs[idx], b_act[idx], b_rew[idx], b_next[idx], b_term[idx]))
                        opt.zero_grad(set_to_none=True)
                        loss.backward()  # type: ignore[no-untyped-call]
                        nn.utils.clip_grad_norm_(params, self.max_grad_norm)
                        opt.step()
                        loop.loss(loss)
                sched.step()
                if loop.done(step + 1):
                    break
            else:
                step = total - 1
        env.close()
        return loop.finish(step + 1)

    def range_test(self, data: TaskData, optimizer: str, seed: int, batch_size: int | None = None) -> RangeTestResult:
        """The LR range test on a supervised proxy: the TD (Huber) loss of a fresh Q-network of
        ``seed`` on transitions of a seeded random policy, against a frozen copy of the initial
        network as the target (fastai's defaults: 1e-7 to 10 over 100 steps)."""
        from ..finder._torch import lr_range_test
        from .train import make_optimizer

        torch.manual_seed(seed)
        q = self.model()
        frozen = copy.deepcopy(q).requires_grad_(False)
        opt = make_optimizer(optimizer, self.param_groups(q), 1e-3)
        env = self.make_env()
        rng = np.random.default_rng(seed)
        n = self.range_test_transitions
        obs_l, act_l, rew_l, next_l, term_l = [], [], [], [], []
        obs, _ = env.reset(seed=seed)
        for _ in range(n):
            a = int(rng.integers(self.n_actions))
            nxt, r, terminated, truncated, _ = env.step(a)
            obs_l.append(obs)
            act_l.append(a)
            rew_l.append(float(r))
            next_l.append(nxt)
            term_l.append(float(terminated))
            obs = env.reset()[0] if terminated or truncated else nxt
        env.close()
        buf = (
            torch.from_numpy(np.asarray(obs_l, dtype=np.float32)),
            torch.tensor(act_l, dtype=torch.int64).unsqueeze(1),
            torch.tensor(rew_l, dtype=torch.float32),
            torch.from_numpy(np.asarray(next_l, dtype=np.float32)),
            torch.tensor(term_l, dtype=torch.float32),
        )
        gen = torch.Generator().manual_seed(seed)
        bs = batch_size or self.batch_size

        def batches() -> Iterator[tuple[torch.Tensor, ...]]:
            while True:
                idx = torch.randint(n, (bs,), generator=gen)
                yield tuple(t[idx] for t in buf)

        def step_fn(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            return self.td_loss(model, frozen, batch)

        return lr_range_test(q, opt, None, batches(), step_fn=step_fn, progress=False)


# ============================================================================ REINFORCE
@register
class CartPolePG(RLTask):
    """REINFORCE on CartPole-v1 as in PyTorch's ``examples/reinforcement_learning/reinforce.py``:
    a 128-unit MLP policy (without the example's dropout), gamma 0.99, discounted returns
    normalised per episode, one episode per update. One schedule step is one episode."""

    name = "cartpole-pg"
    description = "CartPole-v1, REINFORCE, 128-unit MLP policy"
    step_unit = "episodes"
    epochs = 10
    per_epoch = 200
    evals_per_epoch = 10
    batch_size = 1  # one episode per update
    #: the example's 1e-2 is at the edge of stability without its dropout (2 of 3 seeds collapsed);
    #: 3e-3 solved every seed tried, so the grid 1e-3 / 3e-3 / 1e-2 brackets it
    default_lr = {"sgd": 1e-3, "adam": 3e-3}
    hidden: ClassVar[int] = 128
    #: range test: steps, episodes per step (their mean gradient and shortfall) and the LR sweep
    range_test_steps: ClassVar[int] = 100
    range_test_episodes: ClassVar[int] = 4
    range_test_lrs: ClassVar[tuple[float, float]] = (1e-5, 1.0)

    def model(self) -> nn.Module:
        return _mlp((self.obs_dim, self.hidden, self.n_actions))

    def play(
        self, env: Any, policy: Callable[[np.ndarray], np.ndarray], rng: np.random.Generator, seed: int | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One episode, actions sampled from the policy's softmax: observations, actions, rewards."""
        obs, _ = env.reset(seed=seed)
        observations, actions, rewards = [], [], []
        while True:
            logits = policy(obs)
            p = np.exp(logits - logits.max())
            a = min(int(np.searchsorted(np.cumsum(p), rng.random() * p.sum(), side="right")), self.n_actions - 1)
            observations.append(obs)
            actions.append(a)
            obs, r, terminated, truncated, _ = env.step(a)
            rewards.append(float(r))
            if terminated or truncated:
                break
        return np.asarray(observations, dtype=np.float32), np.asarray(actions, dtype=np.int64), np.asarray(rewards)

    def surrogate(self, model: nn.Module, episode: tuple[np.ndarray, np.ndarray, np.ndarray]) -> torch.Tensor:
        """REINFORCE's loss: ``-sum_t log pi(a_t|s_t) * G_t``, ``G_t`` the discounted returns
        normalised over the episode (the log-probabilities recomputed in one batch)."""
        obs, actions, rewards = episode
        g, acc = np.empty(len(rewards)), 0.0
        for t in range(len(rewards) - 1, -1, -1):
            acc = rewards[t] + self.gamma * acc
            g[t] = acc
        returns = torch.from_numpy(g).float()
        if len(returns) > 1:
            returns = (returns - returns.mean()) / (returns.std() + float(np.finfo(np.float32).eps))
        logp = torch.log_softmax(model(torch.from_numpy(obs)), 1).gather(1, torch.from_numpy(actions)[:, None])
        return -(logp.squeeze(1) * returns).sum()

    def run(self, data: TaskData, plan: Plan, *, optimizer: str, epochs: int, seed: int, batch_size: int) -> RunResult:
        """Train a REINFORCE agent for ``epochs * per_epoch`` episodes under ``plan``."""
        from ..torch import Scheduler
        from .train import make_optimizer

        self._check_plan(plan)
        assert plan.schedule is not None
        torch.manual_seed(seed)
        policy = self.model()
        opt = make_optimizer(optimizer, self.param_groups(policy), float(plan.schedule(0)))
        sched = Scheduler(opt, plan.schedule, momentum=plan.momentum, past_end="hold")
        act = _NumpyMLP(policy)
        env = self.make_env()
        rng = np.random.default_rng(seed)
        total = epochs * self.per_epoch
        loop = _Loop(self, opt, total, epochs)
        episode = 0
        for episode in range(total):
            loop.trace(episode)
            ep = self.play(env, act, rng, seed if episode == 0 else None)
            loop.episode(episode + 1, float(ep[2].sum()))
            loss = self.surrogate(policy, ep)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            loop.loss(loss)
            if loop.done(episode + 1):
                break
        else:
            episode = total - 1
        env.close()
        return loop.finish(episode + 1)

    def range_test(self, data: TaskData, optimizer: str, seed: int, batch_size: int | None = None) -> RangeTestResult:
        """The LR range test on the real objective: each step plays one episode with the current
        policy; its gradient is REINFORCE's, its value the shortfall ``1 - return / 500``."""
        from ..finder._torch import lr_range_test
        from .train import make_optimizer

        torch.manual_seed(seed)
        policy = self.model()
        opt = make_optimizer(optimizer, self.param_groups(policy), 1e-3)
        act = _NumpyMLP(policy)
        env = self.make_env()
        rng = np.random.default_rng(seed)
        first = [True]
        horizon = float(env.spec.max_episode_steps or 500)

        def step_fn(model: nn.Module, batch: Any) -> torch.Tensor:
            losses, shortfall = [], 0.0
            for _ in range(self.range_test_episodes):
                ep = self.play(env, act, rng, seed if first[0] else None)
                first[0] = False
                losses.append(self.surrogate(model, ep))
                shortfall += (1.0 - float(ep[2].sum()) / horizon) / self.range_test_episodes
            loss = torch.stack(losses).mean()
            return loss - loss.detach() + shortfall

        start, end = self.range_test_lrs
        try:
            return lr_range_test(
                policy,
                opt,
                None,
                itertools.repeat(None),
                step_fn=step_fn,
                start_lr=start,
                end_lr=end,
                num_steps=self.range_test_steps,
                progress=False,
            )
        finally:
            env.close()
