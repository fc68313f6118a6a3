"""Runnable demos: ``python -m demos.xor`` (no data needed) and the ImageNet-subset demo."""
