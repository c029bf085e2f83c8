"""What an online update needs from the networks, as one small interface with a NumPy and a torch implementation."""

from typing import Any, Protocol


class ActorCriticBackend(Protocol):
    """
    The forward and backward passes of one online actor-critic update, at one row per env.

    :class:`~sb3_ac_plus.one_step_ac.numpy_backend.NumpyBackend` computes them in NumPy on the memory of the policy's
    own parameters (fast at batch size 1, for the common policies); :class:`~sb3_ac_plus.one_step_ac.torch_backend.
    TorchBackend` with torch autograd (any policy, space and device). Arrays are NumPy arrays or tensors, as the
    backend works.
    """

    name: str
    actor_params: Any
    """the actor's part of the flat parameter vector (actor-only, then shared parameters), written by the update"""
    critic_params: Any
    """the critic's part (shared, then critic-only parameters)"""

    def observe(self, raw_obs: Any) -> Any:
        """:return: the networks' input for raw observations from the VecEnv (normalised with the current statistics)"""

    def act(self, obs: Any, noise: Any = None, with_state: bool = True) -> tuple[Any, Any]:
        """
        :param noise: the standard-normal draws of diagonal Gaussian actions ``(n_envs, action_dim)`` (NumPy), e.g.
            colored noise; None draws white noise with the backend's generator
        :param with_state: whether the caller needs the actor's pass (False where the compiled update recomputes it:
            a backend may then return None for it)
        :return: sampled actions ``(n_envs, ...)`` and what :meth:`row_gradients` needs of the actor's pass
        """

    def evaluate(self, obs: Any, actions: Any) -> Any:
        """
        :param obs: the networks' input (from :meth:`observe`)
        :param actions: actions taken earlier in these states, a NumPy array ``(rows, ...)``
        :return: what :meth:`row_gradients` needs of the actor's pass at these actions (the n-step update)
        """

    def values(self, obs: Any, next_obs: Any) -> tuple[Any, Any, Any]:
        """
        :return: V(obs) and V(next_obs) ``(n_envs,)`` from one pass, without gradient, and what :meth:`row_gradients`
            needs of the critic's pass
        """

    def row_gradients(self, actor_state: Any, critic_state: Any, entropy_weights: Any) -> tuple[Any, Any, Any, Any]:
        """
        :param entropy_weights: weight of the entropy in each row's actor objective ``(n_envs,)``
        :return: per-row gradients of ``log pi(a|s) + entropy_weights * H(pi(.|s))`` over :attr:`actor_params` and of
            ``V(s)`` over :attr:`critic_params`, each ``(n_envs, n_params)``, then log pi(a|s) and the entropy (None if
            the distribution has none), without gradient
        """
