"""Food-101+: Food-101 reinforced by 4 ResNet-152 fine-tuned on it, ``rrc+ra_re``, N = 800, k = 10 (paper Sec. 2.3).

Source: ``ethz/food101`` (splits ``train`` 75,750 and ``validation`` 25,250, the official test images). Expected
columns: ``image`` (Image, JPEG, longest side 512) and ``label`` (ClassLabel, 101 classes, the names below in this
order). The id, columns and names could not be checked against the Hub from here (no network): a different layout is
refused by ``hf-dr reinforce`` with the column it lacks. No key column: rows are keyed by a hash of the image bytes.
"""

from hf_dr.generate.builder import Builder

from ._common import FINETUNE_BASE, FINETUNE_EPOCHS, FINETUNE_INPUT_SIZE, FINETUNE_NOTES, FINETUNE_SEEDS

CLASS_NAMES = (
    "apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio", "beef_tartare", "beet_salad", "beignets", "bibimbap",
    "bread_pudding", "breakfast_burrito", "bruschetta", "caesar_salad", "cannoli", "caprese_salad", "carrot_cake",
    "ceviche", "cheesecake", "cheese_plate", "chicken_curry", "chicken_quesadilla", "chicken_wings", "chocolate_cake",
    "chocolate_mousse", "churros", "clam_chowder", "club_sandwich", "crab_cakes", "creme_brulee", "croque_madame",
    "cup_cakes", "deviled_eggs", "donuts", "dumplings", "edamame", "eggs_benedict", "escargots", "falafel",
    "filet_mignon", "fish_and_chips", "foie_gras", "french_fries", "french_onion_soup", "french_toast",
    "fried_calamari", "fried_rice", "frozen_yogurt", "garlic_bread", "gnocchi", "greek_salad",
    "grilled_cheese_sandwich", "grilled_salmon", "guacamole", "gyoza", "hamburger", "hot_and_sour_soup", "hot_dog",
    "huevos_rancheros", "hummus", "ice_cream", "lasagna", "lobster_bisque", "lobster_roll_sandwich",
    "macaroni_and_cheese", "macarons", "miso_soup", "mussels", "nachos", "omelette", "onion_rings", "oysters",
    "pad_thai", "paella", "pancakes", "panna_cotta", "peking_duck", "pho", "pizza", "pork_chop", "poutine",
    "prime_rib", "pulled_pork_sandwich", "ramen", "ravioli", "red_velvet_cake", "risotto", "samosa", "sashimi",
    "scallops", "seaweed_salad", "shrimp_and_grits", "spaghetti_bolognese", "spaghetti_carbonara", "spring_rolls",
    "steak", "strawberry_shortcake", "sushi", "tacos", "takoyaki", "tiramisu", "tuna_tartare", "waffles",
)

CITATION = """@inproceedings{bossard14,
  title     = {Food-101 -- Mining Discriminative Components with Random Forests},
  author    = {Bossard, Lukas and Guillaumin, Matthieu and Van Gool, Luc},
  booktitle = {European Conference on Computer Vision},
  year      = {2014}
}"""

BUILDER = Builder(
    name="food101_plus",
    pretty_name="Food-101+",
    description="Food-101 train (75.75k), 4 x fine-tuned ResNet-152, rrc+ra_re, N=800, k=10",
    dataset_id="ethz/food101",
    split="train",
    eval_split="validation",
    image_column="image",
    label_column="label",
    num_classes=101,
    class_names=CLASS_NAMES,
    teacher_base=FINETUNE_BASE,
    teacher_seeds=FINETUNE_SEEDS,
    teacher_input_size=FINETUNE_INPUT_SIZE,
    teacher_epochs=FINETUNE_EPOCHS["food101_plus"],
    policy="rrc+ra_re",
    num_samples=800,
    topk=10,
    layout="metadata-only",
    license="unknown",
    source_citation=CITATION,
    notes=FINETUNE_NOTES + (
        "Layout metadata-only: the 75,750 photos (about 5 GB) come from Foodspotting and are not ETH Zurich's; its "
        "license agreement allows scientific fair use only and sends other uses to the picture owners. The "
        "reinforced repo holds keys and soft labels and `hf_dr.load_reinforced` joins the images from the source.",
    ),
)
