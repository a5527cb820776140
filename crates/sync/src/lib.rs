//! The crmkit sync engine: keeps two or three CRMs (Close, HubSpot, Salesforce) in
//! agreement in both directions, through the [`crmkit_core::Connector`] trait alone. Nothing
//! here knows a CRM's field names except through configuration, so a new connector needs no
//! engine change.
//!
//! # The algorithm (one run, [`engine::Engine::run`])
//!
//! 1. **Lease and run.** The run takes the store's lease `sync:<pair>` (`close-hubspot`,
//!    the CRMs' names sorted whatever the order of `[sync] crms`): one run at a time per
//!    pair; a second one is refused with a `Conflict` error. The lease is renewed in the
//!    background while the run goes on, and every store transaction of the run is fenced by
//!    it, so a run that lost it stops with an error instead of writing
//!    ([`engine::pair_name`]). The run also holds, for its whole duration, the lease under
//!    every other order of its CRMs (`sync:hubspot-close`) and of every other set sharing
//!    one of them (`sync:salesforce-close`), the name an older crmkit configured in that
//!    order takes, so an old and a new process never sync the same CRMs at once during an
//!    upgrade, whatever the set and order each is configured with
//!    ([`engine::lease_names`]), and the lease `sync-crm:<crm>` of each of its CRMs
//!    ([`engine::crm_lease_name`]), so no two runs touching one CRM overlap whatever their
//!    sets. Every CRM write is preceded by a fenced store transaction too (the one
//!    recording its intent as sent). **One store serves one set of CRMs:** the links and
//!    each CRM's last synced values in them are shared by every run of a store, so a run
//!    (or dry run) is refused with a `Config` error naming both sets when the store holds
//!    cursors, runs that wrote, write intents or links of another set sharing a CRM with
//!    its own that is not part of it (a run that wrote and linked nothing does not count;
//!    growing a pair into a three-way sync is allowed; shrinking or pairing differently is
//!    not: use another database, which matches every record again). Cursors and retry entries an older
//!    crmkit stored under another order of the CRMs are moved to the canonical name, and
//!    so are the retry entries of a smaller set of them (the pair a three-way sync grew
//!    from). The run is recorded
//!    (start, counts, errors, status).
//! 2. **Reconcile.** Writes an earlier, interrupted run (of these CRMs or of a smaller set
//!    of them) left `pending` or `sent` in the intent log are settled first: a create is
//!    looked up with [`Connector::find_created`](crmkit_core::Connector::find_created) (by
//!    its marker, or,
//!    where the CRM cannot store one, by the natural key of the record the intent kept) and,
//!    when found, its id goes onto the link it was for, with its hash and values as that
//!    side's (it holds what was sent), so nothing is created twice; an update is
//!    simply planned again (the link's hashes did not move); a delete is sent again.
//! 3. **Pull.** Per kind (companies, then people, then deals, then activities, so parents
//!    are linked before the records pointing at them) and per CRM: every change since the
//!    stored cursor. A record delivered twice (the feeds' overlap windows) keeps its last
//!    state; tombstones are deletions; records a connector could not read are reported.
//!    A CRM's cascade of a user's deletion (Close's lead takes its contacts) is that CRM's
//!    deletions; a cascade of a deletion crmkit made itself is not: a tombstone whose
//!    `parent` (`Change::Deleted`: the Close feed names a child's lead when the lead's
//!    deletion took it, in the same request, or when the lead is deleted and its
//!    deletion's event is not visible yet) crmkit deleted as a propagated delete is an
//!    echo of that write, in this run or a later one: its side of its link is noted gone,
//!    neither created again there nor deleted elsewhere, and the run reports it
//!    ([`Report::cascades`](engine::Report::cascades)). Each propagated delete of a Close
//!    lead is noted in the store with its intent, before it is sent; the note stays while
//!    the delete is open or done or failed with an unknown effect (a lost answer, a 5xx)
//!    and is forgotten when Close refused it (a 4xx other than a rate or quota limit), so
//!    a later deletion of a lead Close refused to delete is a user's.
//! 4. **Map and hash.** Each record's synced fields are read into unified, canonical form
//!    ([`values::extract`]) and hashed ([`resolve::hash`]).
//! 5. **Sort.** A record with a stored link joins its link's group (the links are looked up
//!    a few hundred records per query). A group whose every side read holds the hash stored
//!    for it (our own writes coming back: *echoes*), whose link has a live, hashed record
//!    in every CRM synced and that no unlinked record of the run may match, changed nowhere:
//!    it is counted as echoes and dropped. Any other group is completed by reading the
//!    sides that did not change, in batches
//!    ([`Connector::get_many`](crmkit_core::Connector::get_many); a side that is gone is a
//!    deletion). Unlinked records are matched ([`matching`]) against each other and against
//!    stored links by e-mail and domain. Only a tombstone is a deletion: a side that answers "not found" without one may be
//!    merged or hidden from us, so under `propagate` it is queued for review instead of
//!    deleting the others (under `ignore` and `flag` it is handled like a deletion, which
//!    deletes nothing). A record merged away (`Change::Deleted` with `merged_into`) is never
//!    deleted elsewhere: its link moves to the winner when the winner is not linked yet, or
//!    the merge is queued for review when it is; a chain of merges read in one run is
//!    followed to the record that survives it. The moved side's base becomes the winner's
//!    own values, read and stored with the move (a winner that cannot be read is not moved:
//!    held for the next run on a connection failure, else queued for review; one whose
//!    stage is not mapped yet waits on the retry list with the merge noted, and the run that
//!    retries it follows the merge, while the kind's cursors move on), and the
//!    merged-away record leaves the retry list. A record a merge removed without naming its
//!    successor (`Change::Gone`) is never deleted elsewhere either: under every policy its
//!    link goes to the review queue and the side is noted as gone. Records named by an open ambiguous-match
//!    review are left out until a person decides.
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
//!    Written records are read back (`get_many` again) and their hashes and field values stored (the base of
//!    the next run), so a CRM that normalises a value (or ignores one) does not make our
//!    write look like its own change next time. A field whose read-back value is not what
//!    we sent (or, left alone, what we planned from), nor the CRM's evident doing with a
//!    sent value (missing: ignored; part of a list: kept what it can; the same letters and
//!    digits, or a phone as that CRM itself stores the number sent — Close's E.164 of a
//!    number sent with its country code (after `+`, or as its leading digits; not after
//!    `00`, which not every country dials as its international prefix), and
//!    of one sent without: `+`, the Close account's country code (whichever it is) and the
//!    same digits, the code then stored as learned — normalised), was edited by
//!    someone between our write and our read-back: it keeps the side's old base (and the
//!    side's stored hash is the base's), so the next run syncs that edit instead of taking
//!    it as synced ([`Report::edited_meanwhile`](engine::Report::edited_meanwhile)).
//!    A created record is linked with the fields sent as its base (hash
//!    [`plan::SENT`]), in one transaction with its id: if its read-back or another write of
//!    its group fails, the next run takes what it reads then as its base but for a field
//!    that reads back as an edit, so the CRM's shaping of a value sent is never taken for
//!    the latest write and copied over the source's.
//! 8. **Cursors and the retry list.** A record that failed on its own (unreadable,
//!    unmappable, rejected by the CRM, its parent not linked yet) goes on the store's retry
//!    list, in the transaction that moves the kind's cursors past it; the next runs read it
//!    again with [`Connector::get`](crmkit_core::Connector::get) when it is due (exponential
//!    back-off, `[sync.retry]`) and after `max_attempts` it is given up: kept on the list and
//!    reported ([`Report::given_up`](engine::Report::given_up)), never dropped, until a
//!    person re-arms it (`crmkit sync retry reset`, [`crmkit_store::Store::reset_retry`]); a record
//!    waiting for a parent to be linked or for a mapping the configuration lacks is never
//!    given up (it syncs unchanged once that is fixed). A failure of
//!    the connection (429, 5xx, timeouts, auth, quota, the store), a write without a reported
//!    outcome and a failed propagated delete hold the kind's cursors instead, so the next run
//!    reads the same changes again and no attempt is counted (the rest is idempotent, as its
//!    hashes moved). The list entries and all the
//!    kind's cursors are written in one transaction, so no CRM's feed is left behind the
//!    others'. A kind with records deferred for a parent whose kind kept its cursor in this
//!    run keeps its cursor too, so both are read again next run. Failures are the report's
//!    [`errors`](engine::Report::errors) (the stored run is `partial`); what was done
//!    otherwise than asked, or can never be done, where waiting changes nothing (a
//!    reference to a deleted record, a create under a merge's survivor or without its
//!    company, a record that takes no edit or that its target cannot hold) is a
//!    [notice](engine::Report::notices): the record's group is stored as synced, nothing
//!    goes on the retry list, and the run is not partial for it.
//!
//! [`engine::Engine::dry_run`] (or `dry_run = true`) stops after step 6 and returns the plans:
//! no CRM write, no link, no cursor, no lease.
//!
//! # Guarantees
//!
//! - **No duplicates after a crash.** Creates carry a marker and are logged before sending;
//!   a restarted run finds them by marker (or, for Close's built-in activities, which hold
//!   none, by lead, type, time, contact and text) before anything is created again.
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
//! kept as text and translated through links when compared or copied: a side's current
//! value and its stored base alike, so a side that moved a record to another company is
//! seen as changing the field even when no record read in the run names the company it
//! left. A base naming a record merged away reads as the record it went into where the
//! link followed the merge or the record was never linked (every merge a feed reports is
//! noted in the store), so a record the merge moved is not taken for an edit; where the
//! merge went to review, the move is that side's change unless another side's user changed
//! the field (then the base reads as the survivor and the user's change wins). A base
//! naming a record no longer linked otherwise (deleted) counts as differing from any
//! current value the side holds; where the side now references nothing and the record the
//! base named is gone, the field is left alone unless another side changed it (the
//! association went with the record: no clear to spread, and Close refuses a contact
//! without a lead). A reference is never written naming a record noted gone in the
//! target (noted; a create goes under the linked survivor of a merge under review,
//! noted too, else without the reference, except in Close, which needs a lead: not
//! created there without its company). Close is never sent a clear of a company (its contacts, opportunities and
//! activities belong to a lead): noted instead. Each is a notice
//! ([`Plan::notices`](plan::Plan::notices), [`Report::notices`](engine::Report::notices)),
//! not a failure: the rest of the record is synced, no later run would do otherwise, so it
//! is not retried and the run is not partial for it. A reference held apart for either
//! reason (every two CRMs holding it apart explained so, or every CRM holding one value or
//! what a create from it wrote there) that nobody changes since is left
//! alone (no conflict, no primary overwriting it). A current value naming a record not
//! linked yet is left out of the comparison and the record waits on the retry list.
//!
//! # Conflict resolution
//!
//! Per field, the sides that *changed* it are those whose value differs from their stored
//! base (a value set, changed or cleared). Where no side has a stored base (a link from
//! before the store kept them, or a first match) they are the sides whose hash moved and
//! that hold a value, so an empty value is never mistaken for a deliberate clear. Where some
//! sides have a base, a side without one is new to the link (a third CRM's record newly
//! matched in): its values were never synced and none counts as an edit; where no synced
//! side changed a field, the field is settled as on a first sync (agreeing values fill
//! gaps, a value held apart goes to the rule with every side holding one a candidate); where
//! a synced side changed it, a newcomer's own differing value wins if it is the `primary`
//! CRM, is queued with the edit under `manual` and otherwise yields to the edit (under
//! `last_write_wins` too: its record's modification time is not the field's), and a
//! newcomer holding nothing or the value the edit replaced (the edited side's base) takes
//! the edit. A create's
//! source gets its base before the create is sent, and a create recovered after an
//! interruption gets its from what was sent (a field reading back otherwise is an edit made
//! meanwhile, kept and synced), so edits on either side made meanwhile are told apart. One changer, or
//! changers that agree, win whatever the rule: a field changed on one side only propagates
//! from that side, and a clear as an explicit clear (typed fields emptied, custom fields set
//! to `null`). Only changers that disagree are settled by the field's rule: `primary` (the
//! primary CRM's value when it has one, otherwise the others fill it where they agree, and
//! where they disagree nothing is overwritten and a conflict is queued, unless the values
//! are one in each CRM's form, which fills it; it also decides where values differ and no
//! side is known to have changed them),
//! `last_write_wins` (the changer whose record was modified last, by its own CRM's clock),
//! or `manual` (nothing is written for the field; a conflict is queued). Under
//! `last_write_wins` and `manual`, values that differ where a side has a base and none
//! changed them (a merge winner relinked with its own values as its base, a side new to the
//! link) are queued as a conflict too, nothing written (the store keeps one open conflict
//! per link and field; a run reports those it opened), unless the difference is one CRM's
//! keeping of the other's value (a day for a time, part of a list where the CRM holding
//! fewer cannot be written more — one e-mail in HubSpot or Salesforce, not in Close —, a
//! normalised phone or text, a field or precision a record cannot hold, a record taking no
//! edit); an empty side is not a difference of values (a CRM may not keep the field),
//! except on a relinked merge winner (a side with a base but no hash yet), whose gap for a
//! field it never held is filled where the others hold it alike (equal, or one value in each
//! CRM's form, the longest list or a form other than Close's taken) and nobody changed it.
//!
//! # `crmkit.toml` reference
//!
//! ```toml
//! [sync]
//! crms = ["close", "hubspot"]         # two or three of close, hubspot, salesforce
//! dry_run = false
//!
//! [sync.retry]                         # records that failed to sync
//! max_attempts = 10                    # then given up (kept on the list, reported)
//! first_delay_seconds = 60             # doubled per failure…
//! max_delay_seconds = 21600            # …up to this
//!
//! [company]                            # also [person], [deal] and [activity]
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
//! `close_date`, `company`, `person`; activities `kind` (required), `subject`, `body`,
//! `occurred_at`, `duration`, `direction`, `completed`, `company`, `person`.
//! [`config::render_default`] prints a commented default with the default stage table (New,
//! Qualified, Demo, Proposal, Won, Lost) and activities turned on; without an `[activity]`
//! table (a config written before activities were synced) they are off.
//!
//! # Activities
//!
//! Activities sync after companies and people; their `company` and `person` are translated
//! through those links, and one whose company or person is not linked in a target yet waits
//! (reported). They are never matched by content: an unlinked activity is created in the
//! other CRMs, idempotently (a marker in HubSpot and Salesforce; in Close, whose built-in
//! activities have no custom fields, the lead's activity with the same type, time to the
//! second, contact and text is taken as the one created, so two identical activities on one
//! lead at the same second are one). `kind` is set on create and never changed. What a CRM
//! cannot hold ([`activity::holds`]: a meeting or task for Close, an activity without a
//! company for Close) is reported for that record when it changes, never retried; a note
//! becomes a completed Salesforce Task. Times compare to the second; a Salesforce Task keeps
//! only the day, so its copy's time differs from the source's without that being a change.
//!
//! Each CRM's activity type keeps only some fields ([`activity::holds_field`]: a Close call
//! has no subject, a Close note or email no duration, direction or completion, a HubSpot
//! note no subject, a Salesforce Event no completion), and some keep less of a value (a
//! Salesforce Task's time is a day, an Event's duration whole minutes). Whatever the
//! conflict policy, the plan holds no write a target cannot take ([`values::lands`]; the
//! same goes for a custom field not named for the target CRM): it sends nothing, so it is
//! neither planned, counted as an update nor audited. A sent Close email cannot be modified
//! (Close modifies drafts only): an edit made elsewhere reaches the other CRMs, and Close's
//! copy is reported (once per change, not retried) as not updated.
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
//! - Fields a CRM cannot hold (a Close note's `completed`, a Salesforce Task's time of day)
//!   differ between linked activities for good; each side's stored values tell that this is
//!   no change, and no write of them is planned. Which fields a Salesforce org keeps is
//!   taken from the standard Task and Event: a field an org's describe lacks is left out of
//!   the write by the connector, but still planned.
//! - Links stored before the store kept field values get them at their next change; until
//!   then (no base) a clear on one side is not told from a field never filled, and is not
//!   propagated.
//! - The HubSpot feed leaves records changed in HubSpot's current second for the next run;
//!   the engine cannot count them (the search leaves them out), so the report does not.
//! - Unlinked records are matched against the records read in the same run and against
//!   stored links (by e-mail or domain); an older record never seen by a feed is not a
//!   candidate.

pub mod activity;
pub mod bench;
pub mod config;
pub mod engine;
pub mod field_map;
pub mod matching;
pub mod per_crm;
pub mod plan;
pub mod resolve;
pub mod values;

pub use config::Config;
pub use engine::{Engine, Report};
