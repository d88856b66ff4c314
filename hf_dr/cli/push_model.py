"""Upload a trained student (an hf_dr checkpoint) to a Hub model repo that timm loads:
``timm.create_model("hf-hub:ORG/NAME", pretrained=True)`` rebuilds it with its channels, classes and preprocessing.
The card names the dataset it was trained on and its metrics, read from what the training script wrote beside the
checkpoint (``train_config.json``, ``result.json``).

Example:
    hf-dr push-model --checkpoint runs/student/model.safetensors me/resnet50-imagenet-plus
"""

from __future__ import annotations

import argparse

HELP = "upload a trained student checkpoint to a Hub model repo that timm.create_model('hf-hub:...') loads"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``push-model`` arguments to ``parser``."""
    parser.add_argument("--checkpoint", required=True, help="hf_dr .safetensors file or Trainer output folder")
    parser.add_argument("repo_id", metavar="ORG/NAME", help="the model repo to create or update")
    parser.add_argument("--dataset", default=None,
                        help="the dataset it was trained on (default: what train_config.json beside it records)")
    parser.add_argument("--license", default=None, help="Hub license id (default: other)")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--branch", default=None, help="the branch to commit to (default: the default branch)")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--token", default=None, help="Hub token (default: the logged-in one)")


def run(args: argparse.Namespace) -> int:
    """Runs :func:`hf_dr.train.model_repo.push_model` and prints the commit."""
    from hf_dr.train.model_repo import push_model

    url = push_model(args.checkpoint, args.repo_id, dataset=args.dataset, license=args.license, private=args.private,
                     branch=args.branch, create_pr=args.create_pr, token=args.token)
    print(f"pushed {args.checkpoint} to {args.repo_id}: {url}")
    return 0
