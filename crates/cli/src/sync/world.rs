//! `crmkit sandbox all`: the Close, HubSpot and Salesforce sandboxes seeded from one shared
//! world (the sandbox crate's `shared::world`), so the same companies and people appear in
//! each, HubSpot holding about 70 % of them under shorter names and Salesforce about half:
//! records to match, link and reconcile.

use std::time::Duration;

use crmkit_core::Result;
use crmkit_sandbox::close::{CloseSandbox, RunningClose};
use crmkit_sandbox::faults::Faults;
use crmkit_sandbox::hubspot::{HubSpotSandbox, RunningHubSpot};
use crmkit_sandbox::salesforce::{RunningSalesforce, SalesforceSandbox};

/// The sandboxes of one world.
pub struct Sandboxes {
    /// The Close sandbox.
    pub close: RunningClose,
    /// The HubSpot sandbox.
    pub hubspot: RunningHubSpot,
    /// The Salesforce sandbox.
    pub salesforce: RunningSalesforce,
}

/// How to start the sandboxes.
#[derive(Debug, Clone)]
pub struct Options {
    /// The world's seed (the same in every sandbox).
    pub seed: u64,
    /// Companies in the world (Close holds all, HubSpot about 70 %, Salesforce about half).
    pub companies: usize,
    /// Close's port, HubSpot's and Salesforce's (0: any free port).
    pub ports: (u16, u16, u16),
    /// Faults each injects from the start.
    pub faults: Faults,
    /// Requests per ten seconds Close and HubSpot allow (Salesforce counts a daily quota).
    pub rate_limit: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: 7,
            companies: 40,
            ports: (0, 0, 0),
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
        .map_err(crate::cannot_start("Close", options.ports.0))?;
    let hubspot = HubSpotSandbox::builder()
        .seed(options.seed)
        .companies(options.companies)
        .burst_limit(options.rate_limit, Duration::from_secs(10))
        .faults(options.faults.clone())
        .bind(([127, 0, 0, 1], options.ports.1).into())
        .start()
        .await
        .map_err(crate::cannot_start("HubSpot", options.ports.1))?;
    let salesforce = SalesforceSandbox::builder()
        .seed(options.seed)
        .companies(options.companies)
        .faults(options.faults.clone())
        .bind(([127, 0, 0, 1], options.ports.2).into())
        .start()
        .await
        .map_err(crate::cannot_start("Salesforce", options.ports.2))?;
    Ok(Sandboxes {
        close,
        hubspot,
        salesforce,
    })
}

impl Sandboxes {
    /// The environment that points crmkit at these sandboxes.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CLOSE_API_KEY", "sandbox".to_string()),
            ("CLOSE_BASE_URL", self.close.api_url()),
            ("HUBSPOT_ACCESS_TOKEN", "sandbox".to_string()),
            ("HUBSPOT_BASE_URL", self.hubspot.base_url()),
            ("SF_INSTANCE_URL", self.salesforce.instance_url()),
            ("SF_LOGIN_URL", self.salesforce.instance_url()),
            ("SF_CLIENT_ID", "crmkit-sandbox".to_string()),
            ("SF_CLIENT_SECRET", "crmkit-sandbox".to_string()),
        ]
    }
}

/// Runs `crmkit sandbox all` until Ctrl-C.
pub async fn run(options: Options) -> Result<()> {
    let sb = start(&options).await?;
    println!(
        "# Close, HubSpot and Salesforce sandboxes of world seed {} ({} companies; HubSpot holds about 70 % of them, named without the legal suffix, Salesforce about half).",
        options.seed, options.companies
    );
    println!(
        "# Paste these lines into another shell, then try `crmkit sync --dry-run` and `crmkit sync`:"
    );
    for (k, v) in sb.env() {
        println!("export {k}={v}");
    }
    println!("# Ctrl-C stops the sandboxes.");
    crate::until_ctrl_c().await?;
    Ok(())
}
