"""The compiled kernels: OneStepAC's fast path, a translation of the reference update held equal to it by a test.

:func:`~sb3_ac_plus.one_step_ac.fast.networks.supports_kernels` says which policies they compute; everything else
runs the reference (:mod:`~sb3_ac_plus.one_step_ac.reference`).
"""

from sb3_ac_plus.one_step_ac.fast.compiler import start_compiler
from sb3_ac_plus.one_step_ac.fast.flat_optimizer import FlatOptimizer
from sb3_ac_plus.one_step_ac.fast.kernel_update import KernelUpdate
from sb3_ac_plus.one_step_ac.fast.networks import supports_kernels

__all__ = ["FlatOptimizer", "KernelUpdate", "start_compiler", "supports_kernels"]
