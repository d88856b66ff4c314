"""``hf-dr demo`` and ``hf-dr study``: teachers, reinforcement and students end to end on any image-classification
dataset (bundled ones by default), compared across arms, architectures, corruptions, training lengths, curricula and
sample selection (on corrupted test sets), with tables and plots.

May import every subpackage except ``cli``.
"""
