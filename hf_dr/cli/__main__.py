"""``python -m hf_dr.cli``: the ``hf-dr`` command, as before the subpackage layout (:func:`hf_dr.cli.main`)."""

from hf_dr.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
