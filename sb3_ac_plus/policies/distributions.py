"""A diagonal Gaussian action distribution whose standard deviation depends on the state."""

import torch as th
from stable_baselines3.common.distributions import DiagGaussianDistribution
from torch import nn
from torch.distributions import Normal

# Bounds of the log std, as SB3's SAC uses them: exp(-20) to exp(2).
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class MeanLogStdNet(nn.Module):
    """
    The action head of :class:`StateDependentStdGaussianDistribution`: the mean and a state-dependent offset of the
    log std, concatenated as ``(batch, 2 * action_dim)``. The offset layer has no bias (the policy's ``log_std``
    parameter is its bias) and starts at zero, so the initial std is ``exp(log_std_init)`` in every state.

    :param latent_dim: size of the actor's latent
    :param action_dim: size of the action
    """

    def __init__(self, latent_dim: int, action_dim: int) -> None:
        super().__init__()
        self.mean_net = nn.Linear(latent_dim, action_dim)
        self.log_std_net = nn.Linear(latent_dim, action_dim, bias=False)
        self.reset_log_std_net()

    def reset_log_std_net(self) -> None:
        nn.init.zeros_(self.log_std_net.weight)

    def forward(self, latent: th.Tensor) -> th.Tensor:
        return th.cat([self.mean_net(latent), self.log_std_net(latent)], dim=-1)


class StateDependentStdGaussianDistribution(DiagGaussianDistribution):
    """
    Diagonal Gaussian with ``log std(s) = clamp(log_std + W latent(s), -20, 2)``: the action net
    (:class:`MeanLogStdNet`) outputs the mean and the state-dependent part of the log std. It subclasses SB3's
    ``DiagGaussianDistribution``, so ``ActorCriticPolicy`` builds and uses it unchanged under A2C, PPO and OneStepAC.
    (Not to be confused with gSDE, which makes the exploration noise, not the std, depend on the state.)

    :param action_dim: dimension of the action space
    """

    def proba_distribution_net(self, latent_dim: int, log_std_init: float = 0.0) -> tuple[nn.Module, nn.Parameter]:
        log_std = nn.Parameter(th.ones(self.action_dim) * log_std_init, requires_grad=True)
        return MeanLogStdNet(latent_dim, self.action_dim), log_std

    def proba_distribution(  # type: ignore[override]
        self, mean_actions: th.Tensor, log_std: th.Tensor
    ) -> "StateDependentStdGaussianDistribution":
        """
        :param mean_actions: the action net's output: the mean and the log std offset, concatenated
        :param log_std: the state-independent part of the log std
        """
        mean, log_std_offset = th.split(mean_actions, self.action_dim, dim=-1)
        state_log_std = (log_std + log_std_offset).clamp(LOG_STD_MIN, LOG_STD_MAX)
        self.distribution = Normal(mean, state_log_std.exp())
        return self
