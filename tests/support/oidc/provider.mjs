// A real OpenID provider (node-oidc-provider, OpenID Certified) for
// workspace-gate's end-to-end tests and the local try-out.
//
// Any login is accepted (devInteractions: login form, then consent form); the
// account id, `preferred_username` and `name` are the login typed in, so
// `alice` logs in as subject `alice`. Access tokens are opaque and usable at
// the userinfo endpoint (`<issuer>/me`), which is what the GitLab GraphQL test
// double resolves them through.
//
// Usage:
//   node provider.mjs [--port N] --client ID:SECRET:REDIRECT_URI[,REDIRECT_URI...]
//   (or OIDC_PORT, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URIS
//   comma-separated in the environment)
//   OIDC_ACCESS_TOKEN_TTL: access token lifetime in seconds (default 3600;
//   tests of the refresh path make it short)
//
// Prints exactly one line `ready <issuer>` on stdout once it listens on
// 127.0.0.1 (port 0 = pick a free one). Stops on SIGTERM/SIGINT or when stdin
// closes (so it never outlives the test process that started it).

import http from 'node:http';
import Provider from 'oidc-provider';

function arg(name) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const port = Number(arg('port') ?? process.env.OIDC_PORT ?? 0);
let clientId = process.env.OIDC_CLIENT_ID;
let clientSecret = process.env.OIDC_CLIENT_SECRET;
let redirectUris = (process.env.OIDC_REDIRECT_URIS ?? '').split(',').filter(Boolean);
const clientArg = arg('client');
if (clientArg) {
  // ID:SECRET:URI[,URI]; URIs contain ':' themselves, so split only twice.
  const first = clientArg.indexOf(':');
  const second = clientArg.indexOf(':', first + 1);
  clientId = clientArg.slice(0, first);
  clientSecret = clientArg.slice(first + 1, second);
  redirectUris = clientArg.slice(second + 1).split(',').filter(Boolean);
}
if (!clientId || !clientSecret || redirectUris.length === 0) {
  console.error('provider.mjs: need --client ID:SECRET:REDIRECT_URI[,...]');
  process.exit(2);
}

const server = http.createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: redirectUris,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        // Accept both ways of sending the secret at the token endpoint.
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    // PKCE for every client, confidential ones included (what the gate does).
    pkce: { required: () => true },
    // GitLab's scopes as far as the gate uses them; read_api is what the
    // gitlab authorizer needs for GraphQL.
    scopes: ['openid', 'profile', 'offline_access', 'read_api'],
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name'],
    },
    // Like GitLab, which issues a refresh token with every authorization-code
    // grant (standard OIDC would want scope offline_access plus
    // prompt=consent, which GitLab neither needs nor the gate sends).
    async issueRefreshToken(_ctx, client) {
      return client.grantTypeAllowed('refresh_token');
    },
    // Put profile claims into the ID token too (GitLab does).
    conformIdTokenClaims: false,
    async findAccount(_ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, preferred_username: id, name: id };
        },
      };
    },
    features: {
      devInteractions: { enabled: true },
      userinfo: { enabled: true },
      revocation: { enabled: true },
    },
    cookies: { keys: ['workspace-gate-test-provider-cookie-key'] },
    // One machine, one clock: no tolerance, so an expired access token is
    // refused at userinfo as soon as it expires (the default 15 s would keep
    // it alive past its expires_in).
    clockTolerance: 0,
    ttl: {
      AccessToken: Number(process.env.OIDC_ACCESS_TOKEN_TTL ?? 3600),
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 86400,
      Interaction: 600,
      Session: 86400,
      Grant: 86400,
    },
  });
  // Runs over plain http on loopback; nothing to trust from proxies.
  provider.proxy = false;
  server.on('request', provider.callback());
  console.log(`ready ${issuer}`);
});

function stop() {
  server.close();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The harness keeps our stdin open; when it dies, stdin closes and we stop.
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();
