"""Episodes of a gymnasium environment as a dataset, for training a policy by reinforcement.

Each example is one episode: its target is the seed the environment is reset with and its
input the observation that seed starts from. A policy network maps an observation to logits
over the environment's discrete actions (the classes), so ``predict``, ``explain`` and
``export`` treat it like a classifier of observations; training and ``evaluate`` play the
episodes (see ``tasks/control.py``).
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .info import RawData
from .registry import register_dataset

TEST_SEEDS = 1_000_000  # test episodes start from seeds 1,000,000 on: never a training seed
NAMES = {"CartPole-v1": (["cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity"],
                         ["push left", "push right"])}


def make_env(env_id: str, **kwargs):
    """gymnasium.make with one-line errors for unknown names and unsupported spaces."""
    import gymnasium as gym

    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        known = ", ".join(k for k in ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3")
                          if k in gym.registry)
        raise DataError(f"data.env: {e} (gymnasium environments with discrete actions include {known})") from None
    if not isinstance(env.action_space, gym.spaces.Discrete) or len(env.observation_space.shape or ()) != 1:
        env.close()
        raise DataError(f"data.env: {env_id} has {env.action_space} actions and {env.observation_space} observations; "
                        "the policy here takes a vector observation and picks one of a few discrete actions")
    return env


@register_dataset("gym", modality="tabular", task="control")
def gym_episodes(env: str = "CartPole-v1", episodes: int = 2000, test_episodes: int = 100) -> RawData:
    """Episodes of a gymnasium environment with discrete actions (default CartPole-v1): training
    episodes start from seeds 0..episodes-1, the test episodes from seeds 1,000,000 on.

    Args:
        env: a gymnasium environment id.
        episodes: training (and validation) episodes; one pass over them is an epoch.
        test_episodes: episodes ``evaluate`` plays.
    """
    if episodes < 2 or test_episodes < 1:
        raise DataError("data.episodes must be at least 2 and data.test_episodes at least 1")
    e = make_env(env)
    n_obs, n_act = e.observation_space.shape[0], int(e.action_space.n)

    def starts(seeds: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(e.reset(seed=int(s))[0], dtype=np.float32) for s in seeds])

    seeds, test_seeds = np.arange(episodes), np.arange(TEST_SEEDS, TEST_SEEDS + test_episodes)
    x, xt = starts(seeds), starts(test_seeds)
    limit = e.spec.max_episode_steps if e.spec is not None else None
    e.close()
    features, actions = NAMES.get(env, ([f"obs_{i}" for i in range(n_obs)], [f"action {a}" for a in range(n_act)]))
    return RawData(
        x=x, y=seeds, test=(xt, test_seeds, {}), task="control", modality="tabular",
        preprocess={"kind": "table", "columns": [{"name": f, "kind": "numeric"} for f in features],
                    "normalize": False,  # the policy reads observations as the environment gives them
                    "env": {"id": env, "max_steps": limit, "solved": e.spec.reward_threshold if e.spec else None}},
        class_names=actions, feature_names=features, target_name="episode seed",
        source=f"gymnasium {env}: {episodes} training episodes (seeds 0..{episodes - 1}), {test_episodes} test "
               f"episodes (seeds {TEST_SEEDS}..)")
