"""ImageNet+: ImageNet-1k train reinforced by a 4 x IG-ResNeXt-101 ensemble, ``rrc+ra_re``, N = 400, k = 10 (paper
Sec. 2.2, the variant the paper calls ImageNet+), published metadata-only.

Source: ``ILSVRC/imagenet-1k`` (gated: accept its terms and log in). Expected columns: ``image`` (Image, JPEG) and
``label`` (ClassLabel, 1,000 classes in WordNet-synset order); split ``train`` has 1,281,167 rows. The recipe does not
pin class names: timm's ImageNet lemmas (``timm.data.ImageNetInfo``) name two synsets "crane", which a ClassLabel
cannot hold, so the names are the source's own. The id and columns could not be checked against the Hub from here (no
network): a different layout is refused by ``hf-dr reinforce`` with the column it lacks.

Keys: the repo has no key column, and its train split holds byte-identical files under different names, which content
keys (a hash of the image bytes) refuse. Rows are keyed by path (``key_from="path"``, ``--key-from path``): the file
name ``datasets`` stores in each undecoded image cell, for this repo's Parquet files the original ImageNet file name
(``n01440764_10026.JPEG``), unique across the split. A row without a stored path, or two rows sharing a name, are
refused naming the rows; every shard also stores an 8-byte digest of each image, so a changed image under its name is
refused by ``hf_dr.load_reinforced``.

Teacher substitutions (checked on timm 1.0.31): the paper's ``ig_resnext101_32x{8,16,32,48}d`` are deprecated names
that all resolve to ``resnext101_32x8d.fb_wsl_ig1b_ft_in1k`` (``register_model_deprecations`` in
``timm/models/resnet.py``), so an ensemble built from them is one model four times. The members are pinned by exact
pretrained tags instead, and ``resnext101_32x48d`` (not registered in timm 1.0.31) is replaced by
``resnext101_32x16d.fb_swsl_ig1b_ft_in1k``: same architecture family, pre-trained on the same Instagram-1B images
(semi-weakly supervised) and fine-tuned on ImageNet-1k.
"""

from hf_dr.generate.builder import Builder

TEACHER = (
    "resnext101_32x8d.fb_wsl_ig1b_ft_in1k",
    "resnext101_32x16d.fb_wsl_ig1b_ft_in1k",
    "resnext101_32x32d.fb_wsl_ig1b_ft_in1k",
    "resnext101_32x16d.fb_swsl_ig1b_ft_in1k",
)

CITATION = """@article{russakovsky2015imagenet,
  title   = {{ImageNet} Large Scale Visual Recognition Challenge},
  author  = {Russakovsky, Olga and Deng, Jia and Su, Hao and Krause, Jonathan and Satheesh, Sanjeev and Ma, Sean and
             Huang, Zhiheng and Karpathy, Andrej and Khosla, Aditya and Bernstein, Michael and Berg, Alexander C. and
             Fei-Fei, Li},
  journal = {International Journal of Computer Vision},
  volume  = {115},
  number  = {3},
  pages   = {211--252},
  year    = {2015}
}"""

NOTES = (
    "Teacher names: the paper's `ig_resnext101_32x{8,16,32,48}d` are deprecated aliases in timm 1.0.31 that all load "
    "`resnext101_32x8d.fb_wsl_ig1b_ft_in1k`, so the four members are pinned by exact pretrained tags, and the run "
    "refuses members with identical weights (state-dict SHA-256).",
    "`resnext101_32x48d.fb_wsl_ig1b_ft_in1k` is not registered in timm 1.0.31; the fourth member is "
    "`resnext101_32x16d.fb_swsl_ig1b_ft_in1k` (ResNeXt-101 pre-trained on the same Instagram-1B images, "
    "semi-weakly supervised, fine-tuned on ImageNet-1k), which keeps a 4-member IG-1B ResNeXt ensemble. Expect the "
    "ensemble to be slightly weaker than the paper's, whose strongest member (32x48d) it lacks.",
    "The four teachers' weights are licensed CC-BY-NC-4.0: the stored soft labels are outputs of non-commercial "
    "models; check whether that restricts your use.",
    "Layout metadata-only: ImageNet's terms of access forbid redistributing the images; the reinforced repo holds "
    "keys, labels and soft labels, and `hf_dr.load_reinforced` joins the images from the gated source repo.",
    "Rows are keyed by the image file's name as the source's Parquet files store it (e.g. `n01440764_10026.JPEG`; "
    "`--key-from path`): the source has no key column, and its train split holds byte-identical files under "
    "different names, which keys from a hash of the image bytes refuse. Each shard also stores an 8-byte BLAKE2b of "
    "every image, so `hf_dr.load_reinforced` refuses a source whose image changed under the same name.",
)

BUILDER = Builder(
    name="imagenet_plus",
    pretty_name="ImageNet+",
    description="ImageNet-1k train (1.28M), 4 x IG-ResNeXt-101, rrc+ra_re, N=400, k=10",
    dataset_id="ILSVRC/imagenet-1k",
    split="train",
    eval_split="validation",
    image_column="image",
    label_column="label",
    key_from="path",
    num_classes=1000,
    teacher=TEACHER,
    policy="rrc+ra_re",
    num_samples=400,
    topk=10,
    layout="metadata-only",
    license="other",
    source_citation=CITATION,
    notes=NOTES,
)
