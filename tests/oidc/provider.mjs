// The OpenID provider of tests/oidc.rs: oidc-provider with one confidential client (PKCE
// required), a few accounts and its development login and consent forms, behind a small
// proxy that is the issuer everybody (Accord, the browser) talks to. The proxy passes
// everything through, except that the test can make it spoil the token endpoint's ID
// token: `tamper` changes its payload without signing it again, `wrong-aud` replaces it
// with one signed by the proxy's own key (which it adds to the JWKS) for another
// audience. Configuration from the environment:
//   PORT                       the issuer's (proxy's) loopback port, chosen by the test
//   CLIENT_ID, CLIENT_SECRET   the one client
//   REDIRECT_URIS              comma-separated; POST_LOGOUT_REDIRECT_URIS likewise
//   ID_TOKEN_TTL               seconds (default 3600)
// Prints `ready http://127.0.0.1:PORT` once both listen. `POST /__test/mode` with a
// body of `pass`, `tamper`, `wrong-aud` or `refuse-refresh` (refresh grants answered
// invalid_grant) sets the proxy's mode; `POST /__test/groups` with `{"account": …,
// "groups": […]}` changes an account's groups (as an administrator of the provider
// would). Refresh tokens are issued with every code.
import http from "node:http";
import Provider from "oidc-provider";
import * as jose from "jose";

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const list = (name) => (process.env[name] || "").split(",").filter(Boolean);

const accounts = {
  "ann@example.com": { email_verified: true, name: "Ann", groups: ["member", "accord-staff"] },
  "audrey@example.com": { email_verified: true, name: "Audrey", groups: ["auditor", "reader"] },
  "unverified@example.com": { email_verified: false, name: "Una", groups: ["member"] },
  "norole@example.com": { email_verified: true, name: "Nora", groups: ["payroll"] },
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: list("REDIRECT_URIS"),
    post_logout_redirect_uris: list("POST_LOGOUT_REDIRECT_URIS"),
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  }],
  pkce: { required: () => true },
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name", "groups"] },
  // The scopes' claims in the ID token itself (not only at the userinfo endpoint).
  conformIdTokenClaims: false,
  async findAccount(_ctx, id) {
    const account = accounts[id] || { email_verified: true, name: id, groups: [] };
    return { accountId: id, claims: async () => ({ sub: id, email: id, ...account }) };
  },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  cookies: { keys: ["accord-oidc-test-cookie-key"] },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
  ttl: { IdToken: Number(process.env.ID_TOKEN_TTL || 3600) },
});

// The proxy's own key: valid signatures, for the wrong audience.
const { publicKey, privateKey } = await jose.generateKeyPair("RS256", { extractable: true });
const proxyJwk = { ...(await jose.exportJWK(publicKey)), kid: "proxy-key", alg: "RS256", use: "sig" };
let mode = "pass";

async function spoil(idToken) {
  const [header, payload, signature] = idToken.split(".");
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
  if (mode === "tamper") {
    claims.groups = ["admin"];
    const forged = Buffer.from(JSON.stringify(claims)).toString("base64url");
    return `${header}.${forged}.${signature}`;
  }
  claims.aud = "someone-else";
  return new jose.SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: "proxy-key", typ: "JWT" }).sign(privateKey);
}

const inner = http.createServer(provider.callback());
await new Promise((resolve) => inner.listen(0, "127.0.0.1", resolve));
const innerPort = inner.address().port;

const proxy = http.createServer((request, response) => {
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    const body = Buffer.concat(chunks);
    if (request.url === "/__test/mode" && request.method === "POST") {
      mode = body.toString().trim();
      response.writeHead(204).end();
      return;
    }
    if (request.url === "/__test/groups" && request.method === "POST") {
      const { account, groups } = JSON.parse(body.toString());
      accounts[account] = { ...(accounts[account] || { email_verified: true, name: account }), groups };
      response.writeHead(204).end();
      return;
    }
    const path = request.url.split("?")[0];
    if (path === "/token" && mode === "refuse-refresh" && body.toString().includes("grant_type=refresh_token")) {
      response.writeHead(400, { "content-type": "application/json" });
      response.end(JSON.stringify({ error: "invalid_grant", error_description: "refresh refused by the test" }));
      return;
    }
    const spoiling = mode === "tamper" || mode === "wrong-aud";
    const rewrite = (path === "/token" && spoiling) || path === "/jwks";
    const forward = http.request(
      { host: "127.0.0.1", port: innerPort, method: request.method, path: request.url, headers: request.headers },
      (upstream) => {
        if (!rewrite) {
          response.writeHead(upstream.statusCode, upstream.headers);
          upstream.pipe(response);
          return;
        }
        const parts = [];
        upstream.on("data", (chunk) => parts.push(chunk));
        upstream.on("end", async () => {
          let text = Buffer.concat(parts).toString();
          try {
            const json = JSON.parse(text);
            if (path === "/jwks") json.keys.push(proxyJwk);
            else if (json.id_token) json.id_token = await spoil(json.id_token);
            text = JSON.stringify(json);
          } catch (error) {
            console.error(`proxy: could not rewrite ${path}: ${error}`);
          }
          const headers = { ...upstream.headers, "content-length": Buffer.byteLength(text) };
          delete headers["transfer-encoding"];
          response.writeHead(upstream.statusCode, headers);
          response.end(text);
        });
      },
    );
    forward.on("error", (error) => {
      response.writeHead(502).end(String(error));
    });
    forward.end(body);
  });
});
await new Promise((resolve) => proxy.listen(port, "127.0.0.1", resolve));
console.log(`ready ${issuer}`);
