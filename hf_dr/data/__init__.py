"""Reinforced data at rest and at training time: a run's columns (``run_columns``: one record, their defaults), the
declared schema, soft labels, sample keys and their compact index, source datasets and the scans made once per
dataset version (content keys, image sizes), and the ``set_transform`` hooks that replay stored augmentations
(map-style, batched and streamed, with confidence curricula), a student's classes and channels read from the data,
the bundled datasets (digits, shapes, Fashion-MNIST) and pictures of a sample's replayed views.

May import: ``hf_dr.errors``, ``hf_dr.augment`` and third-party libraries. Not ``generate``, ``hub``, ``train``,
``demo`` or ``cli``.
"""
