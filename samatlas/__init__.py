"""samatlas for notebooks and scripts: ``from samatlas import Catalog``."""

from samatlas.notebook import Catalog

__all__ = ["Catalog"]
