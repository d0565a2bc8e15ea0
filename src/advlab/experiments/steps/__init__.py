"""The experiment functions the presets name; importing this package registers them in ``EXPERIMENTS``.

One module per paper; shared helpers (data at a scale, training from the settings, accuracies) in ``common``.
"""

from advlab.experiments.steps import (  # noqa: F401 - registration
    cnn_adversarial,
    exploring_input_spaces,
    fooling_noise,
    pni,
    stochastic_feedforward,
)
