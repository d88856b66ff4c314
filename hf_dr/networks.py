"""Deprecated alias of :mod:`hf_dr.models.networks`, kept for one release: model cards pushed by hf-dr 0.2 import
``hf_dr.networks`` to register the small networks with timm."""

import warnings

from hf_dr.models.networks import *  # noqa: F403 (the alias re-exports the module)

warnings.warn("hf_dr.networks moved to hf_dr.models.networks; import that (the alias goes in the next release)",
              FutureWarning, stacklevel=2)
