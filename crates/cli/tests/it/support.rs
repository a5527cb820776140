//! Starting a sandbox and running the binary against it.

use std::process::{Command, Output};

use crmkit_sandbox::close::{CloseSandbox, RunningClose};

/// A seeded Close sandbox with the rate limit out of the way.
pub async fn sandbox(leads: usize) -> RunningClose {
    CloseSandbox::builder()
        .seed(3)
        .leads(leads)
        .rate_limit(1_000_000, std::time::Duration::from_secs(1))
        .start()
        .await
        .expect("the sandbox starts")
}

/// Runs `crmkit args…` pointed at `api_url` (if any) from an empty directory, so no
/// `crmkit.toml` or `.env` of the developer's leaks in; fails the test unless it succeeds.
pub async fn crmkit(api_url: Option<String>, args: &[&str]) -> String {
    let output = crmkit_output(api_url, args).await;
    assert!(
        output.status.success(),
        "crmkit failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("stdout is UTF-8")
}

/// Runs `crmkit args…` as [`crmkit`] does, whatever its outcome.
pub async fn crmkit_output(api_url: Option<String>, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || run(api_url, None, None, "it-token", &args))
        .await
        .expect("the runner thread ends")
}

/// Runs `crmkit args…` pointed at the HubSpot server at `base_url` with any token, as
/// [`crmkit_output`] does for Close.
pub async fn crmkit_hubspot(base_url: String, args: &[&str]) -> Output {
    crmkit_hubspot_as(base_url, "it-token", args).await
}

/// [`crmkit_hubspot`] with the access token `token`.
pub async fn crmkit_hubspot_as(base_url: String, token: &str, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let token = token.to_string();
    tokio::task::spawn_blocking(move || run(None, Some(base_url), None, &token, &args))
        .await
        .expect("the runner thread ends")
}

/// Runs `crmkit args…` pointed at the Salesforce instance at `instance_url` (also its login
/// host) with the client-credentials flow, as [`crmkit_output`] does for Close.
pub async fn crmkit_salesforce(instance_url: String, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || run(None, None, Some(instance_url), "it-token", &args))
        .await
        .expect("the runner thread ends")
}

/// The Salesforce variables a test run clears, so a developer's own never leak in.
pub const SALESFORCE_VARS: &[&str] = &[
    "SF_CLIENT_ID",
    "SF_USERNAME",
    "SF_PRIVATE_KEY_PATH",
    "SF_INSTANCE_URL",
    "SF_LOGIN_URL",
    "SF_API_VERSION",
    "SF_CLIENT_SECRET",
    "SF_REFRESH_TOKEN",
    "SF_ACCESS_TOKEN",
    "SF_JWT_AUDIENCE",
];

fn run(
    api_url: Option<String>,
    hubspot_url: Option<String>,
    salesforce_url: Option<String>,
    token: &str,
    args: &[String],
) -> Output {
    let dir = std::env::temp_dir().join(format!("crmkit-cli-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crmkit"));
    cmd.current_dir(&dir)
        .arg("--config")
        .arg(dir.join("absent.toml"))
        .args(args)
        .env_remove("CLOSE_BASE_URL")
        .env_remove("CLOSE_WEBHOOK_SECRET")
        .env("CLOSE_API_KEY", "it-key")
        .env_remove("HUBSPOT_ACCESS_TOKEN")
        .env_remove("HUBSPOT_BASE_URL");
    for var in SALESFORCE_VARS {
        cmd.env_remove(var);
    }
    if let Some(url) = salesforce_url {
        // Only Salesforce is configured, so `doctor` checks nothing out of reach.
        cmd.env_remove("CLOSE_API_KEY")
            .env("SF_INSTANCE_URL", &url)
            .env("SF_LOGIN_URL", &url)
            .env("SF_CLIENT_ID", "it-client")
            .env("SF_CLIENT_SECRET", "it-secret");
    }
    if let Some(url) = hubspot_url {
        // Only HubSpot is configured, so `doctor` checks nothing out of reach.
        cmd.env_remove("CLOSE_API_KEY")
            .env("HUBSPOT_BASE_URL", url)
            .env("HUBSPOT_ACCESS_TOKEN", token);
    }
    if let Some(url) = api_url {
        cmd.env("CLOSE_BASE_URL", url);
    }
    cmd.output().expect("the crmkit binary runs")
}
