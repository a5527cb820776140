//! The SOAP `login` call (`POST /services/Soap/u/{version}` or `/c/{version}`), which
//! jsforce's `login(username, password)` and simple-salesforce's username-password
//! sign-in without a consumer key use. It takes the same credentials as the password grant
//! and answers a `loginResponse` with `sessionId`, `serverUrl`, `userId` and
//! `userInfo.organizationId`, or an `INVALID_LOGIN` fault
//! (developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_login.htm).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::HeaderMap;
use axum::response::Response;

use super::State;
use super::api_error::text;

/// The text of the first element named `name` (any namespace prefix), unescaped.
fn element(xml: &str, name: &str) -> Option<String> {
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>')?;
        let tag = &rest[..end];
        let local = tag.split_whitespace().next()?.rsplit(':').next()?;
        if local == name && !tag.starts_with('/') && !tag.ends_with('/') {
            let body = &rest[end + 1..];
            let close = body.find("</")?;
            return Some(
                body[..close]
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\"")
                    .replace("&apos;", "'")
                    .replace("&amp;", "&"),
            );
        }
    }
    None
}

fn fault(code: &str, message: &str) -> Response {
    text(
        500,
        "text/xml; charset=utf-8",
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:sf=\"urn:fault.partner.soap.sforce.com\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode><faultstring>{code}: {message}</faultstring><detail><sf:LoginFault xsi:type=\"sf:LoginFault\"><sf:exceptionCode>{code}</sf:exceptionCode><sf:exceptionMessage>{message}</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        ),
    )
}

/// `POST /services/Soap/{u|c}/{version}` with a `login` envelope.
pub(crate) async fn login(
    AxState(state): AxState<Arc<State>>,
    Path((kind, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let xml = String::from_utf8_lossy(&body);
    let (Some(user), Some(password)) = (element(&xml, "username"), element(&xml, "password"))
    else {
        return fault(
            "INVALID_LOGIN",
            "Invalid username, password, security token; or user locked out.",
        );
    };
    let auth = &state.config.auth;
    let user_ok = !user.is_empty() && (auth.usernames.is_empty() || auth.usernames.contains(&user));
    // A strict sandbox without a configured password accepts none.
    let pass_ok = !password.is_empty()
        && match auth.password.as_deref() {
            Some(p) => p == password,
            None => !auth.strict(),
        };
    if !user_ok || !pass_ok {
        return fault(
            "INVALID_LOGIN",
            "Invalid username, password, security token; or user locked out.",
        );
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let own = format!("{}://{host}", state.scheme());
    let (org, user_id) = {
        let data = state.read();
        (data.org_id.clone(), data.user_id.clone())
    };
    let session = super::oauth::issue(&state, &org);
    let org15 = org.get(..15).unwrap_or(&org);
    text(
        200,
        "text/xml; charset=utf-8",
        format!(
            concat!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns=\"urn:partner.soap.sforce.com\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">",
                "<soapenv:Body><loginResponse><result>",
                "<metadataServerUrl>{own}/services/Soap/m/{version}/{org15}</metadataServerUrl>",
                "<passwordExpired>false</passwordExpired><sandbox>true</sandbox>",
                "<serverUrl>{own}/services/Soap/{kind}/{version}/{org15}</serverUrl>",
                "<sessionId>{session}</sessionId><userId>{user_id}</userId>",
                "<userInfo><organizationId>{org}</organizationId><userEmail>{user}</userEmail>",
                "<userId>{user_id}</userId><userName>{user}</userName></userInfo>",
                "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
            ),
            own = own,
            version = version,
            org15 = org15,
            kind = kind,
            session = session,
            user_id = user_id,
            org = org,
            user = super::outbound::escape(&user),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_elements_with_any_prefix() {
        let xml = "<env:Body><n1:login xmlns:n1=\"urn:partner.soap.sforce.com\"><n1:username>a@b.c</n1:username><n1:password>p&amp;w</n1:password></n1:login></env:Body>";
        assert_eq!(element(xml, "username").as_deref(), Some("a@b.c"));
        assert_eq!(element(xml, "password").as_deref(), Some("p&w"));
        assert_eq!(element(xml, "missing"), None);
    }
}
