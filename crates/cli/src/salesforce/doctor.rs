//! `crmkit doctor` for Salesforce: the variables, a token, the API version and the daily
//! request quota left.

use crmkit_core::ErrorKind;
use crmkit_core::http::ApiRequest;

use crate::config::Settings;

/// The variables of the JWT bearer flow and of where it signs in, which doctor lists.
const CHECKED_VARS: &[&str] = &[
    "SF_CLIENT_ID",
    "SF_USERNAME",
    "SF_PRIVATE_KEY_PATH",
    "SF_INSTANCE_URL",
    "SF_LOGIN_URL",
];

/// Checks the configured Salesforce sign-in and prints one line per finding; returns how
/// many problems it found (none when Salesforce is not configured).
pub async fn check(settings: &Settings) -> usize {
    if !settings.salesforce_configured() {
        println!(
            "salesforce: not configured (set SF_CLIENT_ID, SF_USERNAME, SF_PRIVATE_KEY_PATH, SF_INSTANCE_URL; SF_LOGIN_URL for a sandbox org)"
        );
        return 0;
    }
    let present: Vec<String> = CHECKED_VARS
        .iter()
        .map(|name| match (settings.salesforce_var(name), *name) {
            (Some(_), _) => format!("{name} set"),
            (None, "SF_LOGIN_URL") => format!(
                "{name} not set (default {})",
                crmkit_salesforce::auth::LOGIN_URL
            ),
            (None, _) => format!("{name} not set"),
        })
        .collect();
    println!("salesforce settings: {}", present.join(", "));
    let jwt_parts = ["SF_USERNAME", "SF_PRIVATE_KEY_PATH"]
        .iter()
        .filter(|n| settings.salesforce_var(n).is_some())
        .count();
    let mut problems = usize::from(jwt_parts == 1);
    if jwt_parts == 1 {
        println!(
            "salesforce settings: FAILED — the JWT bearer flow needs both SF_USERNAME and SF_PRIVATE_KEY_PATH"
        );
    }
    let client = match settings.salesforce_client() {
        Ok(c) => c,
        Err(e) => {
            println!("salesforce: FAILED — {e}");
            return problems + 1;
        }
    };
    let version = client.api_version().to_string();
    // The version's resource list is the cheapest authenticated read: answering it takes a
    // token and the version (REST API Developer Guide, "Resources by Version",
    // developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_discoveryresource.htm).
    match client.raw(&ApiRequest::get("")).await {
        Ok(_) => {
            println!("salesforce token: ok — obtained and accepted");
            println!(
                "salesforce API: ok — version {version} answers at {}",
                client.transport().current_base_url()
            );
        }
        Err(e) => {
            let (what, hint) = match e.kind() {
                ErrorKind::Auth => (
                    "token",
                    "check SF_CLIENT_ID, SF_USERNAME and the key (its certificate must be uploaded to the connected app, the user pre-authorized), and SF_LOGIN_URL (https://test.salesforce.com for a sandbox org)",
                ),
                ErrorKind::NotFound => (
                    "API",
                    "the org does not serve this API version; set SF_API_VERSION to one it lists at /services/data/",
                ),
                ErrorKind::Transient => (
                    "API",
                    "Salesforce could not be reached; check the network, SF_INSTANCE_URL and SF_LOGIN_URL",
                ),
                _ => ("API", "see the error above"),
            };
            println!("salesforce {what}: FAILED — {e}\n       fix: {hint}");
            return problems + 1;
        }
    }
    match client.limits().await {
        Ok(limits) => match limits.get("DailyApiRequests") {
            Some(l) if l.remaining > 0 => println!(
                "salesforce limits: ok — {} of {} daily API requests left",
                l.remaining, l.max
            ),
            Some(l) => {
                problems += 1;
                println!(
                    "salesforce limits: FAILED — none of the {} daily API requests left; calls fail until the 24-hour window moves on",
                    l.max
                );
            }
            None => println!("salesforce limits: not checked — the org lists no DailyApiRequests"),
        },
        Err(e) => {
            problems += 1;
            println!("salesforce limits: FAILED — {e}");
        }
    }
    problems
}
