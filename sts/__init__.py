"""Chain STS: an OAuth 2.0 token-exchange delegation authority.

Importing ``sts`` pulls in nothing heavy; the server lives in :mod:`sts.web`, the console
command in :mod:`sts.cli`.
"""

__version__ = "0.1.0"
