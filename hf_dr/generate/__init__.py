"""Making a reinforced dataset: the plan of shards and chunks, rendering the teacher's views, the run itself
(``reinforce``), its settings (``settings``: one object, the defaults), its recorded configuration, the files it
writes (shards on a background writer), loading them back, ``verify``, and sample selection (N' of the N stored
augmentations, App. C.6).

May import: ``hf_dr.errors``, ``hf_dr.augment``, ``hf_dr.data``, ``hf_dr.models`` (teachers) and third-party
libraries. Not ``hub``, ``train``, ``demo`` or ``cli``.
"""
