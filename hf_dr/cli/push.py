"""Upload a finished reinforcement run to a Hub dataset repo with its dataset card. The run is refused unless its
manifest and checksums hold; pushing again uploads only what changed.

Layouts: self-contained (every row holds the image, label, key and reinforcements; for redistributable data) or
metadata-only (keys and reinforcements; the card and hf_dr.json record the source repo, pinned revision, split and key
column, and hf_dr.load_reinforced joins the images back by key).

Example:
    hf-dr push --run-dir reinforced/ me/cifar100-plus
    hf-dr push --run-dir imagenet-run/ me/imagenet-plus --layout metadata-only --source-id ILSVRC/imagenet-1k \\
        --revision COMMIT_THE_RUN_READ --generation-cost "N GPU-hours on HARDWARE"
    hf-dr push --run-dir test-run/ me/cifar100-plus --split test --branch v2 --create-pr

Like ``Dataset.push_to_hub``, a push adds or replaces its own split and keeps the repo's others. ``--branch`` is the
repo branch to commit to (what ``huggingface-cli upload --revision`` means); ``--revision`` is, as in every hf-dr
command, the revision of the dataset that was reinforced (``--source-revision``, hidden, its old spelling).
"""

from __future__ import annotations

import argparse

from hf_dr.cli._options import add_option, add_run_dir, required_run_dir

HELP = "upload a finished reinforcement run to a Hub dataset repo with its dataset card"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``push`` arguments to ``parser`` (old spellings, hidden: the run folder as first positional,
    ``--source-revision``)."""
    add_run_dir(parser, help="the finished run to upload, the folder `hf-dr reinforce` wrote")
    parser.add_argument("repo_id", metavar="ORG/NAME", help="the dataset repo to create or update")
    parser.add_argument("--layout", choices=["self-contained", "metadata-only"], default="self-contained",
                        help="rows with images, or keys and reinforcements only (images that cannot be "
                             "redistributed)")
    source = parser.add_argument_group("source")
    source.add_argument("--dataset", default=None,
                        help="self-contained: the reinforced dataset, a Hub id, folder or Parquet file (default: "
                             "the one the run recorded)")
    source.add_argument("--split", default=None, help="split name (default: the reinforced split, else train)")
    source.add_argument("--dataset-config", default=None, metavar="NAME",
                        help="configuration name of --dataset (default: none)")
    add_option(source, "--revision", hidden=("--source-revision",), default=None,
               help="the revision of the reinforced SOURCE dataset the run read, pinned to its commit, as --revision "
                    "means in every hf-dr command; the repo branch to push to is --branch (default: the recorded one)")
    source.add_argument("--source-id", default=None,
                        help="the source's Hub id, if the run did not record it (default: the recorded one)")
    card = parser.add_argument_group("card")
    card.add_argument("--license", default=None, help="Hub license id (default: the source's, else unknown)")
    card.add_argument("--pretty-name", default=None, help="the card's title (default: the source's name with a +)")
    card.add_argument("--generation-cost", default=None, help='e.g. "3 GPU-hours on one H100" (default: none)')
    hub = parser.add_argument_group("hub")
    hub.add_argument("--branch", default=None,
                     help="the repo branch to commit to, created from main if missing (default: main)")
    hub.add_argument("--create-pr", action="store_true",
                     help="open a pull request against --branch instead of committing to it")
    hub.add_argument("--private", action="store_true", help="create the repo private")
    hub.add_argument("--commit-message", default=None,
                     help="(default: 'Upload reinforced SPLIT split (LAYOUT) with hf-dr')")
    hub.add_argument("--token", default=None, help="Hub token (default: the logged-in one)")
    hub.add_argument("--compression-level", type=int, default=None,
                     help="zstd level of metadata-only files: 19 is 6%% smaller for every download but costs ~25x "
                          "the CPU of 3 when pushing (2+ CPU-hours for ImageNet+; docs/push.md) (default: 3)")
    hub.add_argument("--num-proc", type=int, default=None,
                     help="processes that write the metadata-only data files; the files are the same whatever the "
                          "count (default: min(8, cores) where processes start by fork, else 1)")

def run(args: argparse.Namespace) -> int:
    """Runs :func:`hf_dr.hub.push.push_to_hub` with the parsed arguments and prints the commit."""
    from hf_dr.data.sources import load_source
    from hf_dr.hub.push import DATA_COMPRESSION_LEVEL, push_to_hub

    run_dir = required_run_dir(args)
    dataset = None
    if args.dataset is not None:
        dataset = load_source(args.dataset, split=args.split or "train", name=args.dataset_config,
                              revision=args.revision)
    level = DATA_COMPRESSION_LEVEL if args.compression_level is None else args.compression_level
    commit = push_to_hub(
        run_dir, args.repo_id, layout=args.layout, dataset=dataset, split=args.split,
        source_id=args.source_id, source_revision=args.revision, license=args.license,
        pretty_name=args.pretty_name, generation_cost=args.generation_cost, private=args.private or None,
        commit_message=args.commit_message, token=args.token, compression_level=level,
        branch=args.branch, create_pr=args.create_pr, num_proc=args.num_proc,
    )
    where = (f" (a pull request on {args.branch or 'main'})" if args.create_pr
             else f" (branch {args.branch})" if args.branch else "")
    print(f"pushed {run_dir} ({args.layout}) to datasets/{args.repo_id}{where} at commit {commit}")
    return 0
