"""Compilation options shared by the compiled kernels of the NumPy backend, and numba's start."""

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
    Start numba in this process, if it has not started yet: its first compiled call (here, of a trivial kernel) loads
    its typing and lowering registries, which import a good part of numba, NumPy's and SciPy's submodules (about 0.4 s
    here, once per process). The NumPy backend calls this when it is built, so that a model's ``learn()`` starts at its
    full speed; each kernel is then loaded from numba's cache on its first call (milliseconds).
    """
    _identity(0)
