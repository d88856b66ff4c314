"""Publishing and loading reinforced datasets on the Hugging Face Hub: push with a dataset card (run shards packed
into files of a few hundred MB), open for training (``open_reinforced``: a pushed repo or a local run, map-style
without a conversion pass, or streamed in shards), timm's loader, and verifying a pushed run with its Hub teachers.

May import: ``hf_dr.errors``, ``hf_dr.augment``, ``hf_dr.data``, ``hf_dr.models``, ``hf_dr.generate`` and
third-party libraries. Not ``train``, ``demo`` or ``cli``.
"""
