"""Subcommands of the ``hf-dr`` command line (see :mod:`hf_dr.cli` for the contract each module follows)."""
