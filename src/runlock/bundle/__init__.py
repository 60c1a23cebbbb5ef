"""Reproduction bundles: a model's whole upstream in one signed file (docs/audit-bundle.md).

``export`` writes one, ``verify`` checks one offline with only the store's public key, and
``load`` imports one into any store, keeping every id, so ``rerun`` works there from it alone.
"""

from runlock.bundle.check import BundleCheck, verify
from runlock.bundle.export import ExportResult, export
from runlock.bundle.load import ImportResult, load

__all__ = ["BundleCheck", "ExportResult", "ImportResult", "export", "load", "verify"]
