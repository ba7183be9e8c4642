"""The built-in dataset cards; importing this package registers them all."""

from catalog.datasets import sample_mni152, sample_radiomics  # noqa: F401
