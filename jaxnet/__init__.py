"""jaxnet: backpropagation by hand, checked against JAX; image classifiers with JAX, Flax and Optax.

Where things live:

- ``jaxnet.graphs``     scalar computational graphs f1-f4 with hand-derived backward passes
- ``jaxnet.layers``     fc / ReLU / softmax loss / L2 as forward-backward pairs, and ``jax.custom_vjp`` versions
- ``jaxnet.gradcheck``  compares any forward/backward pair with ``jax.vjp`` and with finite differences
- ``jaxnet.cli``        the ``jaxnet`` command
"""

import os as _os

# On XLA:CPU this jaxlib sends convolutions to its YNNPACK path by default, which is about 2x slower
# for the CNN here (see ../shared/facts/performance.md). The flag must be set before jax is imported;
# a user's own choice of the same flag wins.
_CPU_FLAG = "--xla_cpu_experimental_ynn_fusion_type=individual_dot,reduce"
if "xla_cpu_experimental_ynn_fusion_type" not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = (_os.environ.get("XLA_FLAGS", "") + " " + _CPU_FLAG).strip()

__version__ = "0.1.0"
