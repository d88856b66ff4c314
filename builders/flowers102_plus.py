"""Flowers-102+: Oxford Flowers-102 reinforced by 4 ResNet-152 fine-tuned on it, ``rrc+ra_re``, N = 8000, k = 10
(paper Sec. 2.3: the training set has only 1,020 images, so each stores 10 x more augmentations).

Source: ``dpdl-benchmark/oxford_flowers102``, chosen over ``nelorth/oxford-flowers`` because it keeps the official
splits (``train`` 1,020, ``validation`` 1,020, ``test`` 6,149) and named labels; the other repo re-splits the data and
names its labels "1".."102" in string order. Expected columns: ``image`` (Image) and ``label`` (ClassLabel, 102
classes, the names below in the official order). The id, columns and names could not be checked against the Hub from
here (no network): a different layout is refused by ``hf-dr reinforce`` with the column it lacks. Rows are keyed by a
hash of the image bytes.
"""

from hf_dr.generate.builder import Builder

from ._common import FINETUNE_BASE, FINETUNE_EPOCHS, FINETUNE_INPUT_SIZE, FINETUNE_NOTES, FINETUNE_SEEDS

CLASS_NAMES = (
    "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea", "english marigold", "tiger lily",
    "moon orchid", "bird of paradise", "monkshood", "globe thistle", "snapdragon", "colt's foot", "king protea",
    "spear thistle", "yellow iris", "globe-flower", "purple coneflower", "peruvian lily", "balloon flower",
    "giant white arum lily", "fire lily", "pincushion flower", "fritillary", "red ginger", "grape hyacinth",
    "corn poppy", "prince of wales feathers", "stemless gentian", "artichoke", "sweet william", "carnation",
    "garden phlox", "love in the mist", "mexican aster", "alpine sea holly", "ruby-lipped cattleya", "cape flower",
    "great masterwort", "siam tulip", "lenten rose", "barbeton daisy", "daffodil", "sword lily", "poinsettia",
    "bolero deep blue", "wallflower", "marigold", "buttercup", "oxeye daisy", "common dandelion", "petunia",
    "wild pansy", "primula", "sunflower", "pelargonium", "bishop of llandaff", "gaura", "geranium", "orange dahlia",
    "pink-yellow dahlia", "cautleya spicata", "japanese anemone", "black-eyed susan", "silverbush",
    "californian poppy", "osteospermum", "spring crocus", "bearded iris", "windflower", "tree poppy", "gazania",
    "azalea", "water lily", "rose", "thorn apple", "morning glory", "passion flower", "lotus", "toad lily",
    "anthurium", "frangipani", "clematis", "hibiscus", "columbine", "desert-rose", "tree mallow", "magnolia",
    "cyclamen", "watercress", "canna lily", "hippeastrum", "bee balm", "ball moss", "foxglove", "bougainvillea",
    "camellia", "mallow", "mexican petunia", "bromelia", "blanket flower", "trumpet creeper", "blackberry lily",
)

CITATION = """@inproceedings{nilsback2008automated,
  title     = {Automated Flower Classification over a Large Number of Classes},
  author    = {Nilsback, Maria-Elena and Zisserman, Andrew},
  booktitle = {Sixth Indian Conference on Computer Vision, Graphics \\& Image Processing},
  pages     = {722--729},
  year      = {2008}
}"""

BUILDER = Builder(
    name="flowers102_plus",
    pretty_name="Flowers-102+",
    description="Oxford Flowers-102 train (1,020), 4 x fine-tuned ResNet-152, rrc+ra_re, N=8000, k=10",
    dataset_id="dpdl-benchmark/oxford_flowers102",
    split="train",
    eval_split="validation",
    image_column="image",
    label_column="label",
    num_classes=102,
    class_names=CLASS_NAMES,
    teacher_base=FINETUNE_BASE,
    teacher_seeds=FINETUNE_SEEDS,
    teacher_input_size=FINETUNE_INPUT_SIZE,
    teacher_epochs=FINETUNE_EPOCHS["flowers102_plus"],
    policy="rrc+ra_re",
    num_samples=8000,
    topk=10,
    layout="self-contained",
    license="unknown",
    source_citation=CITATION,
    notes=FINETUNE_NOTES + (
        "Teachers are evaluated on the `validation` split so that `test` stays untouched for students.",
        "Layout self-contained: 1,020 images (about 45 MB) that the source repo already redistributes; the license "
        "field stays `unknown` as on the source. Push with `--layout metadata-only` if that is not acceptable.",
    ),
)
