"""Compilation options shared by the compiled kernels of the NumPy backend."""

# Sums may be reassociated, so that the compiler vectorises them (several partial sums at once). The result is still
# the same on every run with the same build on the same CPU; on another CPU (another vector width) the last bits of a
# sum may differ, as they do for NumPy's and BLAS's own sums.
FAST_SUMS = {"reassoc"}
