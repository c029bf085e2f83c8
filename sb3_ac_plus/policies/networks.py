"""The MLPs of the actor-critic policies: an optional shared trunk feeding an actor MLP and a critic MLP."""

import itertools

import torch as th
from torch import nn
from torch.nn import functional as F

NET_ARCH_KEYS = ("shared", "pi", "vf")


class MLP(nn.Module):
    """
    ``Linear -> LayerNorm (no affine parameters, optional) -> activation`` for each hidden layer.

    The forward pass calls the functional ops directly: at batch size 1 the per-module call overhead of an
    ``nn.Sequential`` is a large part of an online update.

    :param input_dim: size of the input
    :param layer_sizes: size of each hidden layer (empty: the identity)
    :param activation_fn: activation class
    :param layer_norm: whether to normalise each layer's pre-activations
    """

    layer_norm_eps = 1e-5  # added to the variance by LayerNorm (torch's default)

    def __init__(self, input_dim: int, layer_sizes: list[int], activation_fn: type[nn.Module], layer_norm: bool) -> None:
        super().__init__()
        sizes = [input_dim, *layer_sizes]
        self.linears = nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in itertools.pairwise(sizes))
        self.activation = activation_fn()
        self.layer_norm = layer_norm

    def forward(self, x: th.Tensor) -> th.Tensor:
        for linear in self.linears:
            x = F.linear(x, linear.weight, linear.bias)  # type: ignore[arg-type]
            if self.layer_norm:
                x = F.layer_norm(x, x.shape[-1:], eps=self.layer_norm_eps)
            x = self.activation(x)
        return x


def parse_net_arch(net_arch: list[int] | dict[str, list[int]]) -> tuple[list[int], list[int], list[int]]:
    """
    :param net_arch: ``dict(shared=[...], pi=[...], vf=[...])`` (each key optional) or one list used for both ``pi``
        and ``vf`` (SB3's form)
    :return: the layer sizes of the shared trunk, the actor and the critic
    """
    if isinstance(net_arch, dict):
        unknown = sorted(set(net_arch) - set(NET_ARCH_KEYS))
        if unknown:
            raise ValueError(f"policy_kwargs['net_arch']: unknown keys {unknown}; allowed keys are {list(NET_ARCH_KEYS)}")
        shared, pi, vf = (net_arch.get(key, []) for key in NET_ARCH_KEYS)
    elif isinstance(net_arch, (list, tuple)):
        shared, pi, vf = [], net_arch, net_arch
    else:
        raise ValueError(f"policy_kwargs['net_arch'] must be a list of layer sizes or a dict, got {net_arch!r}")
    for sizes in (shared, pi, vf):
        if not isinstance(sizes, (list, tuple)) or any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in sizes):
            raise ValueError(f"policy_kwargs['net_arch']: layer sizes must be lists of positive integers, got {net_arch!r}")
    return list(shared), list(pi), list(vf)


class ActorCriticMlpExtractor(nn.Module):
    """
    The ``mlp_extractor`` of SB3's actor-critic policies, with an optional shared trunk: features go through
    ``shared_net``, then through ``policy_net`` (actor) and ``value_net`` (critic). ``forward_actor`` and
    ``forward_critic`` each run the trunk; ``forward`` runs it once for both.

    :param feature_dim: size of the features from the features extractor
    :param net_arch: ``dict(shared=[...], pi=[...], vf=[...])`` or one list used for both ``pi`` and ``vf``
    :param activation_fn: activation class
    :param layer_norm: whether to use LayerNorm without affine parameters after each linear layer
    """

    def __init__(
        self,
        feature_dim: int,
        net_arch: list[int] | dict[str, list[int]],
        activation_fn: type[nn.Module],
        layer_norm: bool,
    ) -> None:
        super().__init__()
        shared_sizes, pi_sizes, vf_sizes = parse_net_arch(net_arch)
        self.shared_net = MLP(feature_dim, shared_sizes, activation_fn, layer_norm)
        trunk_dim = shared_sizes[-1] if shared_sizes else feature_dim
        self.policy_net = MLP(trunk_dim, pi_sizes, activation_fn, layer_norm)
        self.value_net = MLP(trunk_dim, vf_sizes, activation_fn, layer_norm)
        self.latent_dim_pi = pi_sizes[-1] if pi_sizes else trunk_dim
        self.latent_dim_vf = vf_sizes[-1] if vf_sizes else trunk_dim
        self.has_trunk = len(shared_sizes) > 0

    def forward(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        trunk = self.shared_net(features) if self.has_trunk else features
        return self.policy_net(trunk), self.value_net(trunk)

    def forward_actor(self, features: th.Tensor) -> th.Tensor:
        return self.policy_net(self.shared_net(features) if self.has_trunk else features)

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        return self.value_net(self.shared_net(features) if self.has_trunk else features)
