//! `crmkit.toml`: which CRMs to keep in agreement, which fields, and who wins a conflict.
//!
//! See the crate docs for the full reference; [`render_default`] prints a commented default.

use std::collections::BTreeMap;
use std::fmt;

use crmkit_core::{Crm, Error, ObjectKind, Result};
use serde::{Deserialize, Serialize};

/// The sync configuration in `crmkit.toml`. Other tables of the file (`[close]`,
/// `[hubspot]`: credentials and URLs, read by the CLI) are left alone; unknown keys inside
/// the sync tables are errors.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Config {
    /// Which CRMs take part.
    pub sync: SyncSection,
    /// Companies (Close leads, HubSpot companies, Salesforce Accounts).
    #[serde(default = "EntityConfig::company")]
    pub company: EntityConfig,
    /// People (contacts in all three).
    #[serde(default = "EntityConfig::person")]
    pub person: EntityConfig,
    /// Deals (Close opportunities, HubSpot deals, Salesforce Opportunities).
    #[serde(default = "EntityConfig::deal")]
    pub deal: EntityConfig,
    /// Activities (Close notes, calls, emails and meetings; HubSpot engagements; Salesforce
    /// Tasks and Events). Off unless the file has an `[activity]` table (which turns them on
    /// unless it says `enabled = false`): a config written before activities were synced
    /// keeps doing what it did, rather than copying every past activity on its next run.
    #[serde(default = "EntityConfig::activity")]
    pub activity: EntityConfig,
}

/// The `[sync]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// The CRMs kept in agreement: two or three of `close`, `hubspot`, `salesforce`.
    pub crms: Vec<Crm>,
    /// Plan only: report what would be written and write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// How records that failed to sync are retried (`[sync.retry]`).
    #[serde(default)]
    pub retry: RetryConfig,
}

/// The `[sync.retry]` table: records that failed to sync go on a retry list and are read
/// again after `first_delay_seconds`, doubled after each failure up to
/// `max_delay_seconds`; after `max_attempts` failures a record is given up (still listed and
/// reported, never dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Failures after which a record is given up (at least 1).
    pub max_attempts: u32,
    /// The wait after the first failure, in seconds (0: the next run).
    pub first_delay_seconds: u64,
    /// The longest wait between two attempts, in seconds.
    pub max_delay_seconds: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            first_delay_seconds: 60,
            max_delay_seconds: 6 * 3600,
        }
    }
}

impl RetryConfig {
    /// The store's retry policy for these settings.
    pub fn policy(&self) -> crmkit_store::RetryPolicy {
        crmkit_store::RetryPolicy {
            first_delay: std::time::Duration::from_secs(self.first_delay_seconds),
            max_delay: std::time::Duration::from_secs(self.max_delay_seconds),
            max_attempts: self.max_attempts,
        }
    }
}

/// One field's source of truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// The `primary` CRM wins; the others only fill its empty fields.
    Primary,
    /// The value of the CRM whose record changed last (by that CRM's own modification time).
    LastWriteWins,
    /// Nothing is written; the conflict is queued for a person to decide.
    Manual,
}

/// `[<entity>.conflict]`: how a field that changed differently in two CRMs is settled.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictConfig {
    /// `primary`, `last_write_wins` or `manual`; `primary` when only `primary` is given,
    /// `last_write_wins` when neither is.
    pub policy: Option<PolicyKind>,
    /// The CRM that wins under the `primary` policy.
    pub primary: Option<Crm>,
    /// Per-field rules that override the policy: a CRM name (that CRM wins the field),
    /// `last_write_wins` or `manual`.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// How one field (or a whole entity) settles a conflict, after the config is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// This CRM's value wins when it has one; the others only fill it when it is empty.
    Primary(Crm),
    /// The most recently modified record's value wins.
    LastWriteWins,
    /// Queue a conflict.
    Manual,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Primary(c) => write!(f, "primary = {c}"),
            Rule::LastWriteWins => f.write_str("last_write_wins"),
            Rule::Manual => f.write_str("manual"),
        }
    }
}

/// What a deletion in one CRM does to the linked records in the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletePolicy {
    /// Nothing: the link is dropped, the other records stay (the default: never lose data).
    #[default]
    Ignore,
    /// The deletion is put in the review queue; nothing is deleted.
    Flag,
    /// The linked records are deleted too.
    Propagate,
}

/// How a custom field's number is stored in one CRM, so values compare across CRMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Money in minor units (Close stores amounts in cents); the unified value is decimal.
    Cents,
    /// Money as a decimal number (the unified form).
    Decimal,
    /// A probability 0–100 (the unified form).
    Percent,
    /// A probability 0.0–1.0.
    Fraction,
}

/// What a custom field holds, which decides how its values compare across CRMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Text (the default): compared as trimmed text, never read as a number, so `"2.10"`
    /// and `"2.1"` differ; a number a CRM gives for it is compared as its text.
    #[default]
    Text,
    /// A number: text that reads as a number is that number (HubSpot returns every property
    /// as text, so its `"1000.00"` equals Close's `1000`).
    Number,
}

/// `[<entity>.custom.<name>]`: one custom field and where it lives in each CRM.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomField {
    /// The Close custom field (`custom.cf_…` or `cf_…`).
    pub close: Option<String>,
    /// The HubSpot property name.
    pub hubspot: Option<String>,
    /// The Salesforce field API name (`Tier__c`).
    pub salesforce: Option<String>,
    /// How a CRM stores the number when it differs from the unified form.
    #[serde(default)]
    pub units: BTreeMap<Crm, Unit>,
    /// `type = "text" | "number"`; unset means text, or number when `units` are given.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<FieldType>,
}

impl CustomField {
    /// The key of this field in `crm`'s records' `custom` map, if it is mapped there.
    pub fn key(&self, crm: Crm) -> Option<&str> {
        let raw = match crm {
            Crm::Close => self.close.as_deref(),
            Crm::HubSpot => self.hubspot.as_deref(),
            Crm::Salesforce => self.salesforce.as_deref(),
        }?;
        Some(raw.strip_prefix("custom.").unwrap_or(raw))
    }

    /// What the field holds: its `type`, else a number when it has `units`, else text.
    pub fn field_type(&self) -> FieldType {
        self.kind.unwrap_or(if self.units.is_empty() {
            FieldType::Text
        } else {
            FieldType::Number
        })
    }
}

/// One CRM's name for a stage or pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PerCrm {
    /// Close's id.
    pub close: Option<String>,
    /// HubSpot's id.
    pub hubspot: Option<String>,
    /// Salesforce's value.
    pub salesforce: Option<String>,
}

impl PerCrm {
    /// `crm`'s value.
    pub fn get(&self, crm: Crm) -> Option<&str> {
        match crm {
            Crm::Close => self.close.as_deref(),
            Crm::HubSpot => self.hubspot.as_deref(),
            Crm::Salesforce => self.salesforce.as_deref(),
        }
    }

    fn of(close: &str, hubspot: &str, salesforce: &str) -> Self {
        Self {
            close: Some(close.into()),
            hubspot: Some(hubspot.into()),
            salesforce: Some(salesforce.into()),
        }
    }
}

/// `[deal.pipelines.<name>]`: one pipeline's ids and its stage map.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// The pipeline's id in each CRM; the pipeline named `default` also takes deals whose
    /// pipeline matches no other.
    #[serde(default)]
    pub ids: PerCrm,
    /// Unified stage name → each CRM's stage id (`stage_id` as the connector reports it).
    #[serde(default)]
    pub stages: BTreeMap<String, PerCrm>,
    /// The unified stage an unmapped CRM stage becomes; without one an unmapped stage is an
    /// error for that deal.
    pub fallback: Option<String>,
}

/// `[company]`, `[person]`, `[deal]` or `[activity]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EntityConfig {
    /// Whether this kind is synced.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The unified fields kept in agreement (see the crate docs for each kind's list).
    pub fields: Vec<String>,
    /// Custom fields, by unified name.
    #[serde(default)]
    pub custom: BTreeMap<String, CustomField>,
    /// Conflict policy.
    #[serde(default)]
    pub conflict: ConflictConfig,
    /// Delete policy.
    #[serde(default)]
    pub delete: DeletePolicy,
    /// Pipelines and stage maps (deals only).
    #[serde(default)]
    pub pipelines: BTreeMap<String, Pipeline>,
}

fn yes() -> bool {
    true
}

/// The unified fields each kind can sync.
pub fn standard_fields(kind: ObjectKind) -> &'static [&'static str] {
    match kind {
        ObjectKind::Company => &["name", "domain", "url", "description"],
        ObjectKind::Person => &["name", "title", "emails", "phones", "company"],
        ObjectKind::Deal => &[
            "name",
            "amount",
            "currency",
            "stage",
            "confidence",
            "close_date",
            "company",
            "person",
        ],
        ObjectKind::Activity => &crate::activity::ActivityField::NAMES,
    }
}

/// The default stage table: New, Qualified, Demo, Proposal, Won, Lost as Close, HubSpot
/// and Salesforce name them out of the box.
pub fn default_stages() -> BTreeMap<String, PerCrm> {
    [
        (
            "New",
            PerCrm::of("Lead", "appointmentscheduled", "Prospecting"),
        ),
        (
            "Qualified",
            PerCrm::of("Contacted", "qualifiedtobuy", "Qualification"),
        ),
        (
            "Demo",
            PerCrm::of("Opportunity", "presentationscheduled", "Needs Analysis"),
        ),
        (
            "Proposal",
            PerCrm::of("Proposal", "decisionmakerboughtin", "Proposal/Price Quote"),
        ),
        ("Won", PerCrm::of("Won", "closedwon", "Closed Won")),
        ("Lost", PerCrm::of("Lost", "closedlost", "Closed Lost")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

impl EntityConfig {
    fn standard(kind: ObjectKind) -> Self {
        Self {
            enabled: true,
            fields: standard_fields(kind)
                .iter()
                .map(|s| s.to_string())
                .collect(),
            custom: BTreeMap::new(),
            conflict: ConflictConfig::default(),
            delete: DeletePolicy::Ignore,
            pipelines: BTreeMap::new(),
        }
    }

    /// Companies with every standard field, last write wins, deletes ignored.
    pub fn company() -> Self {
        Self::standard(ObjectKind::Company)
    }

    /// People with every standard field, last write wins, deletes ignored.
    pub fn person() -> Self {
        Self::standard(ObjectKind::Person)
    }

    /// Deals with every standard field and the default stage table.
    pub fn deal() -> Self {
        let mut d = Self::standard(ObjectKind::Deal);
        d.pipelines.insert(
            "default".into(),
            Pipeline {
                ids: PerCrm::default(),
                stages: default_stages(),
                fallback: None,
            },
        );
        d
    }

    /// Activities with every standard field, last write wins, deletes ignored; off (see
    /// [`Config::activity`]).
    pub fn activity() -> Self {
        let mut a = Self::standard(ObjectKind::Activity);
        a.enabled = false;
        a
    }

    /// The rule that settles `field`: its per-field rule, else the entity's policy.
    pub fn rule(&self, field: &str) -> Rule {
        if let Some(r) = self.conflict.fields.get(field) {
            if let Ok(r) = parse_rule(r) {
                return r;
            }
        }
        match (self.conflict.policy, self.conflict.primary) {
            (Some(PolicyKind::Manual), _) => Rule::Manual,
            (Some(PolicyKind::LastWriteWins), _) => Rule::LastWriteWins,
            (Some(PolicyKind::Primary) | None, Some(c)) => Rule::Primary(c),
            (Some(PolicyKind::Primary) | None, None) => Rule::LastWriteWins,
        }
    }

    /// The pipeline a deal of `crm` in pipeline `pipeline_id` belongs to: the one whose id
    /// for `crm` matches, else `default`.
    pub fn pipeline_for(&self, crm: Crm, pipeline_id: Option<&str>) -> Option<(&str, &Pipeline)> {
        if let Some(pid) = pipeline_id {
            if let Some((n, p)) = self
                .pipelines
                .iter()
                .find(|(_, p)| p.ids.get(crm) == Some(pid))
            {
                return Some((n.as_str(), p));
            }
        }
        self.pipelines
            .get_key_value("default")
            .map(|(n, p)| (n.as_str(), p))
    }
}

/// Every kind, in the order they sync.
const ALL_KINDS: [ObjectKind; 4] = [
    ObjectKind::Company,
    ObjectKind::Person,
    ObjectKind::Deal,
    ObjectKind::Activity,
];

fn parse_rule(text: &str) -> Result<Rule> {
    Ok(match text {
        "last_write_wins" => Rule::LastWriteWins,
        "manual" => Rule::Manual,
        "close" => Rule::Primary(Crm::Close),
        "hubspot" => Rule::Primary(Crm::HubSpot),
        "salesforce" => Rule::Primary(Crm::Salesforce),
        other => {
            return Err(Error::config(format!(
                "unknown conflict rule {other:?}: use a CRM name (close, hubspot, salesforce), last_write_wins or manual"
            )));
        }
    })
}

impl Config {
    /// Parses and checks `crmkit.toml` text; errors name the table and key at fault.
    pub fn from_toml(text: &str) -> Result<Self> {
        let config: Config = toml::from_str(text)
            .map_err(|e| Error::config(format!("crmkit.toml: {}", e.message().trim())))?;
        config.validate()?;
        Ok(config)
    }

    /// A config syncing `crms` with every default.
    pub fn new(crms: Vec<Crm>) -> Self {
        Self {
            sync: SyncSection {
                crms,
                dry_run: false,
                retry: RetryConfig::default(),
            },
            company: EntityConfig::company(),
            person: EntityConfig::person(),
            deal: EntityConfig::deal(),
            activity: EntityConfig::activity(),
        }
    }

    /// The settings of `kind`.
    pub fn entity(&self, kind: ObjectKind) -> Option<&EntityConfig> {
        Some(match kind {
            ObjectKind::Company => &self.company,
            ObjectKind::Person => &self.person,
            ObjectKind::Deal => &self.deal,
            ObjectKind::Activity => &self.activity,
        })
    }

    /// The kinds synced, parents first so links exist before the records that point at them
    /// (activities last: they point at companies and people).
    pub fn kinds(&self) -> Vec<ObjectKind> {
        ALL_KINDS
            .into_iter()
            .filter(|k| self.entity(*k).is_some_and(|e| e.enabled))
            .collect()
    }

    /// Checks everything serde cannot: two or three distinct CRMs, known fields, rules that
    /// name a CRM taking part, stage maps complete for every CRM.
    pub fn validate(&self) -> Result<()> {
        if self.sync.retry.max_attempts == 0 {
            return Err(Error::config(
                "[sync.retry] max_attempts must be at least 1",
            ));
        }
        let crms = &self.sync.crms;
        let mut seen = crms.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != crms.len() || !(2..=3).contains(&crms.len()) {
            return Err(Error::config(
                "[sync] crms must list two or three different CRMs (close, hubspot, salesforce)",
            ));
        }
        for kind in ALL_KINDS {
            let Some(e) = self.entity(kind) else { continue };
            let at = |key: &str| format!("[{kind}] {key}");
            let known = standard_fields(kind);
            for f in &e.fields {
                if !known.contains(&f.as_str()) {
                    return Err(Error::config(format!(
                        "{}: unknown field {f:?}; {kind} fields are {} (custom fields go in [{kind}.custom.<name>])",
                        at("fields"),
                        known.join(", ")
                    )));
                }
            }
            for (name, cf) in &e.custom {
                if known.contains(&name.as_str()) {
                    return Err(Error::config(format!(
                        "[{kind}.custom.{name}]: {name:?} is a standard field name; pick another"
                    )));
                }
                if cf.kind == Some(FieldType::Text) && !cf.units.is_empty() {
                    return Err(Error::config(format!(
                        "[{kind}.custom.{name}]: units convert numbers, but type = \"text\"; use type = \"number\""
                    )));
                }
                for c in crms {
                    if cf.key(*c).is_none() {
                        return Err(Error::config(format!(
                            "[{kind}.custom.{name}]: no field named for {c}, which takes part in the sync"
                        )));
                    }
                }
            }
            if let Some(p) = e.conflict.primary {
                if !crms.contains(&p) {
                    return Err(Error::config(format!(
                        "{}: primary = {p:?} does not take part in the sync",
                        at("conflict")
                    )));
                }
            }
            if e.conflict.policy == Some(PolicyKind::Primary) && e.conflict.primary.is_none() {
                return Err(Error::config(format!(
                    "{}: policy = \"primary\" needs primary = \"<crm>\"",
                    at("conflict")
                )));
            }
            for (field, rule) in &e.conflict.fields {
                let r = parse_rule(rule).map_err(|err| {
                    Error::config(format!(
                        "[{kind}.conflict.fields] {field}: {}",
                        err.message()
                    ))
                })?;
                if let Rule::Primary(c) = r {
                    if !crms.contains(&c) {
                        return Err(Error::config(format!(
                            "[{kind}.conflict.fields] {field} = {rule:?}: {c} does not take part in the sync"
                        )));
                    }
                }
                if !known.contains(&field.as_str()) && !e.custom.contains_key(field) {
                    return Err(Error::config(format!(
                        "[{kind}.conflict.fields] {field}: no such field"
                    )));
                }
            }
            if kind == ObjectKind::Activity && e.enabled {
                if !e.fields.iter().any(|f| f == "kind") {
                    return Err(Error::config(
                        "[activity] fields: \"kind\" is required: it says what each CRM creates (a note, a call…)",
                    ));
                }
                // A reference to a kind that is not synced could never be translated: every
                // activity holding one would wait forever.
                for (field, parent) in [("company", &self.company), ("person", &self.person)] {
                    if !parent.enabled && e.fields.iter().any(|f| f == field) {
                        return Err(Error::config(format!(
                            "[activity] fields: {field:?} needs [{field}] synced (enabled = true), \
                             or take it out of the activity fields"
                        )));
                    }
                }
            }
            if kind == ObjectKind::Deal && e.enabled && e.fields.iter().any(|f| f == "stage") {
                if !e.pipelines.contains_key("default") {
                    return Err(Error::config(
                        "[deal.pipelines.default] is missing: the stage map needs a default pipeline",
                    ));
                }
                for (pname, p) in &e.pipelines {
                    for (stage, ids) in &p.stages {
                        for c in crms {
                            if ids.get(*c).is_none() {
                                return Err(Error::config(format!(
                                    "[deal.pipelines.{pname}.stages] {stage}: no {c} stage given"
                                )));
                            }
                        }
                    }
                    if let Some(fb) = &p.fallback {
                        if !p.stages.contains_key(fb) {
                            return Err(Error::config(format!(
                                "[deal.pipelines.{pname}] fallback = {fb:?} is not one of its stages"
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A commented default `crmkit.toml` syncing `crms`, for `crmkit init`. It parses back into
/// [`Config::new`]`(crms)` with activities turned on: a new setup syncs them, while a
/// config without an `[activity]` table (one written before they were synced) does not.
pub fn render_default(crms: &[Crm]) -> String {
    let list = crms
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = format!(
        r#"# crmkit.toml — what `crmkit sync` keeps in agreement.

[sync]
# Two or three of "close", "hubspot", "salesforce".
crms = [{list}]
# true: plan and report only, write nothing.
dry_run = false

# Records that fail to sync (a validation error, a parent not linked yet) go on a retry
# list and the feed moves on; they are read again after a back-off that doubles per
# failure, and after max_attempts they are given up (listed in `crmkit sync status`).
# [sync.retry]
# max_attempts = 10
# first_delay_seconds = 60
# max_delay_seconds = 21600

# Each kind: the unified fields kept in agreement, custom fields, the conflict policy and
# the delete policy.
#
# conflict.policy:
#   "last_write_wins" (default)  the CRM whose record changed last wins, by its own clock
#   "primary"                    primary = "<crm>" wins; the others only fill its empty fields
#   "manual"                     nothing is written; the conflict goes to the review queue
# conflict.fields: per-field overrides, e.g. amount = "salesforce", notes = "manual".
# delete: "ignore" (default: the link is dropped), "flag" (review queue), "propagate".

[company]
fields = ["name", "domain", "url", "description"]
delete = "ignore"

[company.conflict]
policy = "last_write_wins"

# A custom field kept in agreement, named the way each CRM names it:
# [company.custom.tier]
# close = "custom.cf_XXXX"
# hubspot = "tier"
# salesforce = "Tier__c"
# type = "text"                  # text (default) | number: numbers compare as numbers
#                                # ("1000.00" = 1000), text as text ("2.10" is not "2.1")
# units = {{ close = "cents" }}   # cents | decimal | percent | fraction (implies number)

[person]
fields = ["name", "title", "emails", "phones", "company"]
delete = "ignore"

[person.conflict]
policy = "last_write_wins"

[deal]
fields = ["name", "amount", "currency", "stage", "confidence", "close_date", "company", "person"]
delete = "ignore"

[deal.conflict]
policy = "last_write_wins"
# fields = {{ amount = "salesforce" }}

# Stage map: unified stage = each CRM's stage id (Close: the opportunity status id, stat_…;
# HubSpot: the dealstage id; Salesforce: StageName). Close's defaults below are its default
# status labels: replace them with your status ids. A stage missing here is an error for that
# deal unless `fallback` names a stage to use instead.
[deal.pipelines.default]
# ids = {{ close = "pipe_…", hubspot = "default", salesforce = "…" }}
# fallback = "New"
"#
    );
    for (stage, ids) in default_stages() {
        out.push_str(&format!(
            "stages.{} = {{ close = {:?}, hubspot = {:?}, salesforce = {:?} }}\n",
            toml_key(&stage),
            ids.close.unwrap_or_default(),
            ids.hubspot.unwrap_or_default(),
            ids.salesforce.unwrap_or_default()
        ));
    }
    out.push_str(
        r#"
# Activities: notes, calls, emails, meetings and tasks, after the companies and people they
# belong to (an activity whose company or person is not linked yet waits for it). Each is
# created once in the other CRMs and then kept in agreement; activities are never matched
# by content. `kind` is set when an activity is created and never changed. Close cannot
# create meetings or hold tasks (such records are reported, not retried); in Salesforce a
# note becomes a completed Task. Without this table activities are not synced.
[activity]
enabled = true
fields = ["kind", "subject", "body", "occurred_at", "duration", "direction", "completed", "company", "person"]
delete = "ignore"

[activity.conflict]
policy = "last_write_wins"
"#,
    );
    out
}

fn toml_key(k: &str) -> String {
    if k.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rendered_default_parses_back_to_the_defaults() {
        let text = render_default(&[Crm::Close, Crm::HubSpot]);
        let parsed = Config::from_toml(&text).expect("default parses");
        let mut want = Config::new(vec![Crm::Close, Crm::HubSpot]);
        for e in [
            &mut want.company,
            &mut want.person,
            &mut want.deal,
            &mut want.activity,
        ] {
            e.conflict.policy = Some(PolicyKind::LastWriteWins);
        }
        want.activity.enabled = true;
        assert_eq!(parsed, want);
        assert_eq!(
            parsed.kinds().last(),
            Some(&ObjectKind::Activity),
            "activities after their parents"
        );
        let old = Config::from_toml("[sync]\ncrms = [\"close\", \"hubspot\"]").expect("parses");
        assert!(!old.activity.enabled, "no [activity] table: not synced");
        assert_eq!(
            parsed.deal.pipelines["default"].stages["Demo"].get(Crm::Salesforce),
            Some("Needs Analysis")
        );
    }

    #[test]
    fn policies_and_per_field_rules() {
        let c = Config::from_toml(
            r#"
            [sync]
            crms = ["close", "hubspot", "salesforce"]
            [deal]
            fields = ["name", "amount", "stage"]
            conflict = { primary = "close", fields = { amount = "salesforce", name = "manual" } }
            delete = "propagate"
            [deal.pipelines.default]
            stages.New = { close = "stat_1", hubspot = "appointmentscheduled", salesforce = "Prospecting" }
            [deal.custom.tier]
            close = "custom.cf_tier"
            hubspot = "tier"
            salesforce = "Tier__c"
            [deal.custom.budget]
            close = "custom.cf_budget"
            hubspot = "budget"
            salesforce = "Budget__c"
            type = "number"
            [deal.custom.spend]
            close = "custom.cf_spend"
            hubspot = "spend"
            salesforce = "Spend__c"
            units = { close = "cents" }
            "#,
        )
        .expect("parses");
        assert_eq!(c.deal.custom["tier"].field_type(), FieldType::Text);
        assert_eq!(c.deal.custom["budget"].field_type(), FieldType::Number);
        assert_eq!(
            c.deal.custom["spend"].field_type(),
            FieldType::Number,
            "units imply a number"
        );
        assert_eq!(c.deal.rule("stage"), Rule::Primary(Crm::Close));
        assert_eq!(c.deal.rule("amount"), Rule::Primary(Crm::Salesforce));
        assert_eq!(c.deal.rule("name"), Rule::Manual);
        assert_eq!(c.deal.delete, DeletePolicy::Propagate);
        assert_eq!(c.company.rule("name"), Rule::LastWriteWins);
        assert_eq!(c.company.delete, DeletePolicy::Ignore);
        assert_eq!(c.deal.custom["tier"].key(Crm::Close), Some("cf_tier"));
        assert_eq!(c.deal.custom["tier"].key(Crm::Salesforce), Some("Tier__c"));
    }

    #[test]
    fn mistakes_are_named() {
        let bad = |body: &str| {
            Config::from_toml(&format!("[sync]\ncrms = [\"close\", \"hubspot\"]\n{body}"))
                .expect_err("refused")
                .to_string()
        };
        assert!(bad("[company]\nfields = [\"nmae\"]").contains("unknown field \"nmae\""));
        assert!(bad("[activity]\nfields = [\"subject\"]").contains("\"kind\" is required"));
        assert!(bad("[activity]\nfields = [\"kind\", \"title\"]").contains("unknown field"));
        assert!(
            bad("[person]\nfields = [\"name\"]\nenabled = false\n[activity]\nfields = [\"kind\", \"person\"]")
                .contains("needs [person] synced")
        );
        assert!(
            bad("[company]\nfields = [\"name\"]\nconflict = { primary = \"salesforce\" }")
                .contains("does not take part")
        );
        assert!(
            bad("[company]\nfields = [\"name\"]\nconflict = { fields = { name = \"hubsopt\" } }")
                .contains("unknown conflict rule")
        );
        assert!(
            bad("[company]\nfields = [\"name\"]\n[company.custom.tier]\nclose = \"cf_x\"")
                .contains("no field named for hubspot")
        );
        assert!(
            bad("[company]\nfields = [\"name\"]\n[company.custom.tier]\nclose = \"cf_x\"\nhubspot = \"tier\"\ntype = \"text\"\nunits = { close = \"cents\" }")
                .contains("use type = \"number\"")
        );
        assert!(
            bad("[company]\nfields = [\"name\"]\n[company.custom.tier]\nclose = \"cf_x\"\nhubspot = \"tier\"\ntype = \"numbr\"")
                .contains("numbr")
        );
        assert!(
            bad("[deal]\nfields = [\"stage\"]\n[deal.pipelines.default]\nstages.New = { close = \"x\" }")
                .contains("no hubspot stage")
        );
        assert!(Config::from_toml("[sync]\ncrms = [\"close\"]").is_err());
        assert!(
            Config::from_toml("[sync]\ncrms = [\"close\", \"hubspot\"]\nfoo = 1").is_err(),
            "a typo in a sync table is refused"
        );
        let shared = "[close]\napi_key = \"x\"\n[sync]\ncrms = [\"close\", \"hubspot\"]";
        assert!(
            Config::from_toml(shared).is_ok(),
            "the CLI's tables are left alone"
        );
        assert!(Config::from_toml("[sync]\ncrms = [\"close\", \"close\"]").is_err());
        assert!(Config::from_toml("[sync]\ncrms = [\"close\", \"zoho\"]").is_err());
    }
}
