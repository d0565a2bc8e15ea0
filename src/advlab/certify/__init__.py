"""Certified robustness by randomized smoothing (Cohen, Rosenfeld, Kolter 2019, arXiv:1902.02918).

* :class:`SmoothedClassifier`: PREDICT and CERTIFY for one image;
* :func:`certify_dataset`: CERTIFY over a dataset, seeded per image, resumable, with the certified-accuracy curve;
* :mod:`advlab.certify.bounds`: the exact binomial statistics (Clopper-Pearson bound, binomial test).

Example::

    result = certify_dataset(model, (x, y), sigma=0.25, n0=100, n=10_000, alpha=0.001)
    print(result.certified_accuracy(0.5), result.abstain_rate)
"""

from advlab.certify.bounds import binomial_two_sided_p_value, clopper_pearson_lower
from advlab.certify.dataset import CertificationResult, certify_dataset
from advlab.certify.smoothing import ABSTAIN, Certificate, SmoothedClassifier

__all__ = ["ABSTAIN", "Certificate", "CertificationResult", "SmoothedClassifier", "binomial_two_sided_p_value",
           "certify_dataset", "clopper_pearson_lower"]
