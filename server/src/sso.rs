//! Single sign-on: cutover as an OpenID Connect relying party (a confidential client using the
//! authorization code flow with PKCE), through the maintained `openidconnect` crate: discovery
//! from the issuer, `state` and `nonce`, the ID token's signature, issuer, audience, expiry and
//! nonce checked against the provider's keys (fetched again when it names a key we do not
//! hold: the provider rotated), RS256 only. Groups claimed by the provider map to roles
//! (`[sso.groups]`); a person in no mapped group is refused with whom to ask.
//!
//! Calls to the provider never follow redirects and time out; the provider is named by the
//! operator in the config file, so, unlike a plan's receivers, it may be on a private network.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_core::role::Role;
use cutover_core::time::{HOUR, Millis};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClaimsVerificationError, Client, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields,
    IdTokenVerifier, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    SignatureVerificationError, StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

/// Every claim the ID token carries beyond the standard ones, by name: the groups claim is
/// the config's to name.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    pub claims: HashMap<String, serde_json::Value>,
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
type OidcClient = Client<
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

/// How long a person's session lasts before they sign in again (and their groups are read
/// again), unless the config says otherwise.
pub const SESSION_LIFETIME: Millis = 12 * HOUR;
/// How long a sign-in may take between leaving for the provider and coming back.
pub const PENDING_FOR: Millis = 10 * 60 * 1000;
/// Sign-ins under way at once, in all: a war room is dozens, a flood of starts is refused.
pub const MAX_PENDING: i64 = 10_000;
/// Calls to the provider.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read from the provider: discovery, keys and tokens are a few KiB.
const MAX_ANSWER: usize = 1024 * 1024;

/// Why a call to the provider failed before the protocol could say.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CallError(String);

/// `[sso]` as the server uses it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub issuer: String,
    /// "Sign in with <name>".
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    pub groups_claim: String,
    /// Allowed email domains (empty: any).
    pub email_domains: Vec<String>,
    pub session_lifetime: Millis,
    /// Whom a refused person should ask.
    pub contact: Option<String>,
    /// Roles for a person in no mapped group; none: refused.
    pub default_roles: Vec<Role>,
    /// Provider group -> cutover roles.
    pub groups: BTreeMap<String, Vec<Role>>,
    /// Where the provider sends people back; `None`: this server's own URL as asked.
    pub redirect_url: Option<String>,
    /// At most this often is the provider's key set fetched again for an unknown key.
    pub jwks_refresh: Duration,
}

/// Why a sign-in did not happen, as the person is told.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("the sign-in provider could not be reached or answered wrongly: {0}")]
    Provider(String),
    #[error("the sign-in came back wrong: {0}")]
    Rejected(String),
    #[error("{0}")]
    NotAllowed(String),
}

/// A person as the provider vouched for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub subject: String,
    pub name: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub roles: Vec<Role>,
}

/// What the browser is sent to the provider with, and what must come back.
pub struct Begin {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

struct Ready {
    metadata: CoreProviderMetadata,
    client: OidcClient,
    keys: RwLock<(Arc<CoreJsonWebKeySet>, Instant)>,
}

pub struct Sso {
    pub settings: Settings,
    http: reqwest::Client,
    /// Discovered on first use and kept; a failed discovery is tried again next time.
    ready: RwLock<Option<Arc<Ready>>>,
}

impl Sso {
    pub fn new(settings: Settings) -> anyhow::Result<Sso> {
        Ok(Sso {
            settings,
            http: crate::net::trusted_client(TIMEOUT)?,
            ready: RwLock::new(None),
        })
    }

    /// The provider's answer to `request`, read to at most [`MAX_ANSWER`] bytes: what every
    /// call to the provider goes through (the crate's own client would read any length).
    fn call(
        &self,
    ) -> impl Fn(
        openidconnect::HttpRequest,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<openidconnect::HttpResponse, CallError>> + Send,
        >,
    > + '_ {
        move |request| {
            let http = self.http.clone();
            Box::pin(async move {
                let (parts, body) = request.into_parts();
                let response = http
                    .request(parts.method, parts.uri.to_string())
                    .headers(parts.headers)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| CallError(crate::net::root_cause(&e)))?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = crate::net::read_bounded(response, MAX_ANSWER)
                    .await
                    .map_err(CallError)?;
                let mut out = openidconnect::HttpResponse::new(body);
                *out.status_mut() = status;
                *out.headers_mut() = headers;
                Ok(out)
            })
        }
    }

    async fn ready(&self, redirect: &str) -> Result<Arc<Ready>, SsoError> {
        if let Some(r) = self.ready.read().await.as_ref() {
            return Ok(r.clone());
        }
        let mut slot = self.ready.write().await;
        if let Some(r) = slot.as_ref() {
            return Ok(r.clone());
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| SsoError::Provider(format!("issuer: {e}")))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.call())
            .await
            .map_err(|e| {
                SsoError::Provider(format!("discovery: {}", crate::net::root_cause(&e)))
            })?;
        let redirect = RedirectUrl::new(redirect.to_string())
            .map_err(|e| SsoError::Provider(format!("redirect URL: {e}")))?;
        let client = OidcClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(self.settings.client_secret.clone())),
        )
        .set_redirect_uri(redirect);
        let keys = metadata.jwks().clone();
        let ready = Arc::new(Ready {
            metadata,
            client,
            keys: RwLock::new((Arc::new(keys), Instant::now())),
        });
        *slot = Some(ready.clone());
        Ok(ready)
    }

    /// Where to send the browser, and the secrets the callback must match.
    pub async fn begin(&self, redirect: &str) -> Result<Begin, SsoError> {
        let ready = self.ready(redirect).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = ready.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Begin {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
        })
    }

    /// The person behind `code`, checked: the code exchanged with the PKCE verifier, the ID
    /// token verified with the expected nonce, the groups mapped to roles.
    pub async fn finish(
        &self,
        redirect: &str,
        code: &str,
        nonce: &str,
        verifier: &str,
        issuer: Option<&str>,
    ) -> Result<Person, SsoError> {
        let ready = self.ready(redirect).await?;
        // RFC 9207: a provider that names itself in the answer must be ours.
        if let Some(iss) = issuer
            && iss != ready.metadata.issuer().as_str()
        {
            return Err(SsoError::Rejected(format!(
                "the answer came from issuer {iss}, not {}",
                ready.metadata.issuer().as_str()
            )));
        }
        let tokens = ready
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| SsoError::Provider(format!("no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
            .request_async(&self.call())
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(r) => {
                    SsoError::Rejected(format!("the provider refused the code: {}", r.error()))
                }
                other => {
                    SsoError::Provider(format!("token request: {}", crate::net::root_cause(&other)))
                }
            })?;
        let token = tokens
            .id_token()
            .ok_or_else(|| SsoError::Rejected("the provider sent no ID token".into()))?;
        let nonce = Nonce::new(nonce.to_string());
        let claims = match token.claims(&self.verifier(&ready).await, &nonce) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // Signed with a key we do not hold: the provider rotated. Fetch its keys
                // again (at most so often) and check once more.
                self.refresh_keys(&ready).await?;
                token.claims(&self.verifier(&ready).await, &nonce)
            }
            other => other,
        }
        .map_err(|e| SsoError::Rejected(format!("ID token: {e}")))?
        .clone();
        let subject = claims.subject().as_str().to_string();
        let email = claims.email().map(|e| e.as_str().to_string());
        let verified = claims.email_verified().unwrap_or(false);
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_string())
            .or_else(|| claims.preferred_username().map(|u| u.as_str().to_string()))
            .or_else(|| email.clone())
            .unwrap_or_else(|| subject.clone());
        let groups = groups_of(
            &claims.additional_claims().claims,
            &self.settings.groups_claim,
        );
        if !self.settings.email_domains.is_empty() {
            let domain = email
                .as_deref()
                .filter(|_| verified)
                .and_then(|e| e.rsplit_once('@'))
                .map(|(_, d)| d.to_ascii_lowercase());
            if !domain.is_some_and(|d| {
                self.settings
                    .email_domains
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&d))
            }) {
                return Err(SsoError::NotAllowed(format!(
                    "{name}: only people with a verified email at {} may sign in here{}",
                    self.settings.email_domains.join(", "),
                    self.ask()
                )));
            }
        }
        let roles = self.roles_for(&groups);
        if roles.is_empty() {
            return Err(SsoError::NotAllowed(format!(
                "{name} is in no group that cutover gives a role to (groups: {}){}",
                if groups.is_empty() {
                    "none".to_string()
                } else {
                    groups.join(", ")
                },
                self.ask()
            )));
        }
        Ok(Person {
            subject,
            name,
            email: email.filter(|_| verified),
            groups,
            roles,
        })
    }

    fn ask(&self) -> String {
        match &self.settings.contact {
            Some(c) => format!(". Ask {c} for access."),
            None => ". Ask whoever runs cutover for access.".into(),
        }
    }

    /// Every role the groups grant, most authority first (built-in roles in their order, then
    /// plan roles by name); the default roles when no group is mapped.
    pub fn roles_for(&self, groups: &[String]) -> Vec<Role> {
        let mut roles: Vec<Role> = groups
            .iter()
            .filter_map(|g| self.settings.groups.get(g))
            .flatten()
            .copied()
            .collect();
        if roles.is_empty() {
            roles = self.settings.default_roles.clone();
        }
        roles.sort_by_key(|r| std::cmp::Reverse(authority(*r)));
        roles.dedup();
        roles
    }

    async fn verifier(&self, ready: &Ready) -> IdTokenVerifier<'static, CoreJsonWebKey> {
        let keys = (*ready.keys.read().await.0).clone();
        IdTokenVerifier::new_confidential_client(
            ClientId::new(self.settings.client_id.clone()),
            ClientSecret::new(self.settings.client_secret.clone()),
            ready.metadata.issuer().clone(),
            keys,
        )
        .set_allowed_algs([CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256])
    }

    async fn refresh_keys(&self, ready: &Ready) -> Result<(), SsoError> {
        let mut keys = ready.keys.write().await;
        if keys.1.elapsed() < self.settings.jwks_refresh {
            return Ok(());
        }
        let fresh = CoreJsonWebKeySet::fetch_async(ready.metadata.jwks_uri(), &self.call())
            .await
            .map_err(|e| SsoError::Provider(format!("keys: {}", crate::net::root_cause(&e))))?;
        *keys = (Arc::new(fresh), Instant::now());
        Ok(())
    }
}

/// Higher is more authority: admin, lead, product, operator, plan roles, viewer.
fn authority(role: Role) -> u8 {
    match role {
        Role::Admin => 6,
        Role::Lead => 5,
        Role::Product => 4,
        Role::Operator => 3,
        Role::Named(_) => 2,
        Role::Viewer => 1,
        Role::Ingest | Role::Flags | Role::System => 0,
    }
}

/// The groups claim as a list of names (a provider may send one string).
fn groups_of(claims: &HashMap<String, serde_json::Value>, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .take(256)
            .collect(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}
