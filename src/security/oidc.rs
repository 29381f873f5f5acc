//! Sign-in for the board: the OpenID Connect authorization-code flow with PKCE (S256)
//! against the company's identity provider, through the `openidconnect` crate (discovery,
//! JWKS, the code exchange, ID token verification: signature, `iss`, `aud`, `azp`, `exp`,
//! `nonce`). This module holds the `[oidc]` section of the security configuration, parsed
//! into [`OidcSettings`], and [`SignIn`], which talks to the provider; the routes, the
//! cookies and the sessions are in `crate::http::auth`.
//!
//! ```toml
//! [oidc]
//! issuer = "https://id.example.com/realms/company"
//! client_id = "accord-board"
//! client_secret_file = "secrets/oidc-client-secret"   # or client_secret_env = "VARIABLE"
//! base_url = "https://accord.example.com"              # the redirect URI is {base_url}/auth/callback
//! scopes = ["openid", "email", "profile"]              # the default
//! principal_claim = "email"                            # the default: stakeholders are e-mail addresses
//! roles_claim = "groups"                               # mapped to roles as [jwt] roles_claim is
//! teams_claim = "groups"                               # each group G is the team team:G
//! session_idle = "8h"                                  # the defaults
//! session_absolute = "7d"
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::url::{self, Url};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenClaims, IdTokenFields, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;
use tokio::sync::Mutex;

use super::Roles;
use super::jwt::roles_of_claim;
use crate::domain::values::{Principal, clip, quote};

/// The defaults of the section.
pub const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];
pub const DEFAULT_PRINCIPAL_CLAIM: &str = "email";
pub const DEFAULT_ROLES_CLAIM: &str = "groups";
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(8 * 3600);
pub const DEFAULT_SESSION_ABSOLUTE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a sign-in may take between `/auth/login` and `/auth/callback`.
pub const LOGIN_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Discovery (metadata and keys) is fetched again after this long.
const METADATA_LIFETIME: Duration = Duration::from_secs(3600);
/// Longest `return_to` accepted, in bytes.
pub const MAX_RETURN_TO_BYTES: usize = 2048;

/// The `[oidc]` section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    pub issuer: String,
    pub client_id: String,
    pub client_secret_file: Option<PathBuf>,
    pub client_secret_env: Option<String>,
    /// Only to refuse it by name: the secret never goes in the file itself.
    pub client_secret: Option<toml::Value>,
    pub base_url: String,
    pub scopes: Option<Vec<String>>,
    pub principal_claim: Option<String>,
    pub roles_claim: Option<String>,
    pub teams_claim: Option<String>,
    pub session_idle: Option<String>,
    pub session_absolute: Option<String>,
}

/// Leaves out an inline secret (refused at parse, but it may be there).
impl std::fmt::Debug for OidcSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSection")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret_file", &self.client_secret_file)
            .field("client_secret_env", &self.client_secret_env)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// The `[oidc]` section, parsed: every value is usable as it is. (Its `Debug` leaves the
/// secrets out.)
#[derive(Clone)]
pub struct OidcSettings {
    pub issuer: IssuerUrl,
    pub client_id: ClientId,
    pub client_secret: ClientSecret,
    /// The board's public origin (no path, no trailing slash).
    pub base_url: Url,
    pub redirect_uri: RedirectUrl,
    pub scopes: Vec<String>,
    pub principal_claim: String,
    pub roles_claim: String,
    /// The claim listing the person's groups, each a team (`team:NAME`).
    pub teams_claim: String,
    pub session_idle: Duration,
    pub session_absolute: Duration,
    /// The cookies are `Secure` and `__Host-` prefixed (false only for http on loopback).
    pub secure_cookies: bool,
    /// Signs the short-lived login cookie; derived from the client secret, so every
    /// replica with the same configuration accepts another's.
    pub cookie_key: [u8; 32],
}

/// A bad value in the `[oidc]` section: the field and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("oidc.{field}: {message}")]
pub struct OidcConfigError {
    pub field: &'static str,
    pub message: String,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id.as_str())
            .field("base_url", &self.base_url.as_str())
            .field("scopes", &self.scopes)
            .field("principal_claim", &self.principal_claim)
            .field("roles_claim", &self.roles_claim)
            .field("session_idle", &self.session_idle)
            .field("session_absolute", &self.session_absolute)
            .field("secure_cookies", &self.secure_cookies)
            .finish_non_exhaustive()
    }
}

fn bad(field: &'static str, message: impl Into<String>) -> OidcConfigError {
    OidcConfigError { field, message: message.into() }
}

impl OidcSection {
    /// Parses the section; files are relative to `base`.
    pub fn parse(&self, base: &Path) -> Result<OidcSettings, OidcConfigError> {
        let issuer_url = Url::parse(self.issuer.trim())
            .map_err(|e| bad("issuer", format!("{} is not a URL: {e}", quote(&self.issuer))))?;
        let issuer_loopback = is_loopback(&issuer_url);
        if issuer_url.scheme() != "https" && !(issuer_url.scheme() == "http" && issuer_loopback) {
            return Err(bad("issuer", "must be an https:// URL (http:// only on a loopback address)"));
        }
        let issuer = IssuerUrl::new(self.issuer.trim().to_owned()).map_err(|e| bad("issuer", e.to_string()))?;
        if self.client_id.trim().is_empty() {
            return Err(bad("client_id", "must not be empty"));
        }
        if self.client_secret.is_some() {
            return Err(bad(
                "client_secret",
                "the secret never goes in this file: give client_secret_file or client_secret_env",
            ));
        }
        let secret = match (&self.client_secret_file, &self.client_secret_env) {
            (Some(file), None) => {
                let path = base.join(file);
                let bytes = std::fs::read(&path)
                    .map_err(|e| bad("client_secret_file", format!("cannot read {}: {e}", path.display())))?;
                String::from_utf8(bytes).map_err(|_| bad("client_secret_file", "is not UTF-8 text"))?
            }
            (None, Some(variable)) => std::env::var(variable)
                .map_err(|_| bad("client_secret_env", format!("environment variable {variable} is not set")))?,
            _ => {
                return Err(bad(
                    "client_secret_file",
                    "give exactly one of client_secret_file or client_secret_env (never the secret itself)",
                ));
            }
        };
        let secret = secret.trim_end_matches(['\n', '\r']).to_owned();
        let secret_field = if self.client_secret_file.is_some() { "client_secret_file" } else { "client_secret_env" };
        if secret.is_empty() {
            return Err(bad(secret_field, "the client secret is empty"));
        }
        let base_url = parse_base_url(&self.base_url)?;
        let secure_cookies = base_url.scheme() == "https";
        let redirect_uri = RedirectUrl::new(format!("{}/auth/callback", origin_of(&base_url)))
            .map_err(|e| bad("base_url", e.to_string()))?;
        let scopes = match &self.scopes {
            None => DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            Some(scopes) => parse_scopes(scopes)?,
        };
        let principal_claim = claim_name("principal_claim", self.principal_claim.as_deref(), DEFAULT_PRINCIPAL_CLAIM)?;
        let roles_claim = claim_name("roles_claim", self.roles_claim.as_deref(), DEFAULT_ROLES_CLAIM)?;
        let teams_claim = claim_name("teams_claim", self.teams_claim.as_deref(), super::jwt::DEFAULT_TEAMS_CLAIM)?;
        let session_idle = match &self.session_idle {
            None => DEFAULT_SESSION_IDLE,
            Some(text) => parse_duration(text).map_err(|m| bad("session_idle", m))?,
        };
        let session_absolute = match &self.session_absolute {
            None => DEFAULT_SESSION_ABSOLUTE,
            Some(text) => parse_duration(text).map_err(|m| bad("session_absolute", m))?,
        };
        if session_idle > session_absolute {
            return Err(bad("session_idle", "is longer than session_absolute; it would never apply"));
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
            .map_err(|_| bad(secret_field, "unusable as a key"))?;
        mac.update(b"accord login cookie v1");
        let cookie_key: [u8; 32] = mac.finalize().into_bytes().into();
        Ok(OidcSettings {
            issuer,
            client_id: ClientId::new(self.client_id.trim().to_owned()),
            client_secret: ClientSecret::new(secret),
            base_url,
            redirect_uri,
            scopes,
            principal_claim,
            roles_claim,
            teams_claim,
            session_idle,
            session_absolute,
            secure_cookies,
            cookie_key,
        })
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn parse_base_url(text: &str) -> Result<Url, OidcConfigError> {
    let url = Url::parse(text.trim()).map_err(|e| bad("base_url", format!("{} is not a URL: {e}", quote(text))))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(bad("base_url", "must be https:// (http:// only on a loopback address, for development)"));
        }
        other => return Err(bad("base_url", format!("{} is not http(s)", quote(other)))),
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("base_url", "must be an origin only (scheme, host, port): the board is served at its root"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("base_url", "must not carry a user name or password"));
    }
    Ok(url)
}

/// `scheme://host[:port]`, without a trailing slash.
pub fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn parse_scopes(scopes: &[String]) -> Result<Vec<String>, OidcConfigError> {
    let mut parsed = Vec::new();
    for scope in scopes {
        let valid = !scope.is_empty() && scope.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
        if !valid {
            return Err(bad("scopes", format!("{} is not a scope token", quote(scope))));
        }
        if !parsed.contains(scope) {
            parsed.push(scope.clone());
        }
    }
    if !parsed.iter().any(|s| s == "openid") {
        return Err(bad("scopes", "must include \"openid\" (without it there is no ID token)"));
    }
    Ok(parsed)
}

fn claim_name(field: &'static str, given: Option<&str>, default: &str) -> Result<String, OidcConfigError> {
    let name = given.unwrap_or(default);
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(bad(field, format!("{} is not a claim name", quote(name))));
    }
    Ok(name.to_owned())
}

/// "90s", "15m", "8h", "7d" (or a number of seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let unit_seconds = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{} is not a duration (e.g. \"90s\", \"15m\", \"8h\", \"7d\")", quote(text))),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{} is not a duration (e.g. \"90s\", \"15m\", \"8h\", \"7d\")", quote(text)))?;
    let seconds = value.checked_mul(unit_seconds).filter(|s| *s > 0 && *s <= 366 * 86_400);
    seconds.map(Duration::from_secs).ok_or_else(|| format!("{} is out of range (1 s to 366 days)", quote(text)))
}

/// The path (and query) to go back to after signing in: relative to the board only, so
/// that `/auth/login` cannot send anyone elsewhere (an open redirect). Empty: `/`.
pub fn parse_return_to(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Ok("/".to_owned());
    }
    if text.len() > MAX_RETURN_TO_BYTES {
        return Err(format!("return_to is longer than {MAX_RETURN_TO_BYTES} bytes"));
    }
    let refused = || format!("return_to {} is not a path on this board (it must start with one /)", quote(text));
    if !text.starts_with('/') || text.starts_with("//") || text.starts_with("/\\") {
        return Err(refused());
    }
    if text.chars().any(|c| c.is_control() || c == '\\') {
        return Err(refused());
    }
    // What a browser would make of it, against any origin: it must stay on that origin.
    let probe = Url::parse("https://board.invalid/").map_err(|_| refused())?;
    let joined = probe.join(text).map_err(|_| refused())?;
    if joined.origin() != probe.origin() {
        return Err(refused());
    }
    Ok(text.to_owned())
}

// ---- Talking to the provider ---------------------------------------------------------

/// Every claim of the ID token, beyond the standard ones `openidconnect` reads.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    pub claims: Map<String, Value>,
}

impl AdditionalClaims for OtherClaims {}

type Fields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type Tokens = StandardTokenResponse<Fields, CoreTokenType>;
type Client = openidconnect::Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a sign-in (or a refresh) failed: said on the error page and logged; never holds
/// a token or a code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// The provider cannot be reached or answers nonsense (discovery, keys, token endpoint).
    #[error("the identity provider is unavailable: {0}")]
    Provider(String),
    /// The provider refused (an error response from its token endpoint).
    #[error("the identity provider refused: {0}")]
    Refused(String),
    /// What came back does not verify, or names nobody Accord knows.
    #[error("{0}")]
    Invalid(String),
}

/// Who signed in, as the provider said.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub principal: Principal,
    pub roles: Roles,
    /// The teams the provider's group claim names (`team:NAME`).
    pub teams: std::collections::BTreeSet<Principal>,
    pub refresh_token: Option<String>,
    /// The raw ID token, kept as the `id_token_hint` of the provider's logout.
    pub id_token: String,
    /// When the ID token expires (Unix seconds): a refresh is due then.
    pub expires_at: i64,
}

/// What `/auth/login` keeps in the signed login cookie until `/auth/callback`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct LoginAttempt {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    pub return_to: String,
    /// Unix seconds.
    pub expires: i64,
}

/// The provider's metadata (with its keys) and when it was fetched.
type Discovered = Option<(Arc<ProviderMetadataWithLogout>, Instant)>;

/// The configured provider; cheap to clone. Discovery happens at the first sign-in (a
/// provider that is down at start does not keep the server from starting) and again
/// every hour, so that rotated keys are picked up.
#[derive(Clone, Debug)]
pub struct SignIn {
    settings: Arc<OidcSettings>,
    http: reqwest::Client,
    discovered: Arc<Mutex<Discovered>>,
    /// Refreshes run one at a time in this process, so that two requests of one session
    /// never spend its refresh token twice (a provider that rotates refresh tokens may
    /// revoke the whole grant when one is reused).
    refreshing: Arc<Mutex<()>>,
}

impl SignIn {
    pub fn new(settings: OidcSettings) -> Result<SignIn, String> {
        let http = reqwest::Client::builder()
            // Following redirects opens the client to SSRF.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the HTTP client for the identity provider: {e}"))?;
        Ok(SignIn {
            settings: Arc::new(settings),
            http,
            discovered: Arc::new(Mutex::new(None)),
            refreshing: Arc::new(Mutex::new(())),
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Held while a session is refreshed (see `refreshing`).
    pub async fn refresh_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.refreshing.lock().await
    }

    async fn metadata(&self, fresh: bool) -> Result<Arc<ProviderMetadataWithLogout>, SignInError> {
        let mut discovered = self.discovered.lock().await;
        if !fresh
            && let Some((metadata, at)) = discovered.as_ref()
            && at.elapsed() < METADATA_LIFETIME
        {
            return Ok(metadata.clone());
        }
        let metadata = ProviderMetadataWithLogout::discover_async(self.settings.issuer.clone(), &self.http)
            .await
            .map_err(|e| {
                SignInError::Provider(format!("discovery of {} failed: {}", self.settings.issuer.as_str(), chain(&e)))
            })?;
        let metadata = Arc::new(metadata);
        *discovered = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    fn client(&self, metadata: &ProviderMetadataWithLogout) -> Client {
        openidconnect::Client::from_provider_metadata(
            metadata.clone(),
            self.settings.client_id.clone(),
            Some(self.settings.client_secret.clone()),
        )
        .set_redirect_uri(self.settings.redirect_uri.clone())
    }

    /// Starts a sign-in: the provider's authorization URL to send the browser to, and the
    /// attempt to keep (signed) until the callback.
    pub async fn begin(&self, return_to: String, now: i64) -> Result<(String, LoginAttempt), SignInError> {
        let metadata = self.metadata(false).await?;
        let client = self.client(&metadata);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request =
            client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let attempt = LoginAttempt {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            return_to,
            expires: now + LOGIN_LIFETIME.as_secs() as i64,
        };
        Ok((url.to_string(), attempt))
    }

    /// Exchanges the code of a callback (whose state the caller checked) and verifies the
    /// ID token against the attempt's nonce.
    pub async fn finish(&self, code: String, attempt: &LoginAttempt) -> Result<SignedIn, SignInError> {
        let metadata = self.metadata(false).await?;
        let client = self.client(&metadata);
        let request = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| SignInError::Provider(format!("the provider advertises no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(attempt.verifier.clone()));
        let tokens = request.request_async(&self.http).await.map_err(token_error)?;
        let nonce = Nonce::new(attempt.nonce.clone());
        self.signed_in(&client, &tokens, |claims_nonce: Option<&Nonce>| match claims_nonce {
            Some(found) if subtle_eq(found.secret(), nonce.secret()) => Ok(()),
            Some(_) => Err("the ID token's nonce is not the one this sign-in sent".to_owned()),
            None => Err("the ID token has no nonce".to_owned()),
        })
    }

    /// Refreshes a session's claims with its refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<SignedIn, SignInError> {
        let metadata = self.metadata(false).await?;
        let client = self.client(&metadata);
        let token = RefreshToken::new(refresh_token.to_owned());
        let request = client
            .exchange_refresh_token(&token)
            .map_err(|e| SignInError::Provider(format!("the provider advertises no token endpoint: {e}")))?;
        let tokens = request.request_async(&self.http).await.map_err(token_error)?;
        let mut signed_in = self.signed_in(&client, &tokens, |_: Option<&Nonce>| Ok(()))?;
        // A provider that does not rotate refresh tokens keeps the old one valid.
        if signed_in.refresh_token.is_none() {
            signed_in.refresh_token = Some(refresh_token.to_owned());
        }
        Ok(signed_in)
    }

    fn signed_in(
        &self,
        client: &Client,
        tokens: &Tokens,
        nonce: impl openidconnect::NonceVerifier,
    ) -> Result<SignedIn, SignInError> {
        let id_token = tokens
            .id_token()
            .ok_or_else(|| SignInError::Invalid("the identity provider returned no ID token".into()))?;
        let verifier = client.id_token_verifier();
        let claims = id_token.claims(&verifier, nonce).map_err(|e| {
            SignInError::Invalid(format!("the ID token does not verify: {}", clip_message(&e.to_string())))
        })?;
        if let Some(expected) = claims.access_token_hash() {
            let algorithm = id_token.signing_alg().map_err(|e| SignInError::Invalid(format!("the ID token: {e}")))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| SignInError::Invalid(format!("the ID token's key: {e}")))?;
            let actual = AccessTokenHash::from_token(tokens.access_token(), algorithm, key)
                .map_err(|e| SignInError::Invalid(format!("the access token hash: {e}")))?;
            if actual != *expected {
                return Err(SignInError::Invalid("the access token does not match the ID token's at_hash".into()));
            }
        }
        let (principal, roles) = self.identity(claims)?;
        let teams = super::jwt::teams_of_claim(claims.additional_claims().claims.get(&self.settings.teams_claim));
        Ok(SignedIn {
            principal,
            roles,
            teams,
            refresh_token: tokens.refresh_token().map(|t| t.secret().clone()),
            id_token: id_token.to_string(),
            expires_at: claims.expiration().timestamp(),
        })
    }

    /// The principal and roles the claims name, or why they name nobody.
    fn identity(
        &self,
        claims: &IdTokenClaims<OtherClaims, CoreGenderClaim>,
    ) -> Result<(Principal, Roles), SignInError> {
        let name = &self.settings.principal_claim;
        let other = &claims.additional_claims().claims;
        let value = match name.as_str() {
            "sub" => Some(claims.subject().as_str().to_owned()),
            "email" => claims.email().map(|e| e.as_str().to_owned()),
            "preferred_username" => claims.preferred_username().map(|u| u.as_str().to_owned()),
            _ => other.get(name).and_then(Value::as_str).map(str::to_owned),
        };
        let value = value.ok_or_else(|| {
            SignInError::Invalid(format!("the ID token has no {name:?} claim to name the Accord principal"))
        })?;
        if name == "email" && claims.email_verified() == Some(false) {
            return Err(SignInError::Invalid(format!(
                "the identity provider has not verified the e-mail address {}",
                quote(&value)
            )));
        }
        let principal = Principal::parse(name, &value)
            .map_err(|e| SignInError::Invalid(format!("the {name:?} claim is not a valid principal: {e}")))?;
        let roles = roles_of_claim(other.get(&self.settings.roles_claim));
        Ok((principal, roles))
    }

    /// Where to send the browser after a logout: the provider's end-session endpoint
    /// when discovery advertises one (back to the board afterwards), else `None`.
    pub async fn logout_url(&self, id_token: Option<&str>) -> Option<String> {
        let metadata = self.metadata(false).await.ok()?;
        let endpoint = metadata.additional_metadata().end_session_endpoint.clone()?;
        let mut request = openidconnect::LogoutRequest::from(endpoint).set_client_id(self.settings.client_id.clone());
        if let Ok(back) = PostLogoutRedirectUrl::new(format!("{}/", origin_of(&self.settings.base_url))) {
            request = request.set_post_logout_redirect_uri(back);
        }
        if let Some(hint) = id_token.and_then(|t| t.parse::<openidconnect::core::CoreIdToken>().ok()) {
            request = request.set_id_token_hint(&hint);
        }
        Some(request.http_get_url().to_string())
    }

    /// Forgets the discovered metadata (keys may have rotated).
    pub async fn rediscover(&self) {
        let _ = self.metadata(true).await;
    }

    // ---- The login cookie ------------------------------------------------------------

    /// The attempt, signed: `payload.signature`, both base64url.
    pub fn seal(&self, attempt: &LoginAttempt) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(attempt).unwrap_or_default());
        let signature = URL_SAFE_NO_PAD.encode(self.mac(payload.as_bytes()));
        format!("{payload}.{signature}")
    }

    /// The attempt a login cookie holds, if its signature holds and it has not expired.
    pub fn open(&self, sealed: &str, now: i64) -> Result<LoginAttempt, String> {
        let (payload, signature) = sealed.split_once('.').ok_or("the sign-in cookie is malformed")?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| "the sign-in cookie is malformed")?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.settings.cookie_key)
            .map_err(|_| "the sign-in cookie key is unusable")?;
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).map_err(|_| "the sign-in cookie's signature does not verify")?;
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| "the sign-in cookie is malformed")?;
        let attempt: LoginAttempt = serde_json::from_slice(&json).map_err(|_| "the sign-in cookie is malformed")?;
        if attempt.expires < now {
            return Err("the sign-in took too long; start again".into());
        }
        Ok(attempt)
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        match <Hmac<Sha256> as Mac>::new_from_slice(&self.settings.cookie_key) {
            Ok(mut mac) => {
                mac.update(payload);
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }
}

/// Constant-time string equality.
pub fn subtle_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn token_error<RE: std::error::Error + 'static>(
    error: RequestTokenError<RE, StandardErrorResponse<CoreErrorResponseType>>,
) -> SignInError {
    match error {
        RequestTokenError::ServerResponse(response) => {
            let described = response.error_description().map(|d| format!(" ({})", clip_message(d))).unwrap_or_default();
            SignInError::Refused(format!("{}{described}", response.error().as_ref()))
        }
        RequestTokenError::Parse(error, _) => {
            SignInError::Invalid(format!("the token response is malformed: {}", clip_message(&error.to_string())))
        }
        other => SignInError::Provider(format!("the token request failed: {}", chain(&other))),
    }
}

/// An error with its sources, clipped.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    clip_message(&text)
}

fn clip_message(text: &str) -> String {
    clip(text, 300).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(toml_text: &str) -> OidcSection {
        toml::from_str(toml_text).expect("a section")
    }

    const BASE: &str = "issuer = \"https://id.example.com/\"\nclient_id = \"accord\"\n\
                        client_secret_env = \"ACCORD_OIDC_TEST_SECRET_SET\"\nbase_url = \"https://accord.example.com\"\n";

    fn parse(extra: &str) -> Result<OidcSettings, OidcConfigError> {
        set_secret();
        section(&format!("{BASE}{extra}")).parse(Path::new("."))
    }

    fn set_secret() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: set before any test of this module reads it, and never changed.
        ONCE.call_once(|| unsafe { std::env::set_var("ACCORD_OIDC_TEST_SECRET_SET", "s3cret") });
    }

    #[test]
    fn the_defaults_apply_and_the_redirect_uri_is_under_the_base_url() {
        let settings = parse("").expect("valid");
        assert_eq!(settings.redirect_uri.as_str(), "https://accord.example.com/auth/callback");
        assert_eq!(settings.scopes, ["openid", "email", "profile"]);
        assert_eq!(settings.principal_claim, "email");
        assert_eq!(settings.roles_claim, "groups");
        assert_eq!(settings.session_idle, Duration::from_secs(8 * 3600));
        assert_eq!(settings.session_absolute, Duration::from_secs(7 * 86_400));
        assert!(settings.secure_cookies);
        assert_eq!(settings.client_secret.secret(), "s3cret");
    }

    #[test]
    fn bad_values_name_their_field() {
        let field = |extra: &str| parse(extra).expect_err("refused").field;
        assert_eq!(field("session_idle = \"8 weeks\""), "session_idle");
        assert_eq!(field("session_absolute = \"0s\""), "session_absolute");
        assert_eq!(field("session_idle = \"8d\""), "session_idle");
        assert_eq!(field("scopes = [\"email\"]"), "scopes");
        assert_eq!(field("scopes = [\"openid\", \"a b\"]"), "scopes");
        assert_eq!(field("principal_claim = \"\""), "principal_claim");
        let replaced = |from: &str, to: &str| {
            set_secret();
            section(&BASE.replace(from, to)).parse(Path::new(".")).expect_err("refused").field
        };
        assert_eq!(replaced("https://accord.example.com", "http://accord.example.com"), "base_url");
        assert_eq!(replaced("https://accord.example.com", "https://accord.example.com/board"), "base_url");
        assert_eq!(replaced("https://id.example.com/", "http://id.example.com/"), "issuer");
        assert_eq!(replaced("https://id.example.com/", "not a url"), "issuer");
        assert_eq!(replaced("client_id = \"accord\"", "client_id = \" \""), "client_id");
        assert_eq!(replaced("ACCORD_OIDC_TEST_SECRET_SET", "ACCORD_OIDC_TEST_SECRET_UNSET"), "client_secret_env");
        let both = "client_secret_env = \"ACCORD_OIDC_TEST_SECRET_SET\"\nclient_secret_file = \"x\"\n";
        assert_eq!(replaced("client_secret_env = \"ACCORD_OIDC_TEST_SECRET_SET\"\n", both), "client_secret_file");
        // Never inline.
        assert_eq!(field("client_secret = \"x\""), "client_secret");
    }

    #[test]
    fn loopback_http_is_allowed_for_development_without_secure_cookies() {
        set_secret();
        let text = BASE
            .replace("https://accord.example.com", "http://127.0.0.1:8080")
            .replace("https://id.example.com/", "http://127.0.0.1:9000");
        let settings = section(&text).parse(Path::new(".")).expect("valid");
        assert!(!settings.secure_cookies);
        assert_eq!(settings.redirect_uri.as_str(), "http://127.0.0.1:8080/auth/callback");
    }

    fn identity(claims: Value) -> Result<(String, Roles), SignInError> {
        let sign_in = SignIn::new(parse("").expect("valid")).expect("sign-in");
        let mut all = serde_json::json!({"iss": "https://id.example.com/", "aud": "accord", "exp": 4_000_000_000u64,
            "iat": 1_700_000_000u64, "sub": "0f3a"});
        if let (Some(all), Some(extra)) = (all.as_object_mut(), claims.as_object()) {
            all.extend(extra.clone());
        }
        let claims: IdTokenClaims<OtherClaims, CoreGenderClaim> = serde_json::from_value(all).expect("claims");
        sign_in.identity(&claims).map(|(principal, roles)| (principal.to_string(), roles))
    }

    #[test]
    fn the_claims_name_the_principal_and_the_groups_its_roles() {
        use crate::security::Role;
        let ann = identity(serde_json::json!({"email": "ann@example.com", "email_verified": true,
            "groups": ["member", "payroll", "reader"]}));
        assert_eq!(ann, Ok(("ann@example.com".to_owned(), Roles::of(&[Role::Member, Role::Reader]))));
        // A provider that does not say whether it verified the address is trusted for it.
        let unsaid = identity(serde_json::json!({"email": "bo@example.com", "groups": "admin"}));
        assert_eq!(unsaid, Ok(("bo@example.com".to_owned(), Roles::of(&[Role::Admin]))));
        let refused = |claims: Value| match identity(claims) {
            Err(SignInError::Invalid(reason)) => reason,
            other => panic!("refused, not {other:?}"),
        };
        assert!(refused(serde_json::json!({"groups": ["member"]})).contains("has no \"email\" claim"));
        let unverified = refused(serde_json::json!({"email": "una@example.com", "email_verified": false}));
        assert!(unverified.contains("has not verified the e-mail address"), "{unverified}");
        let invalid = refused(serde_json::json!({"email": "", "email_verified": true}));
        assert!(invalid.contains("is not a valid principal"), "{invalid}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("8h"), Ok(Duration::from_secs(28_800)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        for bad in ["", "h", "-1h", "1.5h", "1w", "99999999999999999999d", "400d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn return_to_stays_on_the_board() {
        assert_eq!(parse_return_to(""), Ok("/".to_owned()));
        for good in ["/", "/?status=blocked&owner=pm%40example.com", "/initiatives/X-1#top"] {
            assert_eq!(parse_return_to(good).as_deref(), Ok(good), "{good}");
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "\\\\evil.example",
            "javascript:alert(1)",
            "evil.example",
            "/\t/evil.example",
            "/%0a",
        ] {
            if bad == "/%0a" {
                // Percent-encoded text stays a path.
                assert!(parse_return_to(bad).is_ok());
                continue;
            }
            assert!(parse_return_to(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(parse_return_to(&format!("/{}", "a".repeat(3000))).is_err());
    }
}
