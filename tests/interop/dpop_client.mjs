// A DPoP client from another ecosystem: oauth4webapi obtains a DPoP-bound token from Chain STS
// (client_credentials, retrying once when the STS asks for its nonce) and calls a resource with
// it. Prints one JSON line: the token type, the resource's status and answer.
import * as oauth from 'oauth4webapi';

const [issuer, clientId, clientSecret, audience, scope, resourceUrl] = process.argv.slice(2);
const insecure = { [oauth.allowInsecureRequests]: true }; // loopback test servers speak http

const as = await oauth.processDiscoveryResponse(
  new URL(issuer),
  await oauth.discoveryRequest(new URL(issuer), { algorithm: 'oauth2', ...insecure }),
);
const client = { client_id: clientId };
const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
const options = { DPoP, ...insecure };

async function token() {
  const response = await oauth.clientCredentialsGrantRequest(
    as, client, oauth.ClientSecretBasic(clientSecret), { audience, scope }, options,
  );
  return oauth.processClientCredentialsResponse(as, client, response);
}

let result;
let retried = false;
try {
  result = await token();
} catch (err) {
  if (!oauth.isDPoPNonceError(err)) throw err;
  retried = true;
  result = await token();
}
const answer = await oauth.protectedResourceRequest(
  result.access_token, 'GET', new URL(resourceUrl), undefined, undefined, options,
);
console.log(JSON.stringify({
  token_type: result.token_type,
  nonce_retry: retried,
  status: answer.status,
  body: await answer.json(),
}));
