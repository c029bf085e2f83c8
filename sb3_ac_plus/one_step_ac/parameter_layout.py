"""The parameter vector: which parameters the actor and the critic use, laid out as views of one contiguous vector.

The vector is ``[actor only | shared | critic only]``, so the actor's part (actor only and shared) and the critic's
(shared and critic only) are contiguous slices: a trace, a second moment or an optimizer's param group is one vector.
"""

from collections.abc import Sequence
from typing import NamedTuple

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_ac_plus.one_step_ac.policy_outputs import actor_outputs, critic_values


class ParameterSplit(NamedTuple):
    """The trained parameters by what uses them, each list in the order of the flat vector."""

    actor: list[th.nn.Parameter]
    critic: list[th.nn.Parameter]
    trained: list[th.nn.Parameter]
    shared: bool

    def optimizer(self, policy: ActorCriticPolicy, actor_lr: float, critic_lr: float) -> th.optim.Optimizer:
        """:return: the policy's optimizer class over two groups: actor-only parameters, and shared and critic ones"""
        critic_ids = {id(p) for p in self.critic}
        groups = [
            {"params": [p for p in self.actor if id(p) not in critic_ids], "lr": actor_lr},
            {"params": self.critic, "lr": critic_lr},
        ]
        return policy.optimizer_class(groups, **policy.optimizer_kwargs)


def split_parameters(policy: ActorCriticPolicy, observation_space: spaces.Space) -> ParameterSplit:
    """:return: which trained parameters the actor's and the critic's outputs depend on (found with autograd)"""
    obs, _ = policy.obs_to_tensor(observation_space.sample())
    training = policy.training
    policy.set_training_mode(False)  # which parameters matter does not depend on the mode
    outputs = actor_outputs(policy, obs)
    actor_objective = outputs.log_prob.sum() + (outputs.entropy.sum() if outputs.entropy is not None else 0.0)
    params = [p for p in policy.parameters() if p.requires_grad]
    in_actor = [g is not None for g in th.autograd.grad(actor_objective, params, allow_unused=True)]
    in_critic = [g is not None for g in th.autograd.grad(critic_values(policy, obs).sum(), params, allow_unused=True)]
    policy.set_training_mode(training)
    flags = list(zip(params, in_actor, in_critic, strict=True))
    actor_only = [p for p, a, c in flags if a and not c]
    shared = [p for p, a, c in flags if a and c]
    critic_only = [p for p, a, c in flags if c and not a]
    return ParameterSplit(actor_only + shared, shared + critic_only, actor_only + shared + critic_only, len(shared) > 0)


def flatten_parameters_(params: Sequence[th.Tensor]) -> th.Tensor:
    """
    Move the data of ``params`` into one contiguous vector and make each parameter a view of it. The parameters stay
    the same ``nn.Parameter`` objects (optimizers and ``load_state_dict`` keep working), and an in-place change of the
    vector is a change of the parameters.

    :param params: parameters, in the order they take in the vector
    :return: the vector
    """
    if not params:
        return th.zeros(0)
    flat = th.cat([p.detach().reshape(-1) for p in params])
    offset = 0
    for param in params:
        n = param.numel()
        param.data = flat[offset : offset + n].view_as(param)
        offset += n
    return flat


def is_view_of(params: Sequence[th.Tensor], flat: th.Tensor) -> bool:
    """:return: whether every parameter still lives in ``flat`` at its place (``policy.to(device)`` breaks this)"""
    offset = 0
    base = flat.data_ptr()
    for param in params:
        if param.data_ptr() != base + offset * flat.element_size():
            return False
        offset += param.numel()
    return True
