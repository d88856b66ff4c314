"""Reinforced data at rest and at training time: a run's columns (``run_columns``: one record, their defaults), the
declared schema, soft labels, sample keys and their compact index, source datasets and the scans made once per
dataset version (content keys, image sizes), and the ``set_transform`` hooks that replay stored augmentations
(map-style and streamed, with confidence curricula), the bundled datasets (digits, shapes, Fashion-MNIST) and
corrupted test sets.

May import: ``hf_dr.errors``, ``hf_dr.augment`` and third-party libraries. Not ``generate``, ``hub``, ``train``,
``demo`` or ``cli``.
"""
