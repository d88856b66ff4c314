"""Training on reinforced data: the soft-target loss, a plain PyTorch + Accelerate loop, the ``transformers.Trainer``
recipe, evaluation metrics, pushing a student to the Hub, and teacher fine-tuning. The networks themselves
(students, teachers, checkpoints) live in :mod:`hf_dr.models`.

May import: ``hf_dr.errors``, ``hf_dr.augment``, ``hf_dr.data``, ``hf_dr.models``, ``hf_dr.generate`` (views) and
third-party libraries. Not ``hub``, ``demo`` or ``cli``.
"""
