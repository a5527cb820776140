//! The crmkit sync engine: keeps two or three CRMs (Close, HubSpot, Salesforce) in
//! agreement in both directions, through the [`crmkit_core::Connector`] trait alone. Nothing
//! here knows a CRM's field names except through configuration, so a new connector needs no
//! engine change.
//!
//! # The algorithm (one run, [`engine::Engine::run`])
//!
//! 1. **Lease and run.** The run takes the store's lease `sync:<pair>` (`close-hubspot`):
//!    one run at a time per pair; a second one is refused with a `Conflict` error. The run
//!    is recorded (start, counts, errors, status).
//! 2. **Reconcile.** Writes an earlier, interrupted run left `pending` or `sent` in the
//!    intent log are settled first: a create is looked up with
//!    [`Connector::find_by_marker`](crmkit_core::Connector::find_by_marker) and, when found,
//!    its id goes onto the link it was for, so nothing is created twice; an update is
//!    simply planned again (the link's hashes did not move); a delete is sent again.
//! 3. **Pull.** Per kind (companies, then people, then deals, so parents are linked before
//!    the records pointing at them) and per CRM: every change since the stored cursor. A
//!    record delivered twice (the feeds' overlap windows) keeps its last state; tombstones
//!    are deletions; records a connector could not read are reported.
//! 4. **Map and hash.** Each record's synced fields are read into unified, canonical form
//!    ([`values::extract`]) and hashed ([`resolve::hash`]).
//! 5. **Sort.** A record with a stored link joins its link's group; the group is completed
//!    by reading the sides that did not change ([`Connector::get`](crmkit_core::Connector::get);
//!    a side that is gone is a deletion). Unlinked records are matched ([`matching`]) against
//!    each other and against stored links by e-mail and domain.
//! 6. **Plan** ([`plan::plan`]). Each side's stored field values (its *base*, kept by the
//!    store per side) tell, per field, whether that side changed it, left it or cleared it.
//!    Per group: sides whose hash equals the stored one did not change (a feed record like that is our own write coming back: an *echo*, never sent
//!    back); a group where nothing changed is skipped. Otherwise fields are resolved
//!    ([`resolve::resolve`]) into patches for the sides that differ, creates (with an
//!    idempotency marker `<crm>:<kind>:<id>` of the source) for the CRMs lacking the record,
//!    and conflicts. Deletions follow the delete policy.
//! 7. **Apply.** Ambiguous matches and flagged deletions go to the review queue, manual
//!    conflicts to the conflict table. Every write is stored as an intent (`pending`, then
//!    `sent`) before it goes out through the connectors' batch methods
//!    ([`Connector::create_marked`](crmkit_core::Connector::create_marked), `update`,
//!    `delete`), and settled or failed per record after. Each field change is audited.
//!    Written records are read back and their hashes and field values stored (the base of
//!    the next run), so a CRM that normalises a value (or ignores one) does not make our
//!    write look like its own change next time.
//! 8. **Cursors.** A kind's cursors are saved only after everything they cover is stored,
//!    and only when every write of the kind succeeded: a failed record is read again next
//!    run (the rest is idempotent, as its hashes moved).
//!
//! [`engine::Engine::dry_run`] (or `dry_run = true`) stops after step 6 and returns the plans:
//! no CRM write, no link, no cursor, no lease.
//!
//! # Guarantees
//!
//! - **No duplicates after a crash.** Creates carry a marker and are logged before sending;
//!   a restarted run finds them by marker before anything is created again.
//! - **Patches only.** Updates hold the target's current record with the changed fields
//!   set, so connectors send only what differs; fields that are not synced are never
//!   touched; custom fields not mapped are never cleared.
//! - **Never merged silently.** A record matching several candidates (or claimed by
//!   several) is neither linked nor created: it is queued for review.
//! - **No data loss by default.** Deletions are ignored unless configured; without a stored
//!   base, an empty value never overwrites a filled one (it only gets filled).
//! - **Quiet when nothing changed.** A second run with no changes writes nothing.
//!
//! # Canonical values and hashes
//!
//! Empty values (`null`, blank strings, empty lists or objects) are absent; strings are
//! trimmed. Numbers are normalised by the field's *type*, never by how a value looks: in a
//! number field (`amount`, `confidence`, custom fields with `type = "number"` or `units`)
//! text that reads as a number is that number, because HubSpot returns every property as
//! text (`"1000.00"` = `1000`); every other field is text, compared as text (`"2.10"` is not
//! `"2.1"`, `"007"` stays `"007"`, and a number given for a text field is its text).
//! Integral numbers are integers (`1.0` = `1`); object keys are sorted; e-mails are lower-cased; domains lower-cased;
//! dates are days (`2025-03-01`); money is a decimal amount plus an upper-case currency.
//! The hash is SHA-256 over the JSON of the sorted field map (first 16 bytes, hex); an
//! unchanged hash means no write. Reference fields (`company`, `person`) hold record ids,
//! kept as text and translated through links when compared or copied.
//!
//! # Conflict resolution
//!
//! Per field, the sides that *changed* it are those whose value differs from their stored
//! base (a value set, changed or cleared). Without a stored base (a link from before the
//! store kept them, or a first match) they are the sides whose hash moved and that hold a
//! value, so an empty value is never mistaken for a deliberate clear. One changer, or
//! changers that agree, win whatever the rule: a field changed on one side only propagates
//! from that side, and a clear as an explicit clear (typed fields emptied, custom fields set
//! to `null`). Only changers that disagree are settled by the field's rule: `primary` (the
//! primary CRM's value when it has one, otherwise the first non-empty one fills it; it also
//! decides where values differ and no side is known to have changed them),
//! `last_write_wins` (the changer whose record was modified last, by its own CRM's clock),
//! or `manual` (nothing is written for the field; a conflict is queued).
//!
//! # `crmkit.toml` reference
//!
//! ```toml
//! [sync]
//! crms = ["close", "hubspot"]         # two or three of close, hubspot, salesforce
//! dry_run = false
//!
//! [company]                            # also [person] and [deal]
//! enabled = true
//! fields = ["name", "domain", "url", "description"]
//! delete = "ignore"                    # ignore | flag | propagate
//!
//! [company.conflict]
//! policy = "primary"                   # primary | last_write_wins (default) | manual
//! primary = "close"
//! fields = { description = "hubspot", name = "manual" }   # per-field overrides
//!
//! [company.custom.tier]                # a custom field, named per CRM
//! close = "custom.cf_tier"
//! hubspot = "tier"
//! salesforce = "Tier__c"
//! type = "text"                        # text (default) | number
//! units = { close = "cents" }          # cents | decimal | percent | fraction (implies number)
//!
//! [deal.pipelines.default]             # unified stage = each CRM's stage id
//! ids = { hubspot = "default" }
//! fallback = "New"                     # optional; without it an unmapped stage is an error
//! stages.New = { close = "stat_…", hubspot = "appointmentscheduled", salesforce = "Prospecting" }
//! ```
//!
//! Standard fields: companies `name`, `domain`, `url`, `description`; people `name`, `title`,
//! `emails`, `phones`, `company`; deals `name`, `amount`, `currency`, `stage`, `confidence`,
//! `close_date`, `company`, `person`. [`config::render_default`] prints a commented default
//! with the default stage table (New, Qualified, Demo, Proposal, Won, Lost). Activities are
//! not synced: an `[activity]` table is a configuration error saying so (Close's built-in
//! activities hold no marker, so their creates could not be made idempotent), never a
//! silent skip.
//!
//! # Matching
//!
//! See [`matching`]: e-mails trimmed and lower-cased (Gmail dots and `+tags` are not folded),
//! company domains from `domain` or the website (free-mail domains never count), company
//! names without case, punctuation or legal suffixes, deals by linked company plus name.
//!
//! # Limits
//!
//! - A kind's changes are held in memory for the run.
//! - Links stored before the store kept field values get them at their next change; until
//!   then (no base) a clear on one side is not told from a field never filled, and is not
//!   propagated.
//! - The HubSpot feed leaves records changed in HubSpot's current second for the next run;
//!   the engine cannot count them (the search leaves them out), so the report does not.
//! - Unlinked records are matched against the records read in the same run and against
//!   stored links (by e-mail or domain); an older record never seen by a feed is not a
//!   candidate.

pub mod bench;
pub mod config;
pub mod engine;
pub mod matching;
pub mod plan;
pub mod resolve;
pub mod values;

pub use config::Config;
pub use engine::{Engine, Report};
