"""Reinforcement learning of a policy through the shared trainer: a batch of examples is a batch
of episode seeds; a training step plays those episodes with the policy sampling its actions and
takes one REINFORCE step (Williams 1992) with the batch's mean return-to-go at each time step as
the baseline; evaluation plays them greedily and reports the returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..data.control import make_env
from ..data.info import DataInfo
from .base import OneNetworkTask
from .registry import register_task

if TYPE_CHECKING:
    from ..run import Run


class Episodes:
    """Plays a batch of episodes in lockstep (one policy forward per time step for all of them)."""

    def __init__(self, env_id: str):
        self.env_id = env_id
        self.envs: list[Any] = []

    def play(self, model: nn.Module, seeds: torch.Tensor, greedy: bool):
        """-> (log-probabilities (T, B) of the actions taken, rewards (T, B), alive mask (T, B))."""
        n = len(seeds)
        while len(self.envs) < n:
            self.envs.append(make_env(self.env_id))
        obs = [self.envs[i].reset(seed=int(s))[0] for i, s in enumerate(seeds.tolist())]
        alive = np.ones(n, dtype=bool)
        logps, rewards, masks = [], [], []
        device = next(model.parameters(), torch.empty(0)).device  # (random actions have no parameters)
        while alive.any():
            x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=device)
            logits = model(x)
            if greedy:
                actions = logits.argmax(1)
            else:
                actions = torch.multinomial(torch.softmax(logits.float(), 1), 1)[:, 0]
                logps.append(torch.log_softmax(logits.float(), 1).gather(1, actions[:, None])[:, 0])
            r = np.zeros(n, dtype=np.float32)
            masks.append(torch.from_numpy(alive.copy()))
            for i in np.flatnonzero(alive):
                o, reward, terminated, truncated, _ = self.envs[i].step(int(actions[i]))
                obs[i], r[i] = o, reward
                if terminated or truncated:
                    alive[i] = False
            rewards.append(torch.from_numpy(r))
        return (torch.stack(logps) if logps else None), torch.stack(rewards), torch.stack(masks)


@register_task("control", title="a control policy", plural="control policies")
class ControlTask(OneNetworkTask):
    """Policy-gradient training on a gymnasium environment's episodes. Actions are sampled from
    the global generator, which the trainer seeds for every epoch from the run's seed."""

    default_monitor = "val_return"
    metric_names = ["return", "return_min", "length"]
    stages = frozenset({"evaluate", "predict", "explain", "export", "serve", "report"})
    instead = "evaluate it with 'netwright evaluate {run}' (it plays the test episodes)"
    preset = "policy"
    picks_class = True
    headline = "return"

    def __init__(self, info: DataInfo, train: Any = None, gamma: float = 0.99, **context: Any):
        super().__init__(info, train, **context)
        self.gamma = gamma
        self.episodes = Episodes(info.preprocess["env"]["id"])

    def returns_to_go(self, rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Discounted sum of the rewards from each step on, (T, B)."""
        out = torch.zeros_like(rewards)
        running = torch.zeros(rewards.shape[1])
        for t in range(len(rewards) - 1, -1, -1):
            running = rewards[t] + self.gamma * running * mask[t]
            out[t] = running
        return out

    def objective(self, model: nn.Module, batch: tuple[Any, ...]) -> torch.Tensor:
        logp, rewards, mask = self.episodes.play(model, batch[1].cpu(), greedy=False)
        g = self.returns_to_go(rewards, mask)
        m = mask.float()
        # baseline: the mean return-to-go of the episodes still running at that step; then scaled
        base = (g * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1)
        adv = (g - base) * m
        adv = adv / adv[mask].std().clamp(min=1e-6) if mask.sum() > 1 else adv
        return -(logp * adv.to(logp.device)).sum() / m.sum()

    @torch.no_grad()
    def eval_step(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        _, rewards, mask = self.episodes.play(model, batch[1].cpu(), greedy=True)
        return {"return": rewards.sum(0), "length": mask.sum(0).float()}

    def metrics(self, outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        r = outputs["return"].double()
        return {"return": float(r.mean()), "return_min": float(r.min()), "length": float(outputs["length"].mean())}

    def evaluate(self, run: Run, split: str = "test", batch_size: int = 1024,
                 coverage: float | None = None) -> dict[str, Any]:
        """Play the split's episodes greedily, beside uniformly random actions."""
        solved = self.info.preprocess["env"].get("solved")
        return {"split": split, "n": self.info.splits[split], "task": "control",
                **evaluate_control(run.load_model(), self.info, run.load_data().split(split).y, solved)}

    def decode(self, outputs: torch.Tensor, inputs: Any = None) -> list[dict[str, Any]]:
        """The action the policy picks for each observation, with its probabilities."""
        from .classification import class_rows

        return class_rows(self.info.class_names, outputs)

    def target(self, outputs: torch.Tensor, chosen: int | None = None) -> torch.Tensor:
        """The action an attribution explains: ``chosen``, else the one the policy picks."""
        return torch.full((len(outputs),), chosen) if chosen is not None else outputs.argmax(1)

    def label(self, y: Any) -> None:
        """A policy's examples hold episode seeds, not labels."""
        return None

    @classmethod
    def example(cls) -> dict[str, Any]:
        return {"data": {"name": "gym", "episodes": 16, "test_episodes": 4}, "model": {"name": "policy", "hidden": [8]},
                "train": {"epochs": 1}}


class RandomPolicy(nn.Module):
    """Uniformly random actions: the baseline a policy has to beat."""

    def __init__(self, actions: int, seed: int = 0):
        super().__init__()
        self.actions, self.generator = actions, torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.rand(len(x), self.actions, generator=self.generator)


def evaluate_control(model: nn.Module, info: DataInfo, seeds: torch.Tensor, solved: float | None) -> dict[str, Any]:
    """Greedy returns of ``model`` and of random actions on the episodes of ``seeds``."""
    episodes = Episodes(info.preprocess["env"]["id"])
    with torch.no_grad():
        _, rewards, mask = episodes.play(model.eval(), seeds, greedy=True)
        _, random_rewards, _ = episodes.play(RandomPolicy(info.num_outputs), seeds, greedy=True)
    r, rr = rewards.sum(0).double(), random_rewards.sum(0).double()
    metrics = {"return": float(r.mean()), "return_std": float(r.std()) if len(r) > 1 else 0.0,
               "return_min": float(r.min()), "length": float(mask.sum(0).float().mean())}
    if solved is not None:
        metrics["solved_share"] = float((r >= solved).double().mean())
    return {"metrics": metrics, "returns": r.tolist(),
            "baseline": {"model": "uniformly random actions", "fitted_on": "nothing", "return": float(rr.mean())}}

