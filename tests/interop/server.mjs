// An independent authorization server (oidc-provider) and a protected resource, for the
// interop tests. Usage: node server.mjs CONFIG.json
// Listens on 127.0.0.1 on a free port and prints one JSON line: {"issuer": ..., "port": ...}.
//
// The resource (/api/...) validates access tokens for real: JWT access tokens against the
// provider's JWKS, opaque ones through the provider's introspection endpoint. It answers
// RFC 6750 401s. /_stats reports how many token requests the provider received.
//
// With config.dpop ({"require_nonce": bool, "algs": [...]?}) the provider checks DPoP proofs
// (RFC 9449) at the token endpoint with nonces of its own, required when require_nonce, and
// binds the client credentials tokens it issues to the proof's key: a JWT access token
// carries cnf.jkt, introspection shows it for an opaque one. Those tokens are for the
// Python resource server of the DPoP tests (dpop_resource.py): /api/ takes Bearer only.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const stats = { token_requests: 0 };

// With config.tls the server speaks https and asks for (but does not require) a client
// certificate, for the RFC 8705 methods and certificate-bound tokens.
const tls = config.tls && {
  key: fs.readFileSync(config.tls.key),
  cert: fs.readFileSync(config.tls.cert),
  ca: config.tls.client_ca.map((path) => fs.readFileSync(path)),
  requestCert: true,
  rejectUnauthorized: false,
};
const server = tls ? https.createServer(tls) : http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;

function peerCertificate(socket) {
  const peer = socket.getPeerCertificate ? socket.getPeerCertificate() : null;
  return peer && peer.raw ? new crypto.X509Certificate(peer.raw) : undefined;
}

const mTLS = {
  enabled: true,
  certificateBoundAccessTokens: true,
  tlsClientAuth: true,
  selfSignedTlsClientAuth: true,
  getCertificate: (ctx) => peerCertificate(ctx.req.socket),
  certificateAuthorized: (ctx) => ctx.req.socket.authorized,
  certificateSubjectMatches(ctx, property, expected) {
    const cert = peerCertificate(ctx.req.socket);
    return property === 'tls_client_auth_subject_dn' && cert && cert.subject === expected;
  },
};
// The proof algorithms a DPoP provider accepts (oidc-provider's names, lib/consts/jwa.js):
// config.dpop.algs, by default these five.
const DPOP_ALGS = ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA'];
const dPoP = config.dpop && {
  enabled: true,
  nonceSecret: crypto.randomBytes(32),
  requireNonce: () => Boolean(config.dpop.require_nonce),
};

const resources = {
  [config.jwt_resource]: 'jwt',
  [config.opaque_resource]: 'opaque',
};

const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: { keys: [config.signing_key] },
  scopes: ['read', 'write', 'admin'],
  clientAuthMethods: [
    'client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt',
    ...(tls ? ['tls_client_auth', 'self_signed_tls_client_auth'] : []),
  ],
  enabledJWA: {
    clientAuthSigningAlgValues: ['HS256', 'RS256', 'PS256', 'ES256', 'ES384', 'ES512', 'EdDSA'],
    ...(dPoP ? { dPoPSigningAlgValues: config.dpop.algs || DPOP_ALGS } : {}),
  },
  ttl: { ClientCredentials: config.token_ttl },
  features: {
    devInteractions: { enabled: false },
    ...(tls ? { mTLS } : {}),
    ...(dPoP ? { dPoP } : {}),
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.opaque_resource,
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, resourceIndicator) {
        const format = resources[resourceIndicator];
        if (!format) throw new errors.InvalidTarget();
        return {
          scope: 'read write',
          audience: resourceIndicator,
          accessTokenTTL: config.token_ttl,
          accessTokenFormat: format,
          ...(format === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
        };
      },
    },
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));

async function introspect(token) {
  const basic = Buffer.from(
    `${encodeURIComponent(config.resource_server.client_id)}:`
    + `${encodeURIComponent(config.resource_server.client_secret)}`,
  ).toString('base64');
  const response = await fetch(`${issuer}/token/introspection`, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }),
  });
  return response.json();
}

// RFC 8705 §3: a certificate-bound token is only good with the same certificate.
function boundToPresented(confirmation, socket) {
  const bound = confirmation && confirmation['x5t#S256'];
  if (!bound) return true;
  const cert = peerCertificate(socket);
  return Boolean(cert) && crypto.hash('sha256', cert.raw, 'base64url') === bound;
}

async function validate(token, socket) {
  if (token.split('.').length === 3) {
    const { payload } = await jwtVerify(token, jwks, { issuer, audience: config.jwt_resource });
    if (!boundToPresented(payload.cnf, socket)) return null;
    return { client_id: payload.client_id, scope: payload.scope, format: 'jwt' };
  }
  const info = await introspect(token);
  if (!info.active || info.aud !== config.opaque_resource) return null;
  if (!boundToPresented(info.cnf, socket)) return null;
  return { client_id: info.client_id, scope: info.scope, format: 'opaque' };
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

async function resource(req, res) {
  const header = req.headers.authorization || '';
  const token = header.startsWith('Bearer ') ? header.slice(7) : null;
  let info = null;
  try {
    info = token && await validate(token, req.socket);
  } catch (err) {
    if (process.env.INTEROP_DEBUG) console.error('token rejected:', err);
    info = null;
  }
  if (!info) {
    send(res, 401, { error: 'invalid_token' }, {
      'www-authenticate': 'Bearer realm="interop", error="invalid_token"',
    });
    return;
  }
  send(res, 200, info);
}

const callback = provider.callback();
server.on('request', (req, res) => {
  const path = req.url.split('?')[0];
  if (path.startsWith('/api/')) return void resource(req, res);
  if (path === '/_stats') return void send(res, 200, stats);
  if (path === '/token' && req.method === 'POST') stats.token_requests += 1;
  return callback(req, res);
});

process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
