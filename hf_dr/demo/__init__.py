"""``hf-dr demo``: teachers, reinforcement and students end to end on bundled data, with tables and plots.

May import every subpackage except ``cli``.
"""
