"""CIFAR-100+: CIFAR-100 reinforced by 4 ResNet-152 fine-tuned on it, ``rrc+ra_re``, N = 800, k = 10 (paper Sec. 2.3).

Source: ``uoft-cs/cifar100`` (the canonical CIFAR-100 repo on the Hub; parquet, splits ``train`` 50,000 and ``test``
10,000). Expected columns: ``img`` (Image, 32 x 32 PNG), ``fine_label`` (ClassLabel, 100 classes, the names below in
this order), ``coarse_label`` (ClassLabel, 20, unused). The id, columns and names could not be checked against the Hub
from here (no network): a different layout is refused by ``hf-dr reinforce`` with the column it lacks. No key
column: rows are keyed by a hash of the image bytes. Revision None reads the default branch; ``hf-dr push`` pins the
commit the run read.
"""

from hf_dr.generate.builder import Builder

from ._common import FINETUNE_BASE, FINETUNE_EPOCHS, FINETUNE_INPUT_SIZE, FINETUNE_NOTES, FINETUNE_SEEDS

CLASS_NAMES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest",
    "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard",
    "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid",
    "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum",
    "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper",
    "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone",
    "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf",
    "woman", "worm",
)

CITATION = """@techreport{krizhevsky2009learning,
  title       = {Learning Multiple Layers of Features from Tiny Images},
  author      = {Krizhevsky, Alex},
  institution = {University of Toronto},
  year        = {2009}
}"""

BUILDER = Builder(
    name="cifar100_plus",
    pretty_name="CIFAR-100+",
    description="CIFAR-100 train (50k), 4 x fine-tuned ResNet-152, rrc+ra_re, N=800, k=10",
    dataset_id="uoft-cs/cifar100",
    split="train",
    eval_split="test",
    image_column="img",
    label_column="fine_label",
    num_classes=100,
    class_names=CLASS_NAMES,
    teacher_base=FINETUNE_BASE,
    teacher_seeds=FINETUNE_SEEDS,
    teacher_input_size=FINETUNE_INPUT_SIZE,
    teacher_epochs=FINETUNE_EPOCHS["cifar100_plus"],
    policy="rrc+ra_re",
    num_samples=800,
    topk=10,
    layout="self-contained",
    license="unknown",
    source_citation=CITATION,
    notes=FINETUNE_NOTES + (
        "Layout self-contained: 32 x 32 images that CIFAR's authors distribute freely and every major library "
        "redistributes; the license field stays `unknown` as on the source repo.",
    ),
)
