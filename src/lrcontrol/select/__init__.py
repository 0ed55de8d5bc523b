"""Algorithm selection for LR control: instances, features, selectors and `auto()` (docs/selection.md)."""
