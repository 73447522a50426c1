"""RFC 8693: OAuth 2.0 Token Exchange, with identity chaining in nested ``act`` claims."""

from sts.oauth.rfc8693.grant import TokenExchange, TokenExchangeGrant
from sts.oauth.rfc8693.params import ExchangeParams, parse_exchange_params

__all__ = [
    "ExchangeParams",
    "TokenExchange",
    "TokenExchangeGrant",
    "parse_exchange_params",
]
