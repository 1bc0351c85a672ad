// A real OpenID provider for the single sign-on tests: panva's certified oidc-provider, on a free port of
// 127.0.0.1, with its own login page (dev interactions: any password, the login name is the subject).
//
// Input (environment):
//   AULA_OIDC_CLIENTS   JSON: [{"client_id", "client_secret", "redirect_uris": [...]}, ...]
//   AULA_OIDC_ACCOUNTS  JSON: {"<login>": {"email": ..., "email_verified": ..., "name": ..., any claim}, ...}
//   AULA_OIDC_ACCOUNTS_FILE  a file holding that JSON, read again at every sign-in (so a test can change
//                       what the provider says between sign-ins); the custom claims are those it holds at start.
// Output: one line on stdout, `READY <issuer>`, once it listens.
//
// Every claim of an account goes into the ID token (conformIdTokenClaims: false); claims other than the
// standard ones are released with the scope `org`. PKCE is required of every client.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import Provider from 'oidc-provider';

const clients = JSON.parse(process.env.AULA_OIDC_CLIENTS ?? '[]').map((c) => ({
  response_types: ['code'],
  grant_types: ['authorization_code'],
  token_endpoint_auth_method: 'client_secret_basic',
  ...c,
}));
const accountsFile = process.env.AULA_OIDC_ACCOUNTS_FILE;
const readAccounts = () =>
  JSON.parse(accountsFile ? readFileSync(accountsFile, 'utf8') : (process.env.AULA_OIDC_ACCOUNTS ?? '{}'));
const accounts = readAccounts();
const standard = ['sub', 'email', 'email_verified', 'name', 'locale'];
const custom = [...new Set(Object.values(accounts).flatMap((a) => Object.keys(a)))].filter(
  (k) => !standard.includes(k),
);

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'locale'],
      org: custom,
    },
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['a key for the tests only'] },
    async findAccount(ctx, sub) {
      const account = readAccounts()[sub];
      if (!account) return undefined;
      return { accountId: sub, async claims() { return { sub, ...account }; } };
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  server.on('request', provider.callback());
  console.log(`READY ${issuer}`);
});
