"""Augmentations that can be replayed: image kernels, ops with declared parameter fields, policies and their registry,
and the seeded generators every draw comes from.

Lives here: ``functional`` (stateless Pillow/tensor kernels), ``fields`` (how one parameter is stored), ``seeding``,
``ops/`` (one op per module: sample every draw up front, apply purely), ``policy`` (an ordered composition of ops)
and ``registry`` (named policies).

May import: ``hf_dr.errors`` and third-party libraries (numpy, torch, torchvision, Pillow, datasets' features).
Nothing else of hf_dr: every other subpackage builds on this one.
"""
