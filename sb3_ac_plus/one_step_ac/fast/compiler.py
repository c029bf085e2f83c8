"""Compilation options shared by the kernels, and numba's start."""

from numba import njit

# Sums may be reassociated, so that the compiler vectorises them (several partial sums at once). The result is still
# the same on every run with the same build on the same CPU; on another CPU (another vector width) the last bits of a
# sum may differ, as they do for NumPy's and BLAS's own sums.
FAST_SUMS = {"reassoc"}


@njit(cache=True, nogil=True)
def _identity(value: int) -> int:
    return value


def start_compiler() -> None:
    """
    Start numba in this process, if it has not started yet: its first compiled call loads its typing and lowering
    registries (about 0.4 s, once per process). OneStepAC calls this when it builds a model that runs the kernels, so
    that ``learn()`` starts at full speed; each kernel is then loaded from numba's disk cache on its first call.
    """
    _identity(0)
