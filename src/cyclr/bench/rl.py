"""Reinforcement-learning tasks on Gymnasium's CartPole-v1: ``cartpole-dqn`` (DQN) and
``cartpole-pg`` (REINFORCE).

RL has no data set: the agent makes its own experience. A task here is the problem (the
environment, the network, the agent's update rule); :class:`EpisodeRunner` is the one loop that
trains any of them under a run driver: per schedule step it asks the task's agent for one unit
of interaction (an env step for DQN, an episode for REINFORCE) and its update's loss. The
budget is counted in the task's ``step_unit``, and the schedule advances once per unit. The
metric is the standard "solved" measure: the mean return of the last 100 completed training episodes, a missing episode
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
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from .driver import Driver
from .recorder import Recorder, RunResult
from .tasks import BaseTask, register, with_caveat

if TYPE_CHECKING:
    from ..finder import RangeTestResult

__all__ = ["Agent", "CartPoleDQN", "CartPolePG", "EpisodeRunner", "RLTask", "last_mean"]


def last_mean(returns: list[float], window: int = 100) -> float:
    """The mean return of the last ``window`` episodes, a missing episode counting as 0."""
    return float(sum(returns[-window:])) / window


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


class Agent(Protocol):
    """One agent of an RL task, built for one run: :meth:`unit` plays one schedule step's worth
    (an env step, an episode), updates the network if due and returns that update's loss (or
    ``None``) and the returns of the episodes that ended."""

    def unit(self, step: int) -> tuple[torch.Tensor | None, list[float]]: ...

    def close(self) -> None: ...


class EpisodeRunner:
    """The RL loop: the task's agent, a run driver and the shared recorder. The metric is the
    task's score of the training episodes so far (evaluated at the recorder's steps)."""

    name: ClassVar[str] = "rl"

    def run(self, task: Any, data: Any, driver: Driver, *, optimizer: str, epochs: int, seed: int) -> RunResult:
        torch.manual_seed(seed)
        model = task.model()
        groups = task.param_groups(model)
        opt = driver.make_optimizer(lambda lr: task.make_optimizer(optimizer, groups, lr))
        driver.attach(opt)
        rec = Recorder(
            driver, per_epoch=task.per_epoch, epochs=epochs, evals_per_epoch=task.evals_per_epoch, reached=task.reached
        )
        agent = task.agent(model, opt, seed)
        step = 0
        try:
            with warnings.catch_warnings():  # an agent may step the schedule before its first update
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
                for step in range(1, rec.total + 1):
                    rec.before(step - 1)
                    loss, returns = agent.unit(step - 1)
                    for ret in returns:
                        rec.episode(step, ret)
                    if loss is not None:
                        driver.observe(loss.detach())
                        rec.loss(loss)
                    driver.step()
                    if rec.after(step, lambda: driver.evaluate(lambda: task.score(rec.result.episode_returns))):
                        break
        finally:
            agent.close()
        return rec.finish(step)

    def range_test(self, task: Any, data: Any, optimizer: str, seed: int, **options: Any) -> RangeTestResult:
        """The task's own range test (RL has no data set: each task defines what it sweeps on)."""
        result: RangeTestResult = with_caveat(task, task.range_test(optimizer, seed, **options))
        return result


class RLTask(BaseTask):
    """A CartPole-v1 task: the shared settings, the empty data and the budget in ``step_unit``."""

    domain = "rl"
    runner = "rl"
    metric = "mean return (last 100 episodes)"
    units = "reward per episode, at most 500"
    tracked_on = "training episodes"
    batch_size: ClassVar[int | None] = None
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

    def load(self, data_dir: str | Path | None = None) -> None:
        """No data set: the agent collects its own experience."""
        return None

    def steps_per_epoch(self, data: Any, batch_size: int | None = None) -> int:
        return self.per_epoch

    @property
    def metric_label(self) -> str:
        return f"mean return of the last {self.window} training episodes"

    def score(self, returns: list[float]) -> float:
        """The metric: the mean return of the last ``window`` training episodes."""
        return last_mean(returns, self.window)

    def agent(self, model: nn.Module, opt: torch.optim.Optimizer, seed: int) -> Agent:
        raise NotImplementedError

    def make_env(self) -> Any:
        import gymnasium as gym

        return gym.make(self.env_id)


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

    def agent(self, model: nn.Module, opt: torch.optim.Optimizer, seed: int) -> Agent:
        return _DQNAgent(self, model, opt, seed)

    def range_test(self, optimizer: str, seed: int, **options: Any) -> RangeTestResult:
        """The LR range test on a supervised proxy: the TD (Huber) loss of a fresh Q-network of
        ``seed`` on transitions of a seeded random policy, against a frozen copy of the initial
        network as the target (fastai's defaults: 1e-7 to 10 over 100 steps)."""
        from ..finder._torch import lr_range_test

        torch.manual_seed(seed)
        q = self.model()
        frozen = copy.deepcopy(q).requires_grad_(False)
        opt = self.make_optimizer(optimizer, self.param_groups(q), 1e-3)
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
        bs = int(self.batch_size or 64)

        def batches() -> Iterator[tuple[torch.Tensor, ...]]:
            while True:
                idx = torch.randint(n, (bs,), generator=gen)
                yield tuple(t[idx] for t in buf)

        def step_fn(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            return self.td_loss(model, frozen, batch)

        return lr_range_test(q, opt, None, batches(), step_fn=step_fn, **{"progress": False, **options})


class _DQNAgent:
    """One DQN run's agent: the replay buffer, the target network and epsilon-greedy acting."""

    def __init__(self, task: CartPoleDQN, q: nn.Module, opt: torch.optim.Optimizer, seed: int) -> None:
        self.task, self.q, self.opt = task, q, opt
        self.target = copy.deepcopy(q).requires_grad_(False)
        self.params = [p for g in opt.param_groups for p in g["params"]]
        self.act = _NumpyMLP(q)
        self.env = task.make_env()
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)
        cap = self.cap = task.buffer_size
        self.buf = (
            torch.zeros(cap, task.obs_dim),
            torch.zeros(cap, 1, dtype=torch.int64),
            torch.zeros(cap),
            torch.zeros(cap, task.obs_dim),
            torch.zeros(cap),
        )
        self.views = [t.numpy() for t in self.buf]
        self.obs, _ = self.env.reset(seed=seed)
        self.ret, self.size = 0.0, 0

    def unit(self, step: int) -> tuple[torch.Tensor | None, list[float]]:
        """One env step (0-based ``step``), then an update when due."""
        t = self.task
        if self.rng.random() < t.epsilon(step):
            a = int(self.rng.integers(t.n_actions))
        else:
            a = int(np.argmax(self.act(self.obs)))
        nxt, r, terminated, truncated, _ = self.env.step(a)
        i = step % self.cap
        v_obs, v_act, v_rew, v_next, v_term = self.views
        v_obs[i], v_next[i], v_act[i, 0], v_rew[i], v_term[i] = self.obs, nxt, a, r, float(terminated)
        self.size = min(self.size + 1, self.cap)
        self.ret += float(r)
        ended: list[float] = []
        if terminated or truncated:
            ended.append(self.ret)
            self.obs, _ = self.env.reset()
            self.ret = 0.0
        else:
            self.obs = nxt
        if (step + 1) % t.target_update_interval == 0:
            self.target.load_state_dict(self.q.state_dict())
        if step + 1 <= t.learning_starts or (step + 1) % t.train_freq:
            return None, ended
        losses = []
        for _ in range(t.gradient_steps):
            idx = torch.randint(self.size, (int(t.batch_size or 64),), generator=self.gen)
            loss = t.td_loss(self.q, self.target, tuple(b[idx] for b in self.buf))  # type: ignore[arg-type]
            self.opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(self.params, t.max_grad_norm)
            self.opt.step()
            losses.append(loss.detach())
        return torch.stack(losses).mean(), ended

    def close(self) -> None:
        self.env.close()


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
    #: the example's 1e-2 is at the edge of stability without its dropout (2 of 3 seeds collapsed);
    #: 3e-3 solved every seed tried, so the grid 1e-3 / 3e-3 / 1e-2 brackets it
    default_lr = {"sgd": 1e-3, "adam": 3e-3}
    hidden: ClassVar[int] = 128
    #: range test: steps, episodes per step (their mean gradient and shortfall) and the LR sweep
    #: measured by benchmarks/range_test_quality.py: on every seed, each rule of the range test
    #: on REINFORCE's objective (the episodes' shortfall while the policy changes under the sweep)
    #: lands 3x to 30x above the best one-cycle max_lr, where training collapses
    range_test_caveat: ClassVar[str | None] = (
        "on REINFORCE's return-based objective the sweep's best LRs sit 3x-30x above the best one-cycle "
        "max_lr on every seed of the calibration study (training collapses there)"
    )
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

    def agent(self, model: nn.Module, opt: torch.optim.Optimizer, seed: int) -> Agent:
        return _PGAgent(self, model, opt, seed)

    def range_test(self, optimizer: str, seed: int, **options: Any) -> RangeTestResult:
        """The LR range test on the real objective: each step plays one episode with the current
        policy; its gradient is REINFORCE's, its value the shortfall ``1 - return / 500``."""
        from ..finder._torch import lr_range_test

        torch.manual_seed(seed)
        policy = self.model()
        opt = self.make_optimizer(optimizer, self.param_groups(policy), 1e-3)
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
        settings = {"start_lr": start, "end_lr": end, "num_steps": self.range_test_steps, "progress": False}
        try:
            return lr_range_test(policy, opt, None, itertools.repeat(None), step_fn=step_fn, **{**settings, **options})
        finally:
            env.close()


class _PGAgent:
    """One REINFORCE run's agent: an episode per schedule step, one update per episode."""

    def __init__(self, task: CartPolePG, policy: nn.Module, opt: torch.optim.Optimizer, seed: int) -> None:
        self.task, self.policy, self.opt, self.seed = task, policy, opt, seed
        self.act = _NumpyMLP(policy)
        self.env = task.make_env()
        self.rng = np.random.default_rng(seed)

    def unit(self, step: int) -> tuple[torch.Tensor | None, list[float]]:
        ep = self.task.play(self.env, self.act, self.rng, self.seed if step == 0 else None)
        loss = self.task.surrogate(self.policy, ep)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        self.opt.step()
        return loss.detach(), [float(ep[2].sum())]

    def close(self) -> None:
        self.env.close()
