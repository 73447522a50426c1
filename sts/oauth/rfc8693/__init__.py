"""RFC 8693: OAuth 2.0 Token Exchange, with identity chaining in nested ``act`` claims."""

from sts.oauth.rfc8693.grant import TokenExchangeGrant
from sts.oauth.rfc8693.params import ExchangeParams, parse_exchange_params

__all__ = [
    "ExchangeParams",
    "TokenExchangeGrant",
    "parse_exchange_params",
]
