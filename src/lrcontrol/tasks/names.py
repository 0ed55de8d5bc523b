"""The task families and sizes, without torch: the command line's help text and the sweep files' checks read them."""

FAMILIES = ("synthetic", "tabular", "image", "sequence", "language")
SIZES = ("smoke", "default")
