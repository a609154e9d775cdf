// The real OpenID provider the mailgrant tests run against: npm oidc-provider 9, configured from
// the environment, with a fixed account table and a few /__test/ control endpoints.
//
//   PORT               required; listens on 127.0.0.1 only, issuer http://127.0.0.1:PORT
//   ACCESS_TOKEN_TTL   seconds, default 3600 (changeable at run time: POST /__test/ttl)
//   ID_TOKEN_TTL       seconds, default 3600
//   REFRESH_TOKEN_TTL  seconds, default 14 days
//   CLIENTS_JSON       optional JSON array of client metadata registered at start
//   EXIT_WITH_STDIN=1  exit when stdin closes (the Python wrapper holds a pipe, so the provider
//                      goes away even when the test process is killed)
//
// Prints exactly one line on stdout, `READY <issuer>`, once listening; the rest goes to stderr.
import { generateKeyPairSync } from 'node:crypto';
import querystring from 'node:querystring';

import Provider from 'oidc-provider';

// oidc-provider prints its "default ... function called" notices with console.info, i.e. on
// stdout; keep stdout for the READY line.
console.info = console.error;
console.log = console.error;

const PORT = Number(process.env.PORT);
if (!Number.isInteger(PORT) || PORT <= 0) {
  console.error('PORT is required');
  process.exit(2);
}
const ISSUER = `http://127.0.0.1:${PORT}`;
const seconds = (name, fallback) => {
  const value = Number(process.env[name] || fallback);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
  return value;
};
let accessTokenTtl = seconds('ACCESS_TOKEN_TTL', 3600);
const idTokenTtl = seconds('ID_TOKEN_TTL', 3600);
const refreshTokenTtl = seconds('REFRESH_TOKEN_TTL', 14 * 24 * 3600);

// Mirrored in tests/servers/oidc.py (ACCOUNTS). Logins are the email addresses; sub is stable.
const ACCOUNTS = {
  'alice@example.test': {
    password: 'alice-password', sub: 'alice', name: 'Alice Example', given_name: 'Alice',
    family_name: 'Example', groups: ['staff', 'support'],
    address: { locality: 'Springfield', country: 'US' },
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
// Claims changed at run time (POST /__test/claims): a renamed email, a claim taken away (null).
const claimOverrides = {};
const BY_SUB = Object.fromEntries(
  Object.entries(ACCOUNTS).map(([email, account]) => [account.sub, { email, ...account }]),
);

// A plain in-memory adapter. The package's own is an LRU of 1,000 entries, which a long test
// session can overflow (and so lose a live refresh token). Clients live here too: clients given
// to the constructor are "static" and can never be replaced, so every client goes through this.
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
    if (entry.expiresAt && entry.expiresAt < Date.now()) {
      this.store.delete(id);
      return undefined;
    }
    return entry.payload;
  }

  findBy(field, value) {
    for (const id of this.store.keys()) {
      const payload = this.live(id);
      if (payload?.[field] === value) return payload;
    }
    return undefined;
  }

  async upsert(id, payload, expiresIn) {
    this.store.set(id, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : 0 });
  }

  async find(id) { return this.live(id); }

  async findByUid(uid) { return this.findBy('uid', uid); }

  async findByUserCode(userCode) { return this.findBy('userCode', userCode); }

  async consume(id) {
    const payload = this.live(id);
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) { this.store.delete(id); }

  async revokeByGrantId(grantId) {
    for (const store of stores.values()) {
      for (const [id, entry] of store) if (entry.payload?.grantId === grantId) store.delete(id);
    }
  }
}

// --- statistics for the tests --------------------------------------------------------------
const stats = {};
function resetStats() {
  Object.assign(stats, {
    token: {}, // token endpoint successes by grant_type
    refresh_by_client: {}, // refresh_token successes by client_id
    token_errors: {}, // token endpoint errors by error code
    grants_revoked: 0, // refresh token reuse, code reuse, revocation of a refresh token, logout
    introspections: 0, // calls of the introspection endpoint, whatever the answer
    revocations: 0, // calls of the revocation endpoint, whatever the answer
  });
}
resetStats();
const bump = (obj, key) => { obj[key] = (obj[key] || 0) + 1; };

// --- provider --------------------------------------------------------------------------------
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', use: 'sig', alg: 'RS256' };

const provider = new Provider(ISSUER, {
  adapter: MapAdapter,
  jwks: { keys: [signingKey] },
  async findAccount(ctx, id) {
    const account = BY_SUB[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        const claims = {
          sub: id,
          email: account.email,
          email_verified: true,
          name: account.name,
          given_name: account.given_name,
          family_name: account.family_name,
          preferred_username: account.email,
          groups: account.groups,
          ...(account.address ? { address: account.address } : {}),
          ...(claimOverrides[id] || {}),
        };
        for (const [name, value] of Object.entries(claims)) if (value === null) delete claims[name];
        return claims;
      },
    };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    groups: ['groups'],
    address: ['address'],
  },
  // A scope not listed here is silently dropped from the request.
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups', 'address', 'mail'],
  // Put the scope's claims in the ID token too (not only at userinfo).
  conformIdTokenClaims: false,
  // S256 is the only method oidc-provider 9 knows; this makes it mandatory for every client.
  pkce: { required: () => true },
  // Always rotate (the default rotates only after 70 % of the lifetime). Reusing a rotated refresh
  // token then revokes the whole grant: the tests' oracle for "refreshed exactly once".
  rotateRefreshToken: true,
  // The default rule, spelled out: offline_access (which oidc-provider keeps only with
  // prompt=consent) and refresh_token among the client's grant types.
  async issueRefreshToken(ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
  },
  // A client registered for either method is accepted with both (oidc-provider does not tell
  // them apart), so a test cannot catch the wrong one.
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  // RFC 9207 `iss` in authorization responses is always on in oidc-provider 9 (no option).
  features: {
    devInteractions: { enabled: true },
    introspection: {
      enabled: true,
      // The default policy without its notice: any (confidential) client may introspect.
      allowedPolicy: async () => true,
    },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true },
    userinfo: { enabled: true },
  },
  // Access tokens stay opaque (oidc-provider 9 issues JWTs only for a resource indicator's
  // server). Dovecot validates them by introspection and reads the user from `email`.
  async extraTokenClaims(ctx, token) {
    const account = token.accountId && BY_SUB[token.accountId];
    return account ? { email: account.email } : undefined;
  },
  ttl: {
    AccessToken: () => accessTokenTtl,
    ClientCredentials: () => accessTokenTtl,
    IdToken: idTokenTtl,
    RefreshToken: refreshTokenTtl,
    AuthorizationCode: 600,
    DeviceCode: 600,
    Interaction: 3600,
    Session: 24 * 3600,
    Grant: Math.max(refreshTokenTtl, 24 * 3600),
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
provider.on('server_error', (ctx, err) => {
  if (ctx.path === '/token') bump(stats.token_errors, 'server_error');
  console.error('server_error', ctx.method, ctx.path, err);
});

// --- clients -------------------------------------------------------------------------------
async function registerClient(input) {
  const metadata = { ...input };
  metadata.grant_types ??= ['authorization_code', 'refresh_token'];
  metadata.response_types ??= metadata.grant_types.includes('authorization_code') ? ['code'] : [];
  metadata.redirect_uris ??= [];
  metadata.token_endpoint_auth_method ??= 'client_secret_basic';
  await provider.Client.validate(metadata); // throws InvalidClientMetadata
  // Client.find() reads the adapter and caches by a hash of the metadata, so an upsert with new
  // metadata replaces the client at once.
  await provider.Client.adapter.upsert(metadata.client_id, metadata);
  return metadata;
}

// --- middleware in front of the provider's routes ------------------------------------------
async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString();
}

const jsonBody = async (ctx) => {
  const text = await readBody(ctx.req);
  return text ? JSON.parse(text) : {};
};

const control = {
  'POST /__test/clients': async (ctx) => {
    try {
      const metadata = await registerClient(await jsonBody(ctx));
      ctx.body = { client_id: metadata.client_id };
    } catch (err) {
      ctx.status = 400;
      ctx.body = { error: err.error || 'invalid_request', error_description: err.error_description || err.message };
    }
  },
  'POST /__test/claims': async (ctx) => {
    const { sub, claims } = await jsonBody(ctx);
    if (!BY_SUB[sub] || typeof claims !== 'object' || claims === null) {
      ctx.status = 400;
      ctx.body = { error: 'needs a known sub and a claims object ({} resets)' };
      return;
    }
    claimOverrides[sub] = Object.keys(claims).length ? claims : undefined;
    ctx.body = { sub, claims: claimOverrides[sub] || {} };
  },
  // What an account owner's "remove this app's access" does (Google's and Microsoft's account
  // pages): every grant of the account at the client ends, with its tokens.
  'POST /__test/revoke-access': async (ctx) => {
    const { sub, client_id: clientId } = await jsonBody(ctx);
    const grantIds = new Set();
    for (const store of stores.values()) {
      for (const entry of store.values()) {
        const p = entry.payload || {};
        if (p.grantId && p.accountId === sub && (!clientId || p.clientId === clientId)) grantIds.add(p.grantId);
      }
    }
    const adapter = new MapAdapter('Grant');
    for (const grantId of grantIds) {
      await adapter.revokeByGrantId(grantId);
      stats.grants_revoked += 1;
    }
    ctx.body = { revoked: grantIds.size };
  },
  'GET /__test/stats': (ctx) => { ctx.body = stats; },
  'POST /__test/stats/reset': (ctx) => { resetStats(); ctx.body = stats; },
  'POST /__test/ttl': async (ctx) => {
    const value = Number((await jsonBody(ctx)).access_token_ttl);
    if (!Number.isInteger(value) || value <= 0) {
      ctx.status = 400;
      ctx.body = { error: 'access_token_ttl must be a positive integer' };
      return;
    }
    accessTokenTtl = value;
    ctx.body = { access_token_ttl: accessTokenTtl };
  },
};

provider.use(async (ctx, next) => {
  if (ctx.path.startsWith('/__test/')) {
    const handler = control[`${ctx.method} ${ctx.path}`];
    ctx.type = 'json';
    if (handler) await handler(ctx);
    else { ctx.status = 404; ctx.body = { error: 'not_found' }; }
    return;
  }
  // oidc-provider 9 emits no event for introspection or revocation: count the calls here.
  if (ctx.method === 'POST' && ctx.path === '/token/introspection') stats.introspections += 1;
  if (ctx.method === 'POST' && ctx.path === '/token/revocation') stats.revocations += 1;
  await next();
});

// The devInteractions login page accepts any login and password and uses the login as the
// accountId; an unknown one makes /auth/:uid answer 500 later. So the login step is done here
// against the account table: a wrong login or password goes back (303) to the login form, a right
// one finishes the interaction with the account's sub. Other steps (consent) go on untouched,
// which is why the prompt is read from the interaction (cookie) and not from the request body.
provider.use(async (ctx, next) => {
  const uid = ctx.method === 'POST' && ctx.path.match(/^\/interaction\/([^/]+)$/)?.[1];
  if (!uid) return next();
  let details;
  try {
    details = await provider.interactionDetails(ctx.req, ctx.res);
  } catch {
    return next(); // no or stale interaction: let the provider give its own error
  }
  if (details.uid !== uid || details.prompt.name !== 'login') return next();
  const form = querystring.parse(await readBody(ctx.req));
  const account = ACCOUNTS[form.login];
  if (form.prompt !== 'login' || !account || account.password !== form.password) {
    ctx.status = 303;
    ctx.redirect(ctx.path);
    return undefined;
  }
  await provider.interactionFinished(ctx.req, ctx.res, {
    login: { accountId: account.sub },
  }, { mergeWithLastSubmission: false });
  ctx.respond = false; // interactionFinished has written the 303 itself
  return undefined;
});

// --- start -----------------------------------------------------------------------------------
for (const metadata of JSON.parse(process.env.CLIENTS_JSON || '[]')) await registerClient(metadata);

const server = provider.listen(PORT, '127.0.0.1', () => {
  process.stdout.write(`READY ${ISSUER}\n`);
});
server.on('error', (err) => {
  console.error(err.message);
  process.exit(1);
});

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (process.env.EXIT_WITH_STDIN === '1') {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}
