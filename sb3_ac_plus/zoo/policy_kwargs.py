"""rl-baselines3-zoo's ``policy_kwargs`` strings, read and written without running code.

In the zoo, ``policy_kwargs: "dict(net_arch=[64, 64], activation_fn=nn.Tanh)"`` is a string of Python that the zoo
passes to ``eval``. Here it is read with :mod:`ast` instead: only ``dict(...)`` calls, ``{...}`` displays, literals
and the class names listed in :data:`SAFE_NAMES` are accepted, so a config file can never run code.
"""

from __future__ import annotations

import ast
from typing import Any

import torch as th
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from torch import nn

# The names a policy_kwargs string may use. The first name of an object is the one written out.
SAFE_NAMES: dict[str, Any] = {
    "nn.Tanh": nn.Tanh,
    "nn.ReLU": nn.ReLU,
    "nn.ELU": nn.ELU,
    "nn.LeakyReLU": nn.LeakyReLU,
    "nn.SiLU": nn.SiLU,
    "nn.GELU": nn.GELU,
    "nn.Sigmoid": nn.Sigmoid,
    "nn.Identity": nn.Identity,
    "th.optim.Adam": th.optim.Adam,
    "th.optim.AdamW": th.optim.AdamW,
    "th.optim.SGD": th.optim.SGD,
    "th.optim.RMSprop": th.optim.RMSprop,
    "torch.optim.Adam": th.optim.Adam,
    "torch.optim.AdamW": th.optim.AdamW,
    "torch.optim.SGD": th.optim.SGD,
    "torch.optim.RMSprop": th.optim.RMSprop,
    "RMSpropTFLike": RMSpropTFLike,
}


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        parent = _dotted_name(node.value)
        return None if parent is None else f"{parent}.{node.attr}"
    return None


def _literal(node: ast.expr, label: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _literal(node.operand, label)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.List):
        return [_literal(element, label) for element in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(element, label) for element in node.elts)
    if isinstance(node, ast.Dict) and all(key is not None for key in node.keys):
        return {_literal(key, label): _literal(value, label) for key, value in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        if any(keyword.arg is None for keyword in node.keywords):
            raise ValueError(f"{label}: '**' is not allowed")
        return {keyword.arg: _literal(keyword.value, label) for keyword in node.keywords}
    name = _dotted_name(node)
    if name is not None and name in SAFE_NAMES:
        return SAFE_NAMES[name]
    raise ValueError(
        f"{label}: {ast.unparse(node)!r} is not allowed; use dict(...), literals and the names {', '.join(SAFE_NAMES)}"
    )


def parse_dict_literal(source: str | dict[str, Any], what: str) -> dict[str, Any]:
    """Read a string such as ``"dict(norm_obs=False, gamma=0.99)"`` into a dict, without running it.

    :param source: the string (a dict passes through)
    :param what: what the string is, for error messages (``"policy_kwargs"``, ``"normalize"``)
    :return: the dict
    :raises ValueError: when the string holds anything but ``dict(...)``, literals and :data:`SAFE_NAMES`
    """
    if isinstance(source, dict):
        return source
    if not isinstance(source, str):
        raise ValueError(f'{what} must be a string such as "dict(...)", got {source!r}')
    label = f"{what} {source!r}"
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as error:
        raise ValueError(f"{label} is not valid Python: {error.msg}") from error
    value = _literal(tree.body, label)
    if not isinstance(value, dict):
        raise ValueError(f"{label} must be a dict(...)")
    return value


def parse_policy_kwargs(source: str | dict[str, Any]) -> dict[str, Any]:
    """Read a zoo ``policy_kwargs`` string such as ``"dict(net_arch=[64, 64], activation_fn=nn.Tanh)"``.

    :param source: the string (a dict passes through)
    :return: the keyword arguments for the policy
    :raises ValueError: when the string holds anything but ``dict(...)``, literals and :data:`SAFE_NAMES`
    """
    return parse_dict_literal(source, "policy_kwargs")


def format_policy_kwargs(policy_kwargs: dict[str, Any]) -> str:
    """Write policy kwargs as a zoo string, the inverse of :func:`parse_policy_kwargs`.

    :param policy_kwargs: the keyword arguments for the policy
    :return: a string such as ``"dict(net_arch=[64, 64], activation_fn=nn.Tanh)"``
    :raises ValueError: when a value is neither a literal nor one of :data:`SAFE_NAMES`
    """

    def render(value: Any) -> str:
        if isinstance(value, dict):
            if all(isinstance(key, str) and key.isidentifier() for key in value):
                return "dict(" + ", ".join(f"{key}={render(item)}" for key, item in value.items()) + ")"
            return "{" + ", ".join(f"{render(key)}: {render(item)}" for key, item in value.items()) + "}"
        if isinstance(value, list):
            return "[" + ", ".join(render(item) for item in value) + "]"
        if isinstance(value, tuple):
            return "(" + ", ".join(render(item) for item in value) + ("," if len(value) == 1 else "") + ")"
        if value is None or isinstance(value, (bool, int, float, str)):
            return repr(value)
        for name, safe in SAFE_NAMES.items():
            if value is safe:
                return name
        raise ValueError(f"cannot write {value!r} in policy_kwargs; add it to sb3_ac_plus.zoo.policy_kwargs.SAFE_NAMES")

    return render(policy_kwargs)
