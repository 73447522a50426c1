"""RFC 6749: the token endpoint request, client authentication (§2.3) and the
``client_credentials`` grant (§4.4)."""

from sts.oauth.rfc6749.client_auth import (
    authenticate_client_secret_basic,
    authenticate_client_secret_post,
)
from sts.oauth.rfc6749.grants import ClientCredentialsGrant
from sts.oauth.rfc6749.request import TokenRequest

__all__ = [
    "ClientCredentialsGrant",
    "TokenRequest",
    "authenticate_client_secret_basic",
    "authenticate_client_secret_post",
]
