"""advlab: attack, defend and evaluate image classifiers against adversarial examples."""

__version__ = "0.1.0"
