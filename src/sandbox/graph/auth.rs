//! The identity platform's client-credentials token endpoint and bearer token checks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::request::Reply;
use super::{IncomingRequest, Tenant};
use super::{assertion, roles};
use crate::sandbox::error::GraphError;

/// The `client_assertion_type` of a signed JWT (RFC 7523).
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The tenant named by a token endpoint path `/{tenant}/oauth2/v2.0/token`.
pub fn token_route(path: &str) -> Option<&str> {
    let tenant = path.strip_prefix('/')?.strip_suffix("/oauth2/v2.0/token")?;
    (!tenant.is_empty() && !tenant.contains('/')).then_some(tenant)
}

/// The identity platform's error shape: `{"error","error_description"}`.
fn identity_error(status: u16, error: &str, description: &str) -> Reply {
    let code: Option<u64> = description
        .strip_prefix("AADSTS")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok());
    let mut reply = Reply::ok(json!({
        "error": error,
        "error_description": description,
        "error_codes": code.into_iter().collect::<Vec<_>>(),
        "timestamp": chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
    }));
    reply.status = status;
    reply
}

/// `POST /{tenant}/oauth2/v2.0/token`: client credentials with the secret in the form or as
/// HTTP Basic, or with a client assertion (a certificate's, or a federated issuer's).
pub fn token(tenant: &Tenant, tenant_id: &str, request: &IncomingRequest) -> Reply {
    if request.method != "POST" {
        return identity_error(
            405,
            "invalid_request",
            "AADSTS900561: The endpoint only accepts POST requests.",
        );
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&request.body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let basic = request
        .authorization
        .as_deref()
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
        });
    let identity = &tenant.identity;
    if tenant_id != identity.tenant_id {
        return identity_error(
            400,
            "invalid_request",
            &format!("AADSTS90002: Tenant '{tenant_id}' not found."),
        );
    }
    if field("grant_type") != Some("client_credentials") {
        return identity_error(
            400,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type; use client_credentials.",
        );
    }
    if !field("scope").is_some_and(|scope| scope.ends_with("/.default")) {
        return identity_error(
            400,
            "invalid_scope",
            "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
        );
    }
    let client_id = field("client_id")
        .map(str::to_owned)
        .or_else(|| basic.as_ref().map(|(id, _)| id.clone()));
    if client_id.as_deref() != Some(identity.client_id.as_str()) {
        return identity_error(
            400,
            "unauthorized_client",
            &format!(
                "AADSTS700016: Application with identifier '{}' was not found in the directory '{tenant_id}'.",
                client_id.unwrap_or_default()
            ),
        );
    }
    if let Some(kind) = field("client_assertion_type") {
        if kind != JWT_BEARER {
            return identity_error(
                400,
                "invalid_request",
                &format!(
                    "AADSTS50027: client_assertion_type '{kind}' is not supported; use {JWT_BEARER}."
                ),
            );
        }
        let Some(client_assertion) = field("client_assertion") else {
            return identity_error(
                400,
                "invalid_request",
                "AADSTS900144: The request body must contain the following parameter: 'client_assertion'.",
            );
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        if let Err(refusal) = assertion::check(
            &tenant.registrations,
            &identity.client_id,
            &tenant.assertion_audiences(),
            client_assertion,
            now,
        ) {
            return identity_error(refusal.status, refusal.error, &refusal.description);
        }
        return issue(tenant);
    }
    let secret = field("client_secret")
        .map(str::to_owned)
        .or_else(|| basic.map(|(_, secret)| secret));
    if secret.as_deref() != Some(identity.client_secret.as_str()) {
        return identity_error(
            401,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        );
    }
    issue(tenant)
}

/// A new access token for the app, carrying the roles the tenant grants now.
fn issue(tenant: &Tenant) -> Reply {
    let ttl = tenant.faults().token_ttl_secs;
    let roles = tenant.roles();
    let access_token = roles::token(
        &tenant.identity.tenant_id,
        &tenant.identity.client_id,
        &roles,
        ttl,
    );
    tenant.tokens.lock().expect("tokens lock").insert(
        access_token.clone(),
        (Instant::now() + Duration::from_secs(ttl), Arc::from(roles)),
    );
    Reply::ok(json!({
        "token_type": "Bearer",
        "expires_in": ttl,
        "ext_expires_in": ttl,
        "access_token": access_token,
    }))
}

/// 401 `InvalidAuthenticationToken` for a missing, unknown or expired bearer token.
pub fn check_bearer(
    tenant: &Tenant,
    authorization: Option<&str>,
) -> Result<Arc<[String]>, GraphError> {
    let invalid = |message: &str| GraphError::new(401, "InvalidAuthenticationToken", message);
    let Some(token) = authorization
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Err(invalid("Access token is empty."));
    };
    let granted = tenant
        .tokens
        .lock()
        .expect("tokens lock")
        .get(token)
        .cloned();
    match granted {
        None => Err(invalid(
            "Access token validation failure. Invalid audience.",
        )),
        Some((expires, _)) if Instant::now() >= expires => {
            Err(invalid("Lifetime validation failed, the token is expired."))
        }
        Some((_, roles)) => Ok(roles),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_route_takes_the_tenant_segment() {
        assert_eq!(token_route("/t1/oauth2/v2.0/token"), Some("t1"));
        assert_eq!(token_route("/v1.0/groups"), None);
        assert_eq!(token_route("/a/b/oauth2/v2.0/token"), None);
    }
}
