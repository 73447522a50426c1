"""RFC 8693: OAuth 2.0 Token Exchange, with identity chaining in nested ``act`` claims."""

from sts.oauth.rfc8693.grant import TokenExchangeGrant
from sts.oauth.rfc8693.params import (
    ACCESS_TOKEN_TYPE,
    ID_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    ExchangeParams,
    parse_exchange_params,
)

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "ID_TOKEN_TYPE",
    "JWT_TOKEN_TYPE",
    "ExchangeParams",
    "TokenExchangeGrant",
    "parse_exchange_params",
]
