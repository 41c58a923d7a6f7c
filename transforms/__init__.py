"""Pipeline steps. Modules under `transforms.objectives` and the codecs import without Beam."""
