"""RFC 6749: the token endpoint request, client authentication (§2.3) and the
``client_credentials`` grant (§4.4)."""

from sts.oauth.rfc6749.client_auth import (
    Authenticated,
    ClientAuthenticator,
    ClientSecretBasic,
    ClientSecretPost,
)
from sts.oauth.rfc6749.grants import ClientCredentialsGrant
from sts.oauth.rfc6749.request import OAuthRequest

__all__ = [
    "Authenticated",
    "ClientAuthenticator",
    "ClientCredentialsGrant",
    "ClientSecretBasic",
    "ClientSecretPost",
    "OAuthRequest",
]
