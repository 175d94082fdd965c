"""Data augmentation (reference/augment.py): the adapters' mixin base.

The four augmentations are component records (reference/registry.py, family "augment":
``hflip``, ``rotate``, ``brightness``, ``resized_crop``), so an adapter implements them as
methods with the oracle's names and signatures (backends/torch_augment.py,
backends/jax_augment.py) and the standard properties (properties/test_components.py) and the
invariants (properties/test_augment_invariants.py) check them; the numpy backend runs the
oracle's forwards from the registry. A mixin's ``augment_conventions`` (rotate's
``sampling``, brightness' ``mode``) join the class's ``conventions`` (the class's own
declarations win), so the properties draw them and certificates list them.
"""

from __future__ import annotations

from typing import Any

from backends.base import merge_declarations

#: the augmentation components (records of reference/registry.py)
COMPONENTS = ("hflip", "rotate", "brightness", "resized_crop")


class AugmentBackend:
    """Mixin base for a Backend's augmentation methods and their conventions."""

    #: component -> {argument: the value it follows, or a tuple of those it supports}
    augment_conventions: dict[str, dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Merge ``augment_conventions`` into ``conventions``: the class's own
        ``conventions`` win over them, and they over the ones the class inherits."""
        own = dict(vars(cls).get("conventions", {}))
        super().__init_subclass__(**kwargs)
        merge_declarations(cls, "conventions", cls.augment_conventions, own)
