"""The default augmentation policies, by name: one place, read by the registry, ``reinforce``, plain training and the
CLI. Imports nothing, so that ``hf-dr CMD --help`` can show them without loading torch."""

DEFAULT_POLICY = "rrc+ra_re"  # reinforcement (the paper's ImageNet+ recipe): RandomResizedCrop, RandAugment, erasing
PLAIN_POLICY = "rrc"  # plain training without mixing, and fine-tuning teachers: RandomResizedCrop and flip
