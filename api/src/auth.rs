//! Who is calling: a JWT (RFC 7519) signed with EdDSA by one of an organization's member keys.
//!
//! No shared secret and no token server: a partner's system (or the `pharmalink token` CLI)
//! signs a short-lived token with the same ed25519 key it signs transactions with, in the
//! manner of RFC 7523 client assertions. The node checks the signature with the key named in
//! `sub`, that the key is an active member key of an organization (IAM state on the ledger),
//! that `aud` is this chain, and the lifetime. Revoking the key on the ledger revokes access.
//!
//! Claims: `sub` (hex public key), `aud` (chain id), `iat`, `exp` (at most
//! [`TOKEN_LIFETIME_MAX_S`] after `iat`).
//!
//! Services that prefer OAuth 2.0 client credentials exchange such a self-signed assertion
//! (RFC 7523, `client_assertion`) at `POST /v1/auth/token` for an access token the node signs
//! with its own key (`iss` = the node's public key, with `org` and `role` claims, 15 minutes);
//! `/.well-known/jwks.json` publishes that key. Either kind of token is accepted; both are
//! re-checked against the IAM state on every request, so revoking a member key revokes its
//! tokens at once.

use crate::http::problem;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use pharmalink_contracts::contract::{Gln, LedgerState, Role};
use pharmalink_contracts::iam;
use pharmalink_ledger::{LedgerRead, PublicKey, SigningKey};
use serde::{Deserialize, Serialize};

/// Longest token lifetime accepted.
pub const TOKEN_LIFETIME_MAX_S: u64 = 3600;
/// Clock skew tolerated between client and node.
pub const CLOCK_SKEW_S: u64 = 60;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    /// Present on access tokens the node issued: its public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// On node-issued tokens: the organization's GLN and role when issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Lifetime of the access tokens the node issues.
pub const ACCESS_TOKEN_LIFETIME_S: u64 = 900;

static TOKEN_ISSUER: std::sync::OnceLock<PublicKey> = std::sync::OnceLock::new();

/// The key node-issued tokens are signed with (set once, when the router is built).
pub fn set_token_issuer(key: PublicKey) {
    let _ = TOKEN_ISSUER.set(key);
}

/// Signs `claims` with `key` (EdDSA).
pub fn sign_claims(key: &SigningKey, claims: &Claims) -> Result<String, String> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        claims,
        &EncodingKey::from_ed_der(&pkcs8(&key.seed())),
    )
    .map_err(|e| e.to_string())
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The member key, for callers that proved one (not for users of an external issuer).
    pub key: Option<PublicKey>,
    pub organization: iam::Organization,
}

/// An external OpenID Connect issuer the node trusts to say which organization a user works
/// for: its tokens are verified with its JWKS, must name `audience`, and carry the
/// organization's GLN in `gln_claim`, which must be one of `organizations`.
#[derive(Clone, Debug)]
pub struct OidcIssuer {
    pub issuer: String,
    pub audience: String,
    pub keys: jsonwebtoken::jwk::JwkSet,
    pub gln_claim: String,
    pub organizations: Vec<Gln>,
}

static OIDC_ISSUERS: std::sync::OnceLock<Vec<OidcIssuer>> = std::sync::OnceLock::new();

/// Configures the external issuers (once, at start-up).
pub fn set_oidc_issuers(issuers: Vec<OidcIssuer>) {
    let _ = OIDC_ISSUERS.set(issuers);
}

/// Verifies a token of an external issuer and finds the organization it vouches for.
fn authenticate_oidc(
    token: &str,
    header: &Header,
    issuer: &OidcIssuer,
    store: &dyn LedgerRead,
) -> Result<Caller, AuthError> {
    let unauthenticated = |reason: String| AuthError::Unauthenticated(reason);
    let jwk = match &header.kid {
        Some(kid) => issuer.keys.find(kid),
        None if issuer.keys.keys.len() == 1 => issuer.keys.keys.first(),
        None => None,
    }
    .ok_or_else(|| {
        unauthenticated(format!(
            "token kid {:?}: not in the JWKS of {}",
            header.kid, issuer.issuer
        ))
    })?;
    let decoding =
        DecodingKey::from_jwk(jwk).map_err(|e| unauthenticated(format!("JWKS key: {e}")))?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[issuer.audience.as_str()]);
    validation.set_issuer(&[issuer.issuer.as_str()]);
    validation.set_required_spec_claims(&["exp", "aud", "iss"]);
    validation.leeway = CLOCK_SKEW_S;
    let claims = jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation)
        .map_err(|e| unauthenticated(format!("token of {}: {e}", issuer.issuer)))?
        .claims;
    let gln_text = claims[issuer.gln_claim.as_str()]
        .as_str()
        .ok_or_else(|| unauthenticated(format!("token has no {} claim", issuer.gln_claim)))?;
    let gln = Gln::parse(gln_text)
        .map_err(|r| unauthenticated(format!("{}: {}", issuer.gln_claim, r.message)))?;
    if !issuer.organizations.contains(&gln) {
        return Err(unauthenticated(format!(
            "{} may not vouch for organization {gln}",
            issuer.issuer
        )));
    }
    let state = LedgerState::new(store);
    let organization = iam::organization(&state, &gln);
    if let Some(error) = state.take_error() {
        return Err(AuthError::Unavailable(error.to_string()));
    }
    let organization = organization.ok_or_else(|| {
        unauthenticated(format!(
            "organization {gln} is not on this network (iam.org_unknown)"
        ))
    })?;
    Ok(Caller {
        key: None,
        organization,
    })
}

impl Caller {
    pub fn role(&self) -> Role {
        self.organization.role()
    }
    pub fn is_regulator(&self) -> bool {
        self.role() == Role::Regulator
    }
}

/// PKCS#8 v1 wrapping of an ed25519 seed (RFC 8410), what ring's key pair reader takes.
fn pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(seed);
    der
}

/// Signs a token for `key` on `chain_id`, valid from `now_s` for `ttl_s` seconds.
pub fn issue(key: &SigningKey, chain_id: &str, now_s: u64, ttl_s: u64) -> Result<String, String> {
    let claims = Claims {
        sub: key.public_key().to_hex(),
        aud: chain_id.to_string(),
        iat: now_s,
        exp: now_s + ttl_s,
        iss: None,
        org: None,
        role: None,
    };
    sign_claims(key, &claims)
}

/// Why a request is not authenticated or not allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// 401: no token, or a token that does not check.
    Unauthenticated(String),
    /// 403: a valid caller without the right.
    Forbidden(String),
    /// 503: the ledger could not be read.
    Unavailable(String),
}

impl AuthError {
    pub fn into_response(self) -> Response {
        match self {
            AuthError::Unauthenticated(reason) => {
                let mut response = problem(
                    StatusCode::UNAUTHORIZED,
                    "Not authenticated",
                    reason.clone(),
                    Some("authorization"),
                );
                let challenge = format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    reason.replace('"', "'")
                );
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, value);
                }
                response
            }
            AuthError::Forbidden(reason) => {
                problem(StatusCode::FORBIDDEN, "Not allowed", reason, None)
            }
            AuthError::Unavailable(reason) => problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Cannot check the caller now",
                reason,
                None,
            ),
        }
    }
}

/// Today's date (UTC).
pub fn today() -> pharmalink_contracts::contract::Date {
    pharmalink_contracts::contract::Date::from_unix_days((now_s() / 86_400) as i64)
}

pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The claims of a JWT as sent, before any signature check (to pick the key that checks it).
pub fn unverified_payload(token: &str) -> Result<serde_json::Value, String> {
    let payload = token.split('.').nth(1).ok_or("token: not three parts")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|e| format!("token payload: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("token claims: {e}"))
}

/// Authenticates the bearer token of `headers` against the ledger's IAM state at `now_s`.
pub fn authenticate(
    headers: &HeaderMap,
    store: &dyn LedgerRead,
    now_s: u64,
) -> Result<Caller, AuthError> {
    let unauthenticated = |reason: String| AuthError::Unauthenticated(reason);
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            unauthenticated(
                "send Authorization: Bearer <JWT signed with an organization's member key>".into(),
            )
        })?
        .to_str()
        .map_err(|_| unauthenticated("the Authorization header is not ASCII".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .ok_or_else(|| unauthenticated("the Authorization scheme must be Bearer".into()))?
        .trim();
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| unauthenticated(format!("token: {e}")))?;
    // The claims as sent, to choose the verification key; the signature is checked below.
    let payload = unverified_payload(token).map_err(unauthenticated)?;
    // An external issuer's token: its JWKS says which algorithms and keys.
    if let Some(iss) = payload["iss"].as_str() {
        if let Some(issuer) = OIDC_ISSUERS
            .get()
            .into_iter()
            .flatten()
            .find(|i| i.issuer == iss)
        {
            return authenticate_oidc(token, &header, issuer, store);
        }
    }
    if header.alg != Algorithm::EdDSA {
        return Err(unauthenticated(format!(
            "token: alg {:?}, only EdDSA is accepted",
            header.alg
        )));
    }
    let unverified: Claims = serde_json::from_value(payload)
        .map_err(|e| unauthenticated(format!("token claims: {e}")))?;
    let key = PublicKey::from_hex(&unverified.sub)
        .map_err(|e| unauthenticated(format!("token sub: {e}")))?;
    // A node-issued access token is signed by the node's key, a client's own by its member key.
    let signer = match &unverified.iss {
        None => key,
        Some(iss) => match TOKEN_ISSUER.get() {
            Some(node) if node.to_hex() == *iss => *node,
            _ => {
                return Err(unauthenticated(format!(
                    "token iss {iss} is not this node's token key"
                )))
            }
        },
    };
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[store.genesis().chain_id.as_str()]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    validation.leeway = CLOCK_SKEW_S;
    validation.validate_exp = false; // checked below against `now_s`
    let decoding = DecodingKey::from_ed_der(&signer.0);
    let claims = jsonwebtoken::decode::<Claims>(token, &decoding, &validation)
        .map_err(|e| unauthenticated(format!("token: {e}")))?
        .claims;
    if claims.exp + CLOCK_SKEW_S < now_s {
        return Err(unauthenticated(format!(
            "token expired at {} (now {now_s})",
            claims.exp
        )));
    }
    if claims.iat > now_s + CLOCK_SKEW_S {
        return Err(unauthenticated("token issued in the future".into()));
    }
    if claims.exp.saturating_sub(claims.iat) > TOKEN_LIFETIME_MAX_S {
        return Err(unauthenticated(format!(
            "token lifetime {} s exceeds {TOKEN_LIFETIME_MAX_S} s",
            claims.exp.saturating_sub(claims.iat)
        )));
    }
    let state = LedgerState::new(store);
    let found = iam::signer_organization(&state, &key);
    if let Some(error) = state.take_error() {
        return Err(AuthError::Unavailable(error.to_string()));
    }
    let organization = found.map_err(|r| unauthenticated(format!("{} ({})", r.message, r.code)))?;
    Ok(Caller {
        key: Some(key),
        organization,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use pharmalink_contracts::contract::fixtures::{
        demo_organizations, DEMO_TIME_MS, REGULATOR, WHOLESALER,
    };
    use pharmalink_contracts::contract::{bootstrap, Overlay};
    use pharmalink_ledger::builder::{genesis, ChainBuilder};
    use pharmalink_ledger::{LedgerWrite, MemStore};

    fn ledger() -> MemStore {
        let validator = SigningKey::from_seed([9; 32]);
        let doc = genesis(
            "pharmalink-auth",
            DEMO_TIME_MS,
            std::slice::from_ref(&validator),
            Vec::new(),
        )
        .unwrap();
        let mut store = MemStore::new(doc.clone());
        let mut chain = ChainBuilder::new(doc, vec![validator]).unwrap();
        let state = LedgerState::new(&store);
        let mut overlay = Overlay::new(&state);
        bootstrap(&mut overlay, &demo_organizations(), DEMO_TIME_MS).unwrap();
        let (writes, entries) = overlay.into_parts();
        let mut commit = chain
            .next_block(Vec::new(), DEMO_TIME_MS + 1, pharmalink_ledger::Hash::ZERO)
            .unwrap();
        commit.state_writes = writes;
        commit.index_entries = entries;
        store.append(&commit).unwrap();
        store
    }

    fn bearer(token: &str) -> axum::http::HeaderMap {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn an_external_oidc_issuer_vouches_only_for_its_organizations_with_its_keys() {
        let store = ledger();
        let idp = SigningKey::from_seed([42; 32]);
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(idp.public_key().0);
        // Issuers commonly sign with ECDSA or RSA, not EdDSA: a P-256 key too.
        let rng = ring::rand::SystemRandom::new();
        let ec_alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let ec_pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(ec_alg, &rng).unwrap();
        let ec_public = {
            use ring::signature::KeyPair;
            ring::signature::EcdsaKeyPair::from_pkcs8(ec_alg, ec_pkcs8.as_ref(), &rng)
                .unwrap()
                .public_key()
                .as_ref()
                .to_vec()
        };
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let keys: jsonwebtoken::jwk::JwkSet = serde_json::from_value(serde_json::json!({
            "keys": [
                {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA", "use": "sig"},
                {"kty": "EC", "crv": "P-256", "x": b64(&ec_public[1..33]), "y": b64(&ec_public[33..]), "kid": "ec1", "alg": "ES256", "use": "sig"}
            ]
        }))
        .unwrap();
        set_oidc_issuers(vec![OidcIssuer {
            issuer: "https://login.state-board.example".into(),
            audience: "pharmalink".into(),
            keys,
            gln_claim: "gln".into(),
            organizations: vec![REGULATOR.gln()],
        }]);
        let now = 1_800_000_000;
        let token = |signer: &SigningKey, gln: &str, aud: &str, exp: u64| {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some("k1".into());
            jsonwebtoken::encode(
                &header,
                &serde_json::json!({"iss": "https://login.state-board.example", "sub": "inspector-7", "aud": aud, "exp": exp, "iat": now, "gln": gln}),
                &EncodingKey::from_ed_der(&pkcs8(&signer.seed())),
            )
            .unwrap()
        };
        let caller = authenticate(
            &bearer(&token(&idp, REGULATOR.gln, "pharmalink", now + 300)),
            &store,
            now,
        )
        .unwrap();
        assert!(caller.is_regulator());
        assert!(caller.key.is_none());
        let mut es256 = Header::new(Algorithm::ES256);
        es256.kid = Some("ec1".into());
        let ec_token = jsonwebtoken::encode(
            &es256,
            &serde_json::json!({"iss": "https://login.state-board.example", "sub": "inspector-8", "aud": "pharmalink", "exp": now + 300, "iat": now, "gln": REGULATOR.gln}),
            &EncodingKey::from_ec_der(ec_pkcs8.as_ref()),
        )
        .unwrap();
        let caller = authenticate(&bearer(&ec_token), &store, now).unwrap();
        assert!(
            caller.is_regulator(),
            "an ES256 token of the issuer is accepted"
        );
        let refused = |t: String| match authenticate(&bearer(&t), &store, now) {
            Err(AuthError::Unauthenticated(reason)) => reason,
            other => panic!("accepted: {other:?}"),
        };
        assert!(
            refused(token(&idp, WHOLESALER.gln, "pharmalink", now + 300)).contains("may not vouch")
        );
        assert!(refused(token(&idp, REGULATOR.gln, "elsewhere", now + 300)).contains("token of"));
        assert!(refused(token(
            &SigningKey::from_seed([43; 32]),
            REGULATOR.gln,
            "pharmalink",
            now + 300
        ))
        .contains("token of"));
        let expired = refused(token(&idp, REGULATOR.gln, "pharmalink", 1_000));
        assert!(expired.contains("xpired"), "{expired}");
    }
}
