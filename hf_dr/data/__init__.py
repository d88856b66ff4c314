"""Reinforced data at rest and at training time: the declared schema, soft labels, sample keys, source datasets,
and the ``set_transform`` hooks that replay stored augmentations (map-style and streamed).

May import: ``hf_dr.errors``, ``hf_dr.augment`` and third-party libraries. Not ``generate``, ``hub``, ``train``,
``demo`` or ``cli``.
"""
