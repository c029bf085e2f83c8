"""The hyperparameters each algorithm is tuned over: edit the ranges here.

Both tuners sample from here: the package's own (``tuning/optimize.py``, :mod:`sb3_ac_plus.tuning`) and rl_zoo3's
through :mod:`~sb3_ac_plus.zoo.rl_zoo3_plugin`; it lives in the zoo package, as rl-baselines3-zoo's samplers live in
its ``hyperparams_opt.py``, so that the zoo never imports the tuner.

Every sampler returns constructor keyword arguments under their real names and with the values that build the model,
so the best trial can be written as a YAML block that a user pastes. A hyperparameter fixed on the command line
(``--fix gamma=0.99``) is not searched: :class:`Space` returns the fixed value instead of asking Optuna.

The A2C and PPO ranges follow rl-baselines3-zoo's ``hyperparams_opt.py``, with gamma and gae_lambda drawn from
lists of real values instead of the zoo's ``one_minus_gamma`` encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from optuna.trial import BaseTrial
from torch import nn

# Sizes of the hidden layers, for the actor and the critic alike (SB3 builds two networks from one list).
NET_ARCHS: dict[str, list[int]] = {
    "tiny": [64],
    "small": [64, 64],
    "medium": [128, 128],
    "large": [256, 256],
}

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}

# Hyperparameters that go into ``policy_kwargs`` rather than the algorithm's constructor.
POLICY_KWARG_NAMES = ("net_arch", "activation_fn")


class Space:
    """What a sampler asks for. Each call suggests one hyperparameter to Optuna, unless the user fixed it.

    Without a trial (``trial=None``) it answers the first choice or the lower bound and only records the names asked
    for; the command line uses this to check the names given to ``--fix``.

    :param trial: the Optuna trial to suggest from (a ``FixedTrial`` replays given values), or None for a dry run
    :param fixed: hyperparameters fixed by the user, by name
    :param continuous_actions: whether the env's actions are a Box (Gaussian policies): hyperparameters that only
        apply to them (exploration noise) are searched only then
    """

    def __init__(
        self, trial: BaseTrial | None, fixed: Mapping[str, Any] | None = None, continuous_actions: bool = False
    ) -> None:
        self.trial = trial
        self.fixed = dict(fixed or {})
        self.continuous_actions = continuous_actions
        self.names: list[str] = []
        # what each name may take: (low, high) for a float, the list of choices for a categorical
        self.domains: dict[str, tuple[float, float] | list[Any]] = {}

    def _ask(self, name: str, when: bool, otherwise: Any, suggest: Callable[[BaseTrial], Any], dry_run: Any) -> Any:
        self.names.append(name)
        if name in self.fixed:
            return self.fixed[name]
        if not when:
            return otherwise
        if self.trial is None:
            return dry_run
        return suggest(self.trial)

    def log_uniform(self, name: str, low: float, high: float, when: bool = True, otherwise: Any = None) -> Any:
        """A float drawn on a log scale in [low, high].

        :param name: hyperparameter name, as the constructor spells it
        :param low: lower bound
        :param high: upper bound
        :param when: False when the hyperparameter does not apply to this trial; it then takes ``otherwise``
        :param otherwise: the value used when ``when`` is False
        :return: the value for this trial
        """
        self.domains[name] = (low, high)
        return self._ask(name, when, otherwise, lambda trial: trial.suggest_float(name, low, high, log=True), low)

    def uniform(self, name: str, low: float, high: float, when: bool = True, otherwise: Any = None) -> Any:
        """A float drawn uniformly in [low, high]; see :meth:`log_uniform` for the parameters."""
        self.domains[name] = (low, high)
        return self._ask(name, when, otherwise, lambda trial: trial.suggest_float(name, low, high), low)

    def categorical(self, name: str, choices: Sequence[Any], when: bool = True, otherwise: Any = None) -> Any:
        """One of ``choices``; see :meth:`log_uniform` for the other parameters.

        :param choices: the values to choose from (None, bool, int, float or str)
        """
        self.domains[name] = list(choices)
        return self._ask(name, when, otherwise, lambda trial: trial.suggest_categorical(name, list(choices)), choices[0])


def net_arch(value: str | list[int] | dict[str, list[int]]) -> list[int] | dict[str, list[int]]:
    """Resolve a net_arch name of :data:`NET_ARCHS` (a literal list or dict passes through).

    :param value: a name such as ``"small"`` or a literal net_arch
    :return: the net_arch given to the policy
    """
    if isinstance(value, str):
        if value not in NET_ARCHS:
            raise ValueError(f"unknown net_arch {value!r}; use one of {sorted(NET_ARCHS)} or a list such as [64, 64]")
        return NET_ARCHS[value]
    return value


def activation_fn(value: str | type[nn.Module]) -> type[nn.Module]:
    """Resolve an activation name of :data:`ACTIVATIONS` (``"relu"`` or ``"nn.ReLU"``; a class passes through).

    :param value: the name or the class
    :return: the activation class
    """
    if isinstance(value, str):
        by_class_name = {cls.__name__: cls for cls in ACTIVATIONS.values()}
        key = value.removeprefix("nn.")
        if key in ACTIVATIONS:
            return ACTIVATIONS[key]
        if key in by_class_name:
            return by_class_name[key]
        raise ValueError(f"unknown activation_fn {value!r}; use one of {sorted(ACTIVATIONS)}")
    return value


def sample_one_step_ac(space: Space) -> dict[str, Any]:
    """OneStepAC with ObGD's bounded step sizes (plain or adaptive), whose bounds make large nominal learning rates safe.

    Exploration noise (colored with ``noise_beta``, or gSDE) and the Gaussian's initial ``log_std_init`` are searched for
    Box actions only.

    :param space: where the values come from
    :return: constructor kwargs
    """
    trace_lambda = space.categorical("trace_lambda", [0.0, 0.5, 0.8, 0.9, 0.95])
    n_envs = space.categorical("n_envs", [1, 2, 4, 8, 16])  # a zoo experiment key: the VecEnv's size
    continuous = space.continuous_actions
    use_sde = space.categorical("use_sde", [False, True], when=continuous, otherwise=False)
    return {
        "n_envs": n_envs,
        "update_rule": space.categorical("update_rule", ["obgd", "adaptive_obgd"]),
        "learning_rate": space.log_uniform("learning_rate", 0.03, 3.0),
        "critic_learning_rate": space.log_uniform("critic_learning_rate", 0.03, 3.0),
        "trace_lambda": trace_lambda,
        # OneStepAC bootstraps over n steps only without eligibility traces
        "n_steps": space.categorical("n_steps", [1, 2, 4, 8], when=trace_lambda == 0.0, otherwise=1),
        "gamma": space.categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999]),
        "ent_coef": space.log_uniform("ent_coef", 1e-4, 0.1),
        "actor_kappa": space.uniform("actor_kappa", 1.0, 5.0),
        "critic_kappa": space.uniform("critic_kappa", 1.0, 5.0),
        "use_sde": use_sde,
        "noise_beta": space.categorical("noise_beta", [0.0, 0.5, 1.0, 2.0], when=continuous and not use_sde, otherwise=0.0),
        "policy_kwargs": {
            "net_arch": net_arch(space.categorical("net_arch", ["tiny", "small", "medium"])),
            # The Gaussian's initial std: with gSDE it multiplies LayerNorm'd latents (std about sqrt(units)).
            **_present("log_std_init", space.categorical("log_std_init", [-2.0, -1.0, 0.0, 1.0], when=continuous)),
        },
    }


def _present(name: str, value: Any) -> dict[str, Any]:
    """``{name: value}``, or nothing when the hyperparameter does not apply (None)."""
    return {} if value is None else {name: value}


def sample_a2c(space: Space) -> dict[str, Any]:
    """A2C, rl-zoo ranges.

    :param space: where the values come from
    :return: constructor kwargs
    """
    return {
        "learning_rate": space.log_uniform("learning_rate", 1e-5, 2e-3),
        "n_steps": space.categorical("n_steps", [8, 16, 32, 64, 128, 256, 512, 1024, 2048]),
        "gamma": space.categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]),
        "gae_lambda": space.categorical("gae_lambda", [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0]),
        "ent_coef": space.log_uniform("ent_coef", 1e-8, 0.1),
        "vf_coef": space.uniform("vf_coef", 0.2, 1.0),
        "max_grad_norm": space.uniform("max_grad_norm", 0.3, 5.0),
        "normalize_advantage": space.categorical("normalize_advantage", [False, True]),
        "policy_kwargs": {
            "net_arch": net_arch(space.categorical("net_arch", ["small", "medium"])),
            "activation_fn": activation_fn(space.categorical("activation_fn", ["tanh", "relu"])),
        },
    }


def sample_ppo(space: Space) -> dict[str, Any]:
    """PPO, rl-zoo ranges.

    :param space: where the values come from
    :return: constructor kwargs
    """
    n_steps = space.categorical("n_steps", [32, 64, 128, 256, 512, 1024, 2048])
    batch_size = space.categorical("batch_size", [32, 64, 128, 256, 512])
    return {
        "learning_rate": space.log_uniform("learning_rate", 1e-5, 2e-3),
        "n_steps": n_steps,
        # SB3 truncates a mini-batch larger than the rollout; keep the size that is really used
        "batch_size": min(batch_size, n_steps),
        "n_epochs": space.categorical("n_epochs", [1, 5, 10, 20]),
        "gamma": space.categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]),
        "gae_lambda": space.categorical("gae_lambda", [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0]),
        "clip_range": space.categorical("clip_range", [0.1, 0.2, 0.3, 0.4]),
        "ent_coef": space.log_uniform("ent_coef", 1e-8, 0.1),
        "max_grad_norm": space.uniform("max_grad_norm", 0.3, 5.0),
        "policy_kwargs": {
            "net_arch": net_arch(space.categorical("net_arch", ["tiny", "small", "medium"])),
            "activation_fn": activation_fn(space.categorical("activation_fn", ["tanh", "relu"])),
        },
    }


SAMPLERS: dict[str, Callable[[Space], dict[str, Any]]] = {
    "one_step_ac": sample_one_step_ac,
    "a2c": sample_a2c,
    "ppo": sample_ppo,
}


def searched_names(algo: str) -> list[str]:
    """Names of the hyperparameters the sampler of ``algo`` may search (conditional ones included).

    :param algo: command-line name of the algorithm
    :return: the names, in the order the sampler asks for them
    """
    return _dry_run(algo).names


def search_domains(algo: str) -> dict[str, tuple[float, float] | list[Any]]:
    """What the sampler of ``algo`` may draw for each searched name (conditional ones included).

    :param algo: command-line name of the algorithm
    :return: ``(low, high)`` for a float, the list of choices for a categorical, in the order the sampler asks
    """
    return _dry_run(algo).domains


def _dry_run(algo: str) -> Space:
    """The space after a dry run of the sampler of ``algo`` (Box actions, so every name is asked for)."""
    space = Space(trial=None, continuous_actions=True)
    SAMPLERS[algo](space)
    return space


def check_searched_value(algo: str, name: str, value: Any) -> None:
    """Check that ``value`` is one the sampler of ``algo`` could draw for ``name`` (for an enqueued trial).

    :param algo: command-line name of the algorithm
    :param name: a searched hyperparameter
    :param value: the value to check
    :raises ValueError: naming what the search allows, when ``name`` is not searched or ``value`` is outside its domain
    """
    space = _dry_run(algo)
    if name not in space.domains:
        raise ValueError(f"{name!r} is not searched for {algo}; searched: {', '.join(space.names)}")
    domain = space.domains[name]
    if isinstance(domain, list):
        if value not in domain or isinstance(value, bool) != any(isinstance(choice, bool) for choice in domain):
            raise ValueError(f"{name} must be one of {domain}, got {value!r}")
        return
    low, high = domain
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")


def sample_hyperparameters(
    trial: BaseTrial | None, algo: str, fixed: Mapping[str, Any] | None = None, continuous_actions: bool = False
) -> dict[str, Any]:
    """Constructor kwargs for one trial: sampled values, overridden or completed by the fixed ones.

    A fixed name the sampler does not search is passed to the constructor as is; ``net_arch`` and ``activation_fn``
    go into ``policy_kwargs``, and a fixed ``policy_kwargs`` dict is merged over the sampled one.

    :param trial: the Optuna trial, or None for a dry run
    :param algo: command-line name of the algorithm
    :param fixed: hyperparameters fixed by the user
    :param continuous_actions: whether the env's actions are a Box (see :class:`Space`)
    :return: constructor kwargs (without ``policy``, ``env`` and ``seed``)
    """
    fixed = dict(fixed or {})
    space = Space(trial, fixed, continuous_actions)
    kwargs = SAMPLERS[algo](space)
    extra = {name: value for name, value in fixed.items() if name not in space.names}
    policy_kwargs = dict(kwargs.pop("policy_kwargs", {}))
    if "net_arch" in extra:
        policy_kwargs["net_arch"] = net_arch(extra.pop("net_arch"))
    if "activation_fn" in extra:
        policy_kwargs["activation_fn"] = activation_fn(extra.pop("activation_fn"))
    policy_kwargs.update(extra.pop("policy_kwargs", {}))
    kwargs.update(extra)
    if policy_kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    return kwargs
