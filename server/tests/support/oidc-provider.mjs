// A real OpenID provider for cutover's tests: the certified `oidc-provider` package from npm
// (installed by `./x test`), on a loopback port of its own, with users in groups.
// Env: OIDC_PROVIDER (the package's entry file), RP_REDIRECT (cutover's callback URL),
//      OP_STATE_DIR (users.json and keys.json live there), SKIP_CONSENT=1 (no consent page),
//      ID_TOKEN_TTL (seconds, default 60). It listens on a free port and prints
//      `OP listening on <issuer>` once ready.
// Test-only controls on the same port: GET/PUT /__admin/users/:id (JSON body = claims),
//      POST /__admin/rotate?keep_old=1 (a new signing key; the old one kept if keep_old=1).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { pathToFileURL } from 'node:url';

const { default: Provider } = await import(pathToFileURL(process.env.OIDC_PROVIDER).href);
const REDIRECT = process.env.RP_REDIRECT;
const DIR = process.env.OP_STATE_DIR;
const USERS_FILE = path.join(DIR, 'users.json');
const KEYS_FILE = path.join(DIR, 'keys.json');
const ID_TOKEN_TTL = Number(process.env.ID_TOKEN_TTL || 60);

// ---- users: re-read on every findAccount, so a test can edit users.json between sign-ins
const DEFAULT_USERS = {
  alice: { email: 'alice@example.test', email_verified: true, name: 'Alice Liddell', preferred_username: 'alice', groups: ['admins', 'staff'] },
  bob: { email: 'bob@example.test', email_verified: true, name: 'Bob Builder', preferred_username: 'bob', groups: ['staff'] },
};
if (!fs.existsSync(USERS_FILE)) fs.writeFileSync(USERS_FILE, JSON.stringify(DEFAULT_USERS, null, 2));
const loadUsers = () => JSON.parse(fs.readFileSync(USERS_FILE, 'utf8'));

// ---- signing keys: private RSA JWKs; first key signs, all are published at /jwks
function newRsaJwk() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `k-${crypto.randomUUID()}`, use: 'sig', alg: 'RS256' };
}
if (!fs.existsSync(KEYS_FILE)) fs.writeFileSync(KEYS_FILE, JSON.stringify({ keys: [newRsaJwk()] }));
const loadKeys = () => JSON.parse(fs.readFileSync(KEYS_FILE, 'utf8'));

function config(jwks) {
  return {
    clients: [{
      client_id: 'test-rp',
      client_secret: 'test-rp-secret-0123456789abcdef',
      redirect_uris: [REDIRECT],           // web client; http + 127.0.0.1 is accepted for code flow
      post_logout_redirect_uris: [REDIRECT.replace(/\/auth\/callback$/, '/')],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    }],
    jwks,
    pkce: { required: () => true },         // PKCE (S256 only) mandatory for every client
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    conformIdTokenClaims: false,            // put scope-granted claims into the ID token itself
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['test-cookie-key-1'] },
    ttl: {
      IdToken: ID_TOKEN_TTL,
      AccessToken: 300,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    ...(process.env.SKIP_CONSENT === '1' ? {
      // auto-approve everything the client asks for -> no consent page
      async loadExistingGrant(ctx) {
        const grantId = ctx.oidc.result?.consent?.grantId
          || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
        if (grantId) return ctx.oidc.provider.Grant.find(grantId);
        const grant = new ctx.oidc.provider.Grant({
          clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId,
        });
        grant.addOIDCScope('openid email profile groups');
        await grant.save();
        return grant;
      },
    } : {}),
    async findAccount(ctx, id) {
      const u = loadUsers()[id];
      if (!u) return undefined;              // unknown login -> sign-in fails
      return {
        accountId: id,
        async claims(use, scope) { return { sub: id, ...u }; }, // oidc-provider filters by scope
      };
    },
    renderError(ctx, out, err) {
      ctx.type = 'json';
      ctx.body = { ...out, detail: err?.message };
    },
  };
}

let ISSUER;
function makeProvider() {
  const p = new Provider(ISSUER, config(loadKeys()));
  p.on('server_error', (ctx, err) => console.error('server_error', err));
  return p;
}
let provider;
let handler;

const readBody = (req) => new Promise((res, rej) => {
  let b = ''; req.on('data', (c) => { b += c; }); req.on('end', () => res(b)); req.on('error', rej);
});
const json = (res, code, obj) => { res.writeHead(code, { 'content-type': 'application/json' }); res.end(JSON.stringify(obj)); };

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, ISSUER);
  if (!url.pathname.startsWith('/__admin/')) return handler(req, res);
  try {
    if (url.pathname === '/__admin/health') return json(res, 200, { ok: true, issuer: ISSUER });
    const m = url.pathname.match(/^\/__admin\/users\/([^/]+)$/);
    if (m && req.method === 'GET') return json(res, 200, loadUsers()[m[1]] ?? null);
    if (m && req.method === 'PUT') {
      const users = loadUsers(); users[m[1]] = JSON.parse(await readBody(req));
      fs.writeFileSync(USERS_FILE, JSON.stringify(users, null, 2));
      return json(res, 200, users[m[1]]);
    }
    if (url.pathname === '/__admin/rotate' && req.method === 'POST') {
      const keys = [newRsaJwk(), ...(url.searchParams.get('keep_old') === '1' ? loadKeys().keys : [])];
      fs.writeFileSync(KEYS_FILE, JSON.stringify({ keys }));
      provider = makeProvider();            // in-memory adapter storage is module-global: sessions/grants survive
      handler = provider.callback();
      return json(res, 200, { kids: keys.map((k) => k.kid) });
    }
    return json(res, 404, { error: 'not_found' });
  } catch (e) { return json(res, 500, { error: String(e) }); }
});
server.listen(0, '127.0.0.1', () => {
  ISSUER = `http://127.0.0.1:${server.address().port}`;
  provider = makeProvider();
  handler = provider.callback();
  console.log(`OP listening on ${ISSUER}`);
});
