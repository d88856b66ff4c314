"""``python -m hf_dr``: the ``hf-dr`` command (:func:`hf_dr.cli.main`). Imports only ``hf_dr.cli``."""

from hf_dr.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
