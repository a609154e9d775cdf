// The real OpenID provider the mailgrant tests run against: npm oidc-provider, configured from
// the environment, with a fixed account table and a few /__test/ control endpoints.
//   PORT (required), ACCESS_TOKEN_TTL (s, default 3600), CLIENTS_JSON (array of client metadata)
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import querystring from 'node:querystring';

import Provider from 'oidc-provider';

const PORT = Number(process.env.PORT);
if (!PORT) throw new Error('PORT is required');
const ISSUER = `http://127.0.0.1:${PORT}`;
let accessTokenTtl = Number(process.env.ACCESS_TOKEN_TTL || 3600);

export const ACCOUNTS = {
  'alice@example.test': {
    password: 'alice-password', sub: 'alice', name: 'Alice Example', given_name: 'Alice',
    family_name: 'Example', groups: ['staff', 'support'],
  },
  'bob@example.test': {
    password: 'bob-password', sub: 'bob', name: 'Bob Example', given_name: 'Bob',
    family_name: 'Example', groups: ['support'],
  },
  'carol@example.test': {
    password: 'carol-password', sub: 'carol', name: 'Carol Example', given_name: 'Carol',
    family_name: 'Example', groups: [],
  },
};
const BY_SUB = Object.fromEntries(Object.entries(ACCOUNTS).map(([email, a]) => [a.sub, { email, ...a }]));

// A plain in-memory adapter: the package's own is an LRU of 1,000 entries, which a long test
// session could overflow (and so lose a live refresh token).
const stores = new Map();
class MapAdapter {
  constructor(name) {
    this.name = name;
    if (!stores.has(name)) stores.set(name, new Map());
    this.store = stores.get(name);
  }
  live(id) {
    const entry = this.store.get(id);
    if (!entry) return undefined;
    if (entry.expiresAt && entry.expiresAt < Date.now()) { this.store.delete(id); return undefined; }
    return entry.payload;
  }
  async upsert(id, payload, expiresIn) {
    this.store.set(id, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : 0 });
  }
  async find(id) { return this.live(id); }
  async findByUid(uid) {
    for (const [id] of this.store) { const p = this.live(id); if (p?.uid === uid) return p; }
    return undefined;
  }
  async findByUserCode(code) {
    for (const [id] of this.store) { const p = this.live(id); if (p?.userCode === code) return p; }
    return undefined;
  }
  async consume(id) { const p = this.live(id); if (p) p.consumed = Math.floor(Date.now() / 1000); }
  async destroy(id) { this.store.delete(id); }
  async revokeByGrantId(grantId) {
    for (const store of stores.values()) {
      for (const [id, entry] of store) if (entry.payload?.grantId === grantId) store.delete(id);
    }
  }
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key-1', use: 'sig', alg: 'RS256' };

const stats = {};
function resetStats() {
  Object.assign(stats, {
    token: {}, refresh_by_client: {}, token_errors: {}, grants_revoked: 0, introspections: 0,
  });
}
resetStats();
const bump = (obj, key) => { obj[key] = (obj[key] || 0) + 1; };

const clientDefaults = {
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
};
const initialClients = JSON.parse(process.env.CLIENTS_JSON || '[]').map((c) => ({ ...clientDefaults, ...c }));

const provider = new Provider(ISSUER, {
  adapter: MapAdapter,
  clients: initialClients,
  jwks: { keys: [signingKey] },
  async findAccount(ctx, id) {
    const account = BY_SUB[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, email: account.email, email_verified: true, name: account.name,
          given_name: account.given_name, family_name: account.family_name,
          preferred_username: account.email, groups: account.groups,
        };
      },
    };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups', 'mail'],
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  rotateRefreshToken: true,
  features: {
    devInteractions: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true },
    userinfo: { enabled: true },
  },
  // Dovecot validates mail tokens by introspection and reads the user from `email`.
  async extraTokenClaims(ctx, token) {
    const account = token.accountId && BY_SUB[token.accountId];
    return account ? { email: account.email } : undefined;
  },
  ttl: {
    AccessToken: () => accessTokenTtl,
    ClientCredentials: () => accessTokenTtl,
    IdToken: 3600,
    RefreshToken: 14 * 24 * 3600,
    AuthorizationCode: 600,
    Interaction: 3600,
    Session: 24 * 3600,
    Grant: 14 * 24 * 3600,
    DeviceCode: 600,
  },
  renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
});
provider.proxy = false;

provider.on('grant.success', (ctx) => {
  const grantType = ctx.oidc.params?.grant_type || 'unknown';
  bump(stats.token, grantType);
  if (grantType === 'refresh_token') bump(stats.refresh_by_client, ctx.oidc.client?.clientId);
});
provider.on('grant.error', (ctx, err) => bump(stats.token_errors, err.error || 'unknown'));
provider.on('grant.revoked', () => { stats.grants_revoked += 1; });
provider.on('introspection.success', () => { stats.introspections += 1; });
// Keep stdout for the READY line; errors the provider reports are not test failures by
// themselves (tests provoke many), so they stay off the console.
provider.on('server_error', (ctx, err) => console.error('server_error', err));

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString();
}

function send(res, status, body) {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

async function testControl(req, res, path) {
  if (req.method === 'POST' && path === '/__test/clients') {
    const metadata = { ...clientDefaults, ...JSON.parse(await readBody(req)) };
    await new MapAdapter('Client').upsert(metadata.client_id, metadata);
    return send(res, 200, { client_id: metadata.client_id });
  }
  if (req.method === 'GET' && path === '/__test/stats') return send(res, 200, stats);
  if (req.method === 'POST' && path === '/__test/stats/reset') { resetStats(); return send(res, 200, stats); }
  if (req.method === 'POST' && path === '/__test/ttl') {
    accessTokenTtl = Number(JSON.parse(await readBody(req)).access_token_ttl);
    return send(res, 200, { access_token_ttl: accessTokenTtl });
  }
  return send(res, 404, { error: 'not_found' });
}

const providerCallback = provider.callback();
const server = http.createServer(async (req, res) => {
  try {
    const path = new URL(req.url, ISSUER).pathname;
    if (path.startsWith('/__test/')) return await testControl(req, res, path);
    // The dev login page accepts any login; an unknown one later breaks /auth (PEERS.md).
    // Check the fixed account table first and send a wrong login back to the form.
    const interaction = path.match(/^\/interaction\/([^/]+)$/);
    if (req.method === 'POST' && interaction) {
      const body = querystring.parse(await readBody(req));
      if (body.prompt === 'login') {
        const account = ACCOUNTS[body.login];
        if (!account || account.password !== body.password) {
          res.writeHead(303, { location: path });
          return res.end();
        }
        body.login = account.sub;
      }
      req.body = body; // oidc-provider reads an already parsed body from req.body
    }
    return providerCallback(req, res);
  } catch (err) {
    console.error(err);
    if (!res.headersSent) send(res, 500, { error: 'server_error' });
  }
});

server.listen(PORT, '127.0.0.1', () => {
  process.stdout.write(`READY ${ISSUER}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
