//! The standard objects the emulator serves and their fields: types, lengths, which are
//! required on create, createable or updateable, picklist values, references and
//! relationship names. Field lists follow the Object Reference for Salesforce
//! (developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/);
//! each object also carries one custom external id text field, `External_Id__c`, so that
//! upserts by external id can be exercised (External ID fields need not be unique:
//! help.salesforce.com "Custom Field Attributes"); Account adds a non-unique one,
//! `Legacy_Id__c`, and a unique case-sensitive one, `Source_Key__c`.

use serde_json::{Value, json};

/// A field's data type, as describe reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FType {
    /// The record id.
    Id,
    /// An id of another record.
    Reference,
    /// Text.
    String,
    /// Long text.
    TextArea,
    /// An email address.
    Email,
    /// A phone number (kept as typed).
    Phone,
    /// A URL.
    Url,
    /// One of a list of values.
    Picklist,
    /// true or false.
    Boolean,
    /// Money.
    Currency,
    /// A percentage.
    Percent,
    /// A whole number.
    Int,
    /// A date, `2024-01-31`.
    Date,
    /// A timestamp, `2024-01-31T12:00:00.000+0000`.
    DateTime,
}

impl FType {
    /// The name describe gives the type.
    pub(crate) fn name(self) -> &'static str {
        match self {
            FType::Id => "id",
            FType::Reference => "reference",
            FType::String => "string",
            FType::TextArea => "textarea",
            FType::Email => "email",
            FType::Phone => "phone",
            FType::Url => "url",
            FType::Picklist => "picklist",
            FType::Boolean => "boolean",
            FType::Currency => "currency",
            FType::Percent => "percent",
            FType::Int => "int",
            FType::Date => "date",
            FType::DateTime => "datetime",
        }
    }

    /// Whether values are text.
    pub(crate) fn textual(self) -> bool {
        matches!(
            self,
            FType::String
                | FType::TextArea
                | FType::Email
                | FType::Phone
                | FType::Url
                | FType::Picklist
        )
    }

    /// Whether values are numbers.
    pub(crate) fn numeric(self) -> bool {
        matches!(self, FType::Currency | FType::Percent | FType::Int)
    }
}

/// How a field may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Set on create and update.
    ReadWrite,
    /// Set on create only.
    CreateOnly,
    /// Maintained by the system.
    ReadOnly,
}

/// One field of an object.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// The API name.
    pub name: &'static str,
    /// The label errors name it by.
    pub label: &'static str,
    /// Its type.
    pub ftype: FType,
    /// Maximum length of text values.
    pub length: usize,
    /// Whether create must set it (not nillable and not defaulted).
    pub required: bool,
    /// How it may be written.
    pub access: Access,
    /// Picklist values (empty for other types).
    pub picklist: &'static [&'static str],
    /// Whether a value outside `picklist` is refused.
    pub restricted: bool,
    /// Objects a reference may point to.
    pub refs: &'static [&'static str],
    /// The relationship name for paths like `Account.Name`.
    pub relationship: Option<&'static str>,
    /// An External ID field.
    pub external_id: bool,
    /// A Unique field whose values are compared without case ("Treat ABC and abc as
    /// duplicate values"): a second record with the same value is refused.
    pub unique: bool,
    /// A Unique field with "Treat ABC and abc as different values": its values are
    /// compared with case, by SOQL and by upserts alike.
    pub case_sensitive: bool,
    /// Usable to identify a record (Id, external ids, Email).
    pub id_lookup: bool,
    /// Kept in an equality index for queries and upserts.
    pub indexed: bool,
    /// A custom field (`__c`).
    pub custom: bool,
}

const fn f(name: &'static str, label: &'static str, ftype: FType) -> Field {
    Field {
        name,
        label,
        ftype,
        length: match ftype {
            FType::TextArea => 32_000,
            FType::Id | FType::Reference => 18,
            FType::Phone => 40,
            FType::Email | FType::Picklist | FType::String | FType::Url => 255,
            _ => 0,
        },
        required: false,
        access: Access::ReadWrite,
        picklist: &[],
        restricted: false,
        refs: &[],
        relationship: None,
        external_id: false,
        unique: false,
        case_sensitive: false,
        id_lookup: false,
        indexed: false,
        custom: false,
    }
}

const fn len(mut x: Field, n: usize) -> Field {
    x.length = n;
    x
}

const fn req(mut x: Field) -> Field {
    x.required = true;
    x
}

const fn ro(mut x: Field) -> Field {
    x.access = Access::ReadOnly;
    x
}

const fn create_only(mut x: Field) -> Field {
    x.access = Access::CreateOnly;
    x
}

const fn pick(mut x: Field, values: &'static [&'static str], restricted: bool) -> Field {
    x.picklist = values;
    x.restricted = restricted;
    x
}

const fn reference(
    name: &'static str,
    label: &'static str,
    refs: &'static [&'static str],
    relationship: &'static str,
) -> Field {
    let mut x = f(name, label, FType::Reference);
    x.refs = refs;
    x.relationship = Some(relationship);
    x.indexed = true;
    x
}

const fn lookup(mut x: Field) -> Field {
    x.id_lookup = true;
    x.indexed = true;
    x
}

/// A child relationship: `Account.Contacts` are the Contacts whose `AccountId` points at it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Child {
    /// The relationship name used in subqueries.
    pub name: &'static str,
    /// The child object.
    pub object: &'static str,
    /// The child's reference field.
    pub field: &'static str,
}

/// One object.
#[derive(Debug)]
pub(crate) struct Object {
    /// The API name.
    pub name: &'static str,
    /// Its label.
    pub label: &'static str,
    /// The plural label.
    pub plural: &'static str,
    /// The three-character id prefix.
    pub prefix: &'static str,
    /// Whether the API may create records.
    pub createable: bool,
    /// Its fields, in describe order.
    pub fields: Vec<Field>,
    /// Relationships to its children.
    pub children: &'static [Child],
}

impl Object {
    /// The field named `name` (case-insensitively, as SOQL and the REST API match names).
    pub(crate) fn field(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The reference field whose relationship is `name` (`Account` for `AccountId`).
    pub(crate) fn relationship(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.relationship.is_some_and(|r| r.eq_ignore_ascii_case(name)))
    }

    /// The child relationship named `name`.
    pub(crate) fn child(&self, name: &str) -> Option<&'static Child> {
        self.children
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// The standard audit fields every object has.
fn system_fields(owner: bool) -> Vec<Field> {
    let mut v = vec![
        lookup(ro(f("Id", "Record ID", FType::Id))),
        ro(f("IsDeleted", "Deleted", FType::Boolean)),
        ro(f("CreatedDate", "Created Date", FType::DateTime)),
        ro(reference(
            "CreatedById",
            "Created By ID",
            &["User"],
            "CreatedBy",
        )),
        ro(f("LastModifiedDate", "Last Modified Date", FType::DateTime)),
        ro(reference(
            "LastModifiedById",
            "Last Modified By ID",
            &["User"],
            "LastModifiedBy",
        )),
        ro(f("SystemModstamp", "System Modstamp", FType::DateTime)),
    ];
    if owner {
        v.push(reference("OwnerId", "Owner ID", &["User"], "Owner"));
    }
    v
}

/// `External_Id__c`: External ID and Unique, case-insensitive (the default choice for a
/// Unique text field), so an upsert by it matches `ABC123` with `abc123`
/// (<https://developer.salesforce.com/docs/atlas.en-us.apexcode.meta/apexcode/langCon_apex_dml_examples_upsert.htm>)
/// and SOQL compares it without case as every field that is not unique case-sensitive
/// (<https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_comparisonoperators.htm>).
fn external_id() -> Field {
    let mut x = f("External_Id__c", "External Id", FType::String);
    x.external_id = true;
    x.unique = true;
    x.id_lookup = true;
    x.indexed = true;
    x.custom = true;
    x
}

/// `Legacy_Id__c`: External ID without Unique (an attribute of its own: help.salesforce.com
/// "Custom Field Attributes"), so an upsert by it matches values with case
/// (<https://developer.salesforce.com/docs/atlas.en-us.apexcode.meta/apexcode/langCon_apex_dml_examples_upsert.htm>)
/// while SOQL compares it without.
fn legacy_id() -> Field {
    let mut x = f("Legacy_Id__c", "Legacy Id", FType::String);
    x.external_id = true;
    x.id_lookup = true;
    x.indexed = true;
    x.custom = true;
    x
}

/// `Source_Key__c`: External ID, Unique and case-sensitive, so SOQL and upserts compare
/// its values with case (the two pages cited on [`external_id`]).
fn source_key() -> Field {
    let mut x = f("Source_Key__c", "Source Key", FType::String);
    x.external_id = true;
    x.unique = true;
    x.case_sensitive = true;
    x.id_lookup = true;
    x.indexed = true;
    x.custom = true;
    x
}

/// Opportunity stages with their default probability, closed and won flags and forecast
/// category (the standard values of the `OpportunityStage` object; developer.salesforce.com
/// /docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_opportunitystage.htm).
pub(crate) const STAGES: &[(&str, u8, bool, bool, &str)] = &[
    ("Prospecting", 10, false, false, "Pipeline"),
    ("Qualification", 10, false, false, "Pipeline"),
    ("Needs Analysis", 20, false, false, "Pipeline"),
    ("Value Proposition", 50, false, false, "Pipeline"),
    ("Id. Decision Makers", 60, false, false, "Pipeline"),
    ("Perception Analysis", 70, false, false, "Pipeline"),
    ("Proposal/Price Quote", 75, false, false, "Pipeline"),
    ("Negotiation/Review", 90, false, false, "Pipeline"),
    ("Closed Won", 100, true, true, "Closed"),
    ("Closed Lost", 0, true, false, "Omitted"),
];

const STAGE_NAMES: &[&str] = &[
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];

/// Lead statuses; the first is the default (the standard `LeadStatus` values).
pub(crate) const LEAD_STATUSES: &[&str] = &[
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
];

/// Task statuses; the first is the default, `Completed` is closed (the standard
/// `TaskStatus` values).
pub(crate) const TASK_STATUSES: &[&str] = &[
    "Not Started",
    "In Progress",
    "Completed",
    "Waiting on someone else",
    "Deferred",
];

const PRIORITIES: &[&str] = &["High", "Normal", "Low"];
const FORECAST: &[&str] = &["Omitted", "Pipeline", "Best Case", "Commit", "Closed"];
const LEAD_SOURCES: &[&str] = &[
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
];
const INDUSTRIES: &[&str] = &[
    "Agriculture",
    "Apparel",
    "Banking",
    "Construction",
    "Consulting",
    "Education",
    "Energy",
    "Engineering",
    "Finance",
    "Healthcare",
    "Manufacturing",
    "Retail",
    "Technology",
    "Utilities",
    "Other",
];
const RATINGS: &[&str] = &["Hot", "Warm", "Cold"];

fn address(prefix: &'static str) -> Vec<Field> {
    match prefix {
        "Billing" => vec![
            f("BillingStreet", "Billing Street", FType::TextArea),
            len(f("BillingCity", "Billing City", FType::String), 40),
            len(
                f("BillingState", "Billing State/Province", FType::String),
                80,
            ),
            len(
                f(
                    "BillingPostalCode",
                    "Billing Zip/Postal Code",
                    FType::String,
                ),
                20,
            ),
            len(f("BillingCountry", "Billing Country", FType::String), 80),
        ],
        _ => vec![
            f("MailingStreet", "Mailing Street", FType::TextArea),
            len(f("MailingCity", "Mailing City", FType::String), 40),
            len(
                f("MailingState", "Mailing State/Province", FType::String),
                80,
            ),
            len(
                f(
                    "MailingPostalCode",
                    "Mailing Zip/Postal Code",
                    FType::String,
                ),
                20,
            ),
            len(f("MailingCountry", "Mailing Country", FType::String), 80),
        ],
    }
}

fn build() -> Vec<Object> {
    let mut account = system_fields(true);
    account.extend([
        req(lookup(f("Name", "Account Name", FType::String))),
        pick(
            f("Type", "Account Type", FType::Picklist),
            &[
                "Prospect",
                "Customer - Direct",
                "Customer - Channel",
                "Channel Partner / Reseller",
                "Installation Partner",
                "Technology Partner",
                "Other",
            ],
            false,
        ),
        pick(
            f("Industry", "Industry", FType::Picklist),
            INDUSTRIES,
            false,
        ),
        f("Website", "Website", FType::Url),
        f("Phone", "Account Phone", FType::Phone),
        f("Description", "Account Description", FType::TextArea),
        f("AnnualRevenue", "Annual Revenue", FType::Currency),
        f("NumberOfEmployees", "Employees", FType::Int),
        len(f("AccountNumber", "Account Number", FType::String), 40),
        pick(
            f("Rating", "Account Rating", FType::Picklist),
            RATINGS,
            false,
        ),
        reference("ParentId", "Parent Account ID", &["Account"], "Parent"),
    ]);
    account.extend(address("Billing"));
    account.extend([external_id(), legacy_id(), source_key()]);

    let mut contact = system_fields(true);
    contact.extend([
        len(f("FirstName", "First Name", FType::String), 40),
        req(len(f("LastName", "Last Name", FType::String), 80)),
        ro(len(f("Name", "Full Name", FType::String), 121)),
        pick(
            f("Salutation", "Salutation", FType::Picklist),
            &["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."],
            false,
        ),
        reference("AccountId", "Account ID", &["Account"], "Account"),
        len(lookup(f("Email", "Email", FType::Email)), 80),
        f("Phone", "Business Phone", FType::Phone),
        f("MobilePhone", "Mobile Phone", FType::Phone),
        len(f("Title", "Title", FType::String), 128),
        len(f("Department", "Department", FType::String), 80),
        pick(
            f("LeadSource", "Lead Source", FType::Picklist),
            LEAD_SOURCES,
            false,
        ),
        f("Birthdate", "Birthdate", FType::Date),
        f("Description", "Contact Description", FType::TextArea),
    ]);
    contact.extend(address("Mailing"));
    contact.push(external_id());

    let mut lead = system_fields(true);
    lead.extend([
        len(f("FirstName", "First Name", FType::String), 40),
        req(len(f("LastName", "Last Name", FType::String), 80)),
        ro(len(f("Name", "Full Name", FType::String), 121)),
        req(f("Company", "Company", FType::String)),
        len(lookup(f("Email", "Email", FType::Email)), 80),
        f("Phone", "Phone", FType::Phone),
        len(f("Title", "Title", FType::String), 128),
        // Required but defaulted, so create may leave it out.
        pick(f("Status", "Status", FType::Picklist), LEAD_STATUSES, true),
        pick(
            f("LeadSource", "Lead Source", FType::Picklist),
            LEAD_SOURCES,
            false,
        ),
        pick(
            f("Industry", "Industry", FType::Picklist),
            INDUSTRIES,
            false,
        ),
        pick(f("Rating", "Rating", FType::Picklist), RATINGS, false),
        f("Website", "Website", FType::Url),
        f("NumberOfEmployees", "Employees", FType::Int),
        f("AnnualRevenue", "Annual Revenue", FType::Currency),
        f("Description", "Description", FType::TextArea),
        ro(f("IsConverted", "Converted", FType::Boolean)),
        ro(f("ConvertedDate", "Converted Date", FType::Date)),
        ro(reference(
            "ConvertedAccountId",
            "Converted Account ID",
            &["Account"],
            "ConvertedAccount",
        )),
        ro(reference(
            "ConvertedContactId",
            "Converted Contact ID",
            &["Contact"],
            "ConvertedContact",
        )),
        ro(reference(
            "ConvertedOpportunityId",
            "Converted Opportunity ID",
            &["Opportunity"],
            "ConvertedOpportunity",
        )),
    ]);
    lead.push(external_id());

    let mut opportunity = system_fields(true);
    opportunity.extend([
        req(len(f("Name", "Name", FType::String), 120)),
        reference("AccountId", "Account ID", &["Account"], "Account"),
        // The primary contact: set on create only (which makes a primary
        // OpportunityContactRole), afterwards derived from the primary role (Object
        // Reference, Opportunity, ContactId, API 46.0+:
        // https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_opportunity.htm).
        create_only(reference(
            "ContactId",
            "Contact ID",
            &["Contact"],
            "Contact",
        )),
        req(pick(
            len(f("StageName", "Stage", FType::Picklist), 255),
            STAGE_NAMES,
            true,
        )),
        req(f("CloseDate", "Close Date", FType::Date)),
        f("Amount", "Amount", FType::Currency),
        f("Probability", "Probability (%)", FType::Percent),
        pick(
            f("Type", "Opportunity Type", FType::Picklist),
            &[
                "Existing Customer - Upgrade",
                "Existing Customer - Replacement",
                "Existing Customer - Downgrade",
                "New Customer",
            ],
            false,
        ),
        pick(
            f("LeadSource", "Lead Source", FType::Picklist),
            LEAD_SOURCES,
            false,
        ),
        f("NextStep", "Next Step", FType::String),
        f("Description", "Description", FType::TextArea),
        ro(f("IsClosed", "Closed", FType::Boolean)),
        ro(f("IsWon", "Won", FType::Boolean)),
        pick(
            f("ForecastCategoryName", "Forecast Category", FType::Picklist),
            FORECAST,
            true,
        ),
    ]);
    opportunity.push(external_id());

    let activity = |event: bool| {
        let mut v = system_fields(true);
        v.extend([
            f("Subject", "Subject", FType::String),
            reference("WhoId", "Name ID", &["Contact", "Lead"], "Who"),
            reference(
                "WhatId",
                "Related To ID",
                &["Account", "Opportunity"],
                "What",
            ),
            f("ActivityDate", "Due Date Only", FType::Date),
            f("Description", "Description", FType::TextArea),
            pick(
                f("Type", "Type", FType::Picklist),
                &["Call", "Email", "Meeting", "Other"],
                false,
            ),
        ]);
        if event {
            v.extend([
                f("ActivityDateTime", "Due Date Time", FType::DateTime),
                f("StartDateTime", "Start Date Time", FType::DateTime),
                f("EndDateTime", "End Date Time", FType::DateTime),
                f("DurationInMinutes", "Duration", FType::Int),
                f("IsAllDayEvent", "All-Day Event", FType::Boolean),
                f("Location", "Location", FType::String),
            ]);
        } else {
            v.extend([
                pick(f("Status", "Status", FType::Picklist), TASK_STATUSES, true),
                pick(f("Priority", "Priority", FType::Picklist), PRIORITIES, true),
                ro(f("IsClosed", "Closed", FType::Boolean)),
                pick(
                    f("TaskSubtype", "Task Subtype", FType::Picklist),
                    &["Task", "Email", "Call"],
                    false,
                ),
                f("CallDurationInSeconds", "Call Duration", FType::Int),
                // Object Reference, Task: "CallType … The type of call being answered:
                // Inbound, Internal, or Outbound."
                pick(
                    f("CallType", "Call Type", FType::Picklist),
                    &["Inbound", "Internal", "Outbound"],
                    false,
                ),
            ]);
        }
        v.push(external_id());
        v
    };

    // OpportunityContactRole: the role a Contact plays on an Opportunity; one primary per
    // Opportunity (Object Reference:
    // https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_opportunitycontactrole.htm).
    let mut contact_role = system_fields(false);
    contact_role.extend([
        req(create_only(reference(
            "OpportunityId",
            "Opportunity ID",
            &["Opportunity"],
            "Opportunity",
        ))),
        req(reference(
            "ContactId",
            "Contact ID",
            &["Contact"],
            "Contact",
        )),
        f("IsPrimary", "Primary", FType::Boolean),
        pick(
            f("Role", "Role", FType::Picklist),
            &[
                "Business User",
                "Decision Maker",
                "Economic Buyer",
                "Economic Decision Maker",
                "Evaluator",
                "Executive Sponsor",
                "Influencer",
                "Technical Buyer",
                "Other",
            ],
            false,
        ),
    ]);

    let mut user = system_fields(false);
    user.extend([
        req(lookup(len(f("Username", "Username", FType::String), 80))),
        len(f("FirstName", "First Name", FType::String), 40),
        req(len(f("LastName", "Last Name", FType::String), 80)),
        ro(len(f("Name", "Full Name", FType::String), 121)),
        req(len(lookup(f("Email", "Email", FType::Email)), 128)),
        req(len(f("Alias", "Alias", FType::String), 8)),
        f("IsActive", "Active", FType::Boolean),
    ]);

    vec![
        Object {
            name: "Account",
            label: "Account",
            plural: "Accounts",
            prefix: "001",
            createable: true,
            fields: account,
            children: &[
                Child {
                    name: "Contacts",
                    object: "Contact",
                    field: "AccountId",
                },
                Child {
                    name: "Opportunities",
                    object: "Opportunity",
                    field: "AccountId",
                },
                Child {
                    name: "ChildAccounts",
                    object: "Account",
                    field: "ParentId",
                },
                Child {
                    name: "Tasks",
                    object: "Task",
                    field: "WhatId",
                },
                Child {
                    name: "Events",
                    object: "Event",
                    field: "WhatId",
                },
            ],
        },
        Object {
            name: "Contact",
            label: "Contact",
            plural: "Contacts",
            prefix: "003",
            createable: true,
            fields: contact,
            children: &[
                Child {
                    name: "Tasks",
                    object: "Task",
                    field: "WhoId",
                },
                Child {
                    name: "Events",
                    object: "Event",
                    field: "WhoId",
                },
            ],
        },
        Object {
            name: "Lead",
            label: "Lead",
            plural: "Leads",
            prefix: "00Q",
            createable: true,
            fields: lead,
            children: &[
                Child {
                    name: "Tasks",
                    object: "Task",
                    field: "WhoId",
                },
                Child {
                    name: "Events",
                    object: "Event",
                    field: "WhoId",
                },
            ],
        },
        Object {
            name: "Opportunity",
            label: "Opportunity",
            plural: "Opportunities",
            prefix: "006",
            createable: true,
            fields: opportunity,
            children: &[
                Child {
                    name: "OpportunityContactRoles",
                    object: "OpportunityContactRole",
                    field: "OpportunityId",
                },
                Child {
                    name: "Tasks",
                    object: "Task",
                    field: "WhatId",
                },
                Child {
                    name: "Events",
                    object: "Event",
                    field: "WhatId",
                },
            ],
        },
        Object {
            name: "Task",
            label: "Task",
            plural: "Tasks",
            prefix: "00T",
            createable: true,
            fields: activity(false),
            children: &[],
        },
        Object {
            name: "Event",
            label: "Event",
            plural: "Events",
            prefix: "00U",
            createable: true,
            fields: activity(true),
            children: &[],
        },
        Object {
            name: "OpportunityContactRole",
            label: "Opportunity Contact Role",
            plural: "Opportunity Contact Roles",
            prefix: "00K",
            createable: true,
            fields: contact_role,
            children: &[],
        },
        Object {
            name: "User",
            label: "User",
            plural: "Users",
            prefix: "005",
            createable: false,
            fields: user,
            children: &[],
        },
    ]
}

/// Every object, built once.
pub(crate) fn objects() -> &'static [Object] {
    static OBJECTS: std::sync::OnceLock<Vec<Object>> = std::sync::OnceLock::new();
    OBJECTS.get_or_init(build)
}

/// The object named `name` (case-insensitively).
pub(crate) fn object(name: &str) -> Option<&'static Object> {
    objects().iter().find(|o| o.name.eq_ignore_ascii_case(name))
}

/// The object whose ids start with the prefix of `id`.
pub(crate) fn object_of_id(id: &str) -> Option<&'static Object> {
    let prefix = id.get(..3)?;
    objects().iter().find(|o| o.prefix == prefix)
}

fn sobject_urls(v: &str, o: &Object) -> Value {
    json!({
        "sobject": format!("/services/data/v{v}/sobjects/{}", o.name),
        "describe": format!("/services/data/v{v}/sobjects/{}/describe", o.name),
        "rowTemplate": format!("/services/data/v{v}/sobjects/{}/{{ID}}", o.name),
    })
}

/// `GET sobjects/`: the describe-global answer.
pub(crate) fn describe_global(v: &str) -> Value {
    let sobjects: Vec<Value> = objects()
        .iter()
        .map(|o| {
            json!({"name": o.name, "label": o.label, "labelPlural": o.plural,
                   "keyPrefix": o.prefix, "custom": false, "createable": o.createable,
                   "updateable": o.createable, "deletable": o.createable, "queryable": true,
                   "searchable": true, "replicateable": true, "retrieveable": true,
                   "layoutable": true, "urls": sobject_urls(v, o)})
        })
        .collect();
    json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects})
}

/// `GET sobjects/{Type}/describe/`.
pub(crate) fn describe(v: &str, o: &Object) -> Value {
    let fields: Vec<Value> = o
        .fields
        .iter()
        .map(|x| {
            let default_value = match (x.name, o.name) {
                ("Status", "Lead") => Some(LEAD_STATUSES[0]),
                ("Status", "Task") => Some(TASK_STATUSES[0]),
                ("Priority", "Task") => Some("Normal"),
                _ => None,
            };
            let picklist: Vec<Value> = x
                .picklist
                .iter()
                .map(|p| {
                    json!({"value": p, "label": p, "active": true,
                           "defaultValue": default_value == Some(*p), "validFor": null})
                })
                .collect();
            let system = matches!(x.access, Access::ReadOnly);
            let defaulted = default_value.is_some()
                || matches!(
                    x.name,
                    "OwnerId" | "IsDeleted" | "CreatedDate" | "CreatedById" | "IsAllDayEvent"
                );
            json!({
                "name": x.name, "label": x.label, "type": x.ftype.name(),
                "length": if x.ftype.textual() { x.length } else { 0 },
                "byteLength": if x.ftype.textual() { x.length * 3 } else { x.length },
                "nillable": !x.required && x.ftype != FType::Boolean && x.ftype != FType::Id,
                "createable": !system && o.createable,
                "updateable": x.access == Access::ReadWrite && o.createable,
                "defaultedOnCreate": defaulted,
                "externalId": x.external_id, "idLookup": x.id_lookup,
                "unique": x.unique, "caseSensitive": x.case_sensitive, "custom": x.custom, "filterable": true, "sortable": true,
                "calculated": false, "restrictedPicklist": x.restricted,
                "picklistValues": picklist,
                "referenceTo": x.refs, "relationshipName": x.relationship,
                "soapType": match x.ftype {
                    FType::Id | FType::Reference => "tns:ID",
                    FType::Boolean => "xsd:boolean",
                    FType::Currency | FType::Percent => "xsd:double",
                    FType::Int => "xsd:int",
                    FType::Date => "xsd:date",
                    FType::DateTime => "xsd:dateTime",
                    _ => "xsd:string",
                },
            })
        })
        .collect();
    let children: Vec<Value> = o
        .children
        .iter()
        .map(|c| {
            json!({"childSObject": c.object, "field": c.field, "relationshipName": c.name,
                   "cascadeDelete": false, "deprecatedAndHidden": false})
        })
        .collect();
    json!({
        "name": o.name, "label": o.label, "labelPlural": o.plural, "keyPrefix": o.prefix,
        "custom": false, "createable": o.createable, "updateable": o.createable,
        "deletable": o.createable, "queryable": true, "searchable": true,
        "replicateable": true, "retrieveable": true,
        "fields": fields, "childRelationships": children,
        "urls": sobject_urls(v, o),
    })
}
