"""The compiled kernels of the NumPy backend against plain NumPy references."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sb3_ac_plus.one_step_ac.trace_updates import EligibilityTraces, add_weighted_, l1_norms
from sb3_ac_plus.one_step_ac.vector_kernels import add_weighted_rows, categorical, decay_and_add, row_l1_norms


def _rows(n_rows: int, n_params: int, seed: int = 0) -> np.ndarray:
    # Rows of a wider buffer, as the backend passes the actor's and the critic's parts of its gradient buffer.
    wide = np.random.default_rng(seed).normal(size=(n_rows, n_params + 7)).astype(np.float32)
    return wide[:, 3 : 3 + n_params]


@pytest.mark.parametrize("n_rows", [1, 3])
def test_decay_and_add_and_row_l1_norms(n_rows: int) -> None:
    current, grads = _rows(n_rows, 1001, 0), _rows(n_rows, 1001, 1)
    out = np.empty_like(current)
    decay_and_add(current, 0.79, grads, out)
    np.testing.assert_allclose(out, np.float32(0.79) * current + grads, rtol=1e-6)
    np.testing.assert_allclose(row_l1_norms(out), np.abs(out.astype(np.float64)).sum(axis=1), rtol=1e-6)
    assert row_l1_norms(out).dtype == np.float32


@pytest.mark.parametrize("n_rows", [1, 4])
def test_add_weighted_rows(n_rows: int) -> None:
    params = np.random.default_rng(2).normal(size=513).astype(np.float32)
    direction = _rows(n_rows, 513, 3)
    weights = np.linspace(-0.5, 0.25, n_rows).astype(np.float32)
    expected = params.astype(np.float64) + weights.astype(np.float64) @ direction.astype(np.float64)
    add_weighted_rows(params, direction, weights)
    np.testing.assert_allclose(params, expected, rtol=1e-6, atol=1e-7)


def test_the_update_functions_give_the_same_numbers_for_numpy_and_torch() -> None:
    """The NumPy fast path (kernels) and the torch path of the trace and update functions agree."""
    import torch as th

    traces = EligibilityTraces(257, 2)
    traces.traces.copy_(th.as_tensor(_rows(2, 257, 4)))
    grads = _rows(2, 257, 5)
    proposed_np = traces.propose(grads, 0.5).copy()
    proposed_th = traces.propose(th.as_tensor(grads), 0.5)
    np.testing.assert_allclose(proposed_np, proposed_th.numpy(), rtol=1e-6)
    np.testing.assert_allclose(l1_norms(proposed_np), l1_norms(proposed_th).numpy(), rtol=1e-5)
    weights = np.array([0.1, -0.3], dtype=np.float32)
    params_np = np.zeros(257, dtype=np.float32)
    params_th = th.zeros(257)
    add_weighted_(params_np, proposed_np, weights)
    add_weighted_(params_th, proposed_th, th.as_tensor(weights))
    np.testing.assert_allclose(params_np, params_th.numpy(), rtol=1e-5, atol=1e-7)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_categorical_samples_by_inverse_transform_and_gives_log_probs_and_entropy() -> None:
    logits = np.array([[0.0, 0.0, 0.0, 0.0], [3.0, -1.0, 0.5, 80.0], [-200.0, 0.0, 1.0, 2.0]], dtype=np.float32)
    log_softmax = _log_softmax(logits)
    probs_ref = np.exp(log_softmax)
    for draws in ([0.1, 0.3, 0.0], [0.26, 0.999, 0.5], [0.99999994, 0.99999994, 0.99999994]):
        uniform = np.array(draws, dtype=np.float32)
        actions = np.zeros(3, dtype=np.intp)
        log_probs, probs = np.empty_like(logits), np.empty_like(logits)
        log_prob, entropy = np.empty(3, dtype=np.float32), np.empty(3, dtype=np.float32)
        categorical(logits, uniform, actions, log_probs, probs, log_prob, entropy)
        # The action is the number of cumulative probabilities below the draw, at most n - 1.
        expected = np.minimum((probs_ref.cumsum(axis=1) < uniform[:, None]).sum(axis=1), 3)
        np.testing.assert_array_equal(actions, expected)
        np.testing.assert_allclose(log_probs, log_softmax, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(probs, probs_ref, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(log_prob, log_softmax[np.arange(3), actions], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(entropy, -(probs_ref * log_softmax).sum(axis=1), rtol=1e-5, atol=1e-6)
    assert actions.tolist() == [3, 3, 3]  # draws just below 1 take the last action, even past rounding


def test_categorical_keeps_given_actions_without_draws() -> None:
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    actions = np.array([2, 0], dtype=np.intp)
    log_probs, probs = np.empty_like(logits), np.empty_like(logits)
    log_prob, entropy = np.empty(2, dtype=np.float32), np.empty(2, dtype=np.float32)
    categorical(logits, np.zeros(0, dtype=np.float32), actions, log_probs, probs, log_prob, entropy)
    assert actions.tolist() == [2, 0]
    np.testing.assert_allclose(log_prob, _log_softmax(logits)[[0, 1], [2, 0]], rtol=1e-6)


def test_numba_starts_when_a_fast_path_model_is_built_not_in_learn() -> None:
    # A fresh process: numba's one-time start (its first compiled call) happens when OneStepAC builds a model the NumPy
    # backend computes, and not for one it cannot (SB3's own ActorCriticPolicy takes the torch backend).
    script = textwrap.dedent(
        """
        from stable_baselines3.common.policies import ActorCriticPolicy

        from sb3_ac_plus import OneStepAC
        from sb3_ac_plus.one_step_ac import kernel_options

        OneStepAC(ActorCriticPolicy, "CartPole-v1", normalize_observations=False, seed=0)
        print(len(kernel_options._identity.signatures))
        OneStepAC("MlpPolicy", "CartPole-v1", seed=0)
        print(len(kernel_options._identity.signatures))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "1"]
