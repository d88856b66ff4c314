"""Models: teachers (specs, ensembles, their weights and quality checks), students (building by name, calling,
class and channel checks), checkpoints, and the small networks registered with timm.

Below ``generate`` and ``train``, which both use them. May import: ``hf_dr.errors``, ``hf_dr.files``,
``hf_dr.augment``, ``hf_dr.data`` and third-party libraries.
"""
