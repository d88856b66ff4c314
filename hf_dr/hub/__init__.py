"""Publishing and loading reinforced datasets on the Hugging Face Hub: push with a dataset card (run shards packed
into files of a few hundred MB), load back with the replay set, and pictures of a sample's reinforcements.

May import: ``hf_dr.errors``, ``hf_dr.augment``, ``hf_dr.data``, ``hf_dr.generate`` and third-party libraries.
Not ``train``, ``demo`` or ``cli``.
"""
