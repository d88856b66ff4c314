"""Training on reinforced data: the soft-target loss, a plain PyTorch + Accelerate loop, checkpoints, the
``transformers.Trainer`` recipe, evaluation metrics, student and teacher networks, and teacher fine-tuning (its
members, their screening and the ensemble's calibration).

May import: ``hf_dr.errors``, ``hf_dr.augment``, ``hf_dr.data``, ``hf_dr.generate`` (teacher specs, views) and
third-party libraries. Not ``hub``, ``demo`` or ``cli``.
"""
