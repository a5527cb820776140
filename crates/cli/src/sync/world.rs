//! `crmkit sandbox all`: the Close and HubSpot sandboxes seeded from one shared world (the
//! sandbox crate's `shared::world`), so the same companies and people appear in both,
//! HubSpot holding about 70 % of them under shorter names: records to match, link and
//! reconcile. Salesforce has no sandbox on this build.

use std::time::Duration;

use crmkit_core::{Error, Result};
use crmkit_sandbox::close::{CloseSandbox, RunningClose};
use crmkit_sandbox::faults::Faults;
use crmkit_sandbox::hubspot::{HubSpotSandbox, RunningHubSpot};

/// The sandboxes of one world.
pub struct Sandboxes {
    /// The Close sandbox.
    pub close: RunningClose,
    /// The HubSpot sandbox.
    pub hubspot: RunningHubSpot,
}

/// How to start the sandboxes.
#[derive(Debug, Clone)]
pub struct Options {
    /// The world's seed (the same in every sandbox).
    pub seed: u64,
    /// Companies in the world (Close holds all, HubSpot about 70 %).
    pub companies: usize,
    /// Close's port and HubSpot's (0: any free port).
    pub ports: (u16, u16),
    /// Faults both inject from the start.
    pub faults: Faults,
    /// Requests per ten seconds each allows.
    pub rate_limit: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: 7,
            companies: 40,
            ports: (0, 0),
            faults: Faults::default(),
            rate_limit: 1000,
        }
    }
}

/// Starts the sandboxes of `options`' world.
pub async fn start(options: &Options) -> Result<Sandboxes> {
    let close = CloseSandbox::builder()
        .seed(options.seed)
        .leads(options.companies)
        .rate_limit(options.rate_limit, Duration::from_secs(10))
        .faults(options.faults.clone())
        .bind(([127, 0, 0, 1], options.ports.0).into())
        .start()
        .await
        .map_err(|e| Error::config(format!("cannot start the Close sandbox: {e}")))?;
    let hubspot = HubSpotSandbox::builder()
        .seed(options.seed)
        .companies(options.companies)
        .burst_limit(options.rate_limit, Duration::from_secs(10))
        .faults(options.faults.clone())
        .bind(([127, 0, 0, 1], options.ports.1).into())
        .start()
        .await
        .map_err(|e| Error::config(format!("cannot start the HubSpot sandbox: {e}")))?;
    Ok(Sandboxes { close, hubspot })
}

impl Sandboxes {
    /// The environment that points crmkit at these sandboxes.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CLOSE_API_KEY", "sandbox".to_string()),
            ("CLOSE_BASE_URL", self.close.api_url()),
            ("HUBSPOT_ACCESS_TOKEN", "sandbox".to_string()),
            ("HUBSPOT_BASE_URL", self.hubspot.base_url()),
        ]
    }
}

/// Runs `crmkit sandbox all` until Ctrl-C.
pub async fn run(options: Options) -> Result<()> {
    let sb = start(&options).await?;
    println!(
        "# Close and HubSpot sandboxes of world seed {} ({} companies; HubSpot holds about 70 % of them, named without the legal suffix).",
        options.seed, options.companies
    );
    println!("# Salesforce: no sandbox on this build.");
    println!(
        "# Paste these lines into another shell, then try `crmkit sync --dry-run` and `crmkit sync`:"
    );
    for (k, v) in sb.env() {
        println!("export {k}={v}");
    }
    println!("# Ctrl-C stops the sandboxes.");
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| Error::config(format!("cannot wait for Ctrl-C: {e}")))?;
    Ok(())
}
