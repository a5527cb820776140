//! Matching records that are not linked yet: by email, company domain and normalised company
//! name.
//!
//! - **Email**: trimmed and lower-cased. Gmail's dots and `+tags` are *not* folded: they
//!   only mean the same mailbox at Gmail, and even there two CRM contacts `ann@…` and
//!   `ann+work@…` are often kept apart on purpose; folding them would merge two people.
//! - **Domain**: a company's `domain`, else the host of its website URL (`www.` dropped).
//!   Free-mail domains (gmail.com, outlook.com, …) never identify a company.
//! - **Company name**: lower-cased, punctuation dropped, whitespace collapsed, and legal
//!   suffixes (Inc, LLC, Ltd, GmbH, Corp, Co, SA, AG, BV, …) removed from the end.
//!
//! A key that finds exactly one candidate links; several candidates are an ambiguous match
//! for the review queue, never merged silently.
//!
//! A company **name** is weaker evidence than a domain: "Acme Inc" (acme.com) and "Acme Ltd"
//! (acme.co.uk) share a normalised name and may be two companies, or one company's two
//! regional sites. So a name match between two companies that both have a domain, and
//! different ones, never links: it goes to the review queue as ambiguous
//! ([`Found::Many`]). Not matching at all would create each in the other CRM, a duplicate
//! whenever they are in fact one company; linking would merge two companies' data. The
//! review queue does neither and lets a person decide. A name match where one side has no
//! domain links as before: the name is then the only evidence there is, and nothing
//! contradicts it.

use std::collections::HashMap;

use crmkit_core::{ObjectKind, Record};

/// Domains of free mail providers: an address there says nothing about the company.
pub const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "ymail.com",
    "outlook.com",
    "hotmail.com",
    "hotmail.co.uk",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "gmx.com",
    "gmx.de",
    "web.de",
    "mail.com",
    "yandex.com",
    "yandex.ru",
    "zoho.com",
    "qq.com",
    "163.com",
];

/// Legal-form suffixes ignored at the end of a company name.
pub const LEGAL_SUFFIXES: &[&str] = &[
    "inc",
    "incorporated",
    "llc",
    "llp",
    "lp",
    "ltd",
    "limited",
    "gmbh",
    "corp",
    "corporation",
    "co",
    "company",
    "sa",
    "sas",
    "sarl",
    "ag",
    "bv",
    "nv",
    "plc",
    "pty",
    "oy",
    "ab",
    "as",
    "srl",
    "spa",
    "kg",
    "ug",
];

/// An email in matching form: trimmed and lower-cased; `None` unless it has one `@` with
/// text on both sides.
pub fn normalize_email(email: &str) -> Option<String> {
    let e = email.trim().to_lowercase();
    let (local, domain) = e.split_once('@')?;
    (!local.is_empty() && !domain.is_empty() && !domain.contains('@')).then_some(e)
}

/// The company domain of an email, unless it is a free-mail provider's.
pub fn work_domain(email: &str) -> Option<String> {
    let e = normalize_email(email)?;
    let (_, d) = e.split_once('@')?;
    normalize_domain(d)
}

/// A domain or URL in matching form: the lower-case host without `www.`; `None` for free
/// mail providers and for text with no dot.
pub fn normalize_domain(text: &str) -> Option<String> {
    let t = text.trim().to_lowercase();
    let t = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .unwrap_or(&t);
    let host = t.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    let host = host.split(':').next().unwrap_or_default();
    let host = host
        .strip_prefix("www.")
        .unwrap_or(host)
        .trim_end_matches('.');
    if !host.contains('.') || FREE_MAIL.contains(&host) {
        return None;
    }
    Some(host.to_string())
}

/// A company name in matching form (`"ACME, Inc."` → `"acme"`); `None` when nothing is
/// left.
pub fn normalize_company_name(name: &str) -> Option<String> {
    let cleaned: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let mut words: Vec<&str> = cleaned.split_whitespace().collect();
    while words.len() > 1 && words.last().is_some_and(|w| LEGAL_SUFFIXES.contains(w)) {
        words.pop();
    }
    let out = words.join(" ");
    (!out.is_empty()).then_some(out)
}

/// The matching keys of a record, strongest first; a record matches another on the first
/// key kind both have in common.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// Key strength tiers: each a list of keys; the first tier that finds anyone decides.
    pub tiers: Vec<Vec<String>>,
    /// A company's own domain (normalised): a name match with a company of another domain
    /// is sent to review instead of linked.
    pub domain: Option<String>,
}

/// The prefix of company-name keys, the tier a domain mismatch vetoes.
const NAME_KEY: &str = "name:";

/// The matching keys of `record`. Deals match on their company (as `company_key`, the same
/// for linked companies in every CRM) plus normalised name.
pub fn keys(record: &Record, company_key: Option<&str>) -> Keys {
    let mut tiers = Vec::new();
    let mut own_domain = None;
    match record {
        Record::Person(p) => {
            tiers.push(
                p.emails
                    .iter()
                    .filter_map(|e| normalize_email(e))
                    .map(|e| format!("email:{e}"))
                    .collect(),
            );
        }
        Record::Company(c) => {
            let domain = c
                .domain
                .as_deref()
                .and_then(normalize_domain)
                .or_else(|| c.url.as_deref().and_then(normalize_domain));
            tiers.push(
                domain
                    .as_ref()
                    .map(|d| format!("domain:{d}"))
                    .into_iter()
                    .collect(),
            );
            tiers.push(
                normalize_company_name(&c.name)
                    .map(|n| format!("{NAME_KEY}{n}"))
                    .into_iter()
                    .collect(),
            );
            own_domain = domain;
        }
        Record::Deal(d) => {
            if let (Some(co), Some(n)) = (company_key, normalize_company_name(&d.name)) {
                tiers.push(vec![format!("deal:{co}:{n}")]);
            }
        }
        Record::Activity(_) => {}
    }
    tiers.retain(|t: &Vec<String>| !t.is_empty());
    Keys {
        tiers,
        domain: own_domain,
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<T> {
    /// No candidate.
    None,
    /// Exactly one candidate: link.
    One(T),
    /// Several, or companies that share only a name across two different domains: an
    /// ambiguous match for the review queue, never linked.
    Many(Vec<T>),
}

/// An index of candidates by matching key.
#[derive(Debug)]
pub struct Index<T> {
    by_key: HashMap<String, Slot<Candidate<T>>>,
}

/// A candidate and its own domain (companies), which a name match is checked against.
#[derive(Debug, Clone)]
struct Candidate<T> {
    item: T,
    domain: Option<String>,
}

/// The candidates under one key. Nearly every key has exactly one, so that one is held
/// inline: a list is allocated only for a key shared by several records.
#[derive(Debug)]
enum Slot<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> Slot<T> {
    fn items(&self) -> &[T] {
        match self {
            Slot::One(t) => std::slice::from_ref(t),
            Slot::Many(ts) => ts,
        }
    }
}

impl<T> Default for Index<T> {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
        }
    }
}

impl<T: Clone + PartialEq> Index<T> {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `item` under each of its keys.
    pub fn insert(&mut self, keys: &Keys, item: T) {
        let candidate = Candidate {
            item,
            domain: keys.domain.clone(),
        };
        for tier in &keys.tiers {
            for k in tier {
                match self.by_key.get_mut(k.as_str()) {
                    None => {
                        self.by_key.insert(k.clone(), Slot::One(candidate.clone()));
                    }
                    Some(slot) => match slot {
                        Slot::One(first) if first.item == candidate.item => {}
                        Slot::One(first) => {
                            let first = first.clone();
                            *slot = Slot::Many(vec![first, candidate.clone()]);
                        }
                        Slot::Many(items) => {
                            if !items.iter().any(|c| c.item == candidate.item) {
                                items.push(candidate.clone());
                            }
                        }
                    },
                }
            }
        }
    }

    /// The candidates for `keys`: the first tier that finds any decides. A name match with
    /// a company whose domain differs from `keys`' own is never [`Found::One`] (see the
    /// module docs).
    pub fn find(&self, keys: &Keys) -> Found<T> {
        for tier in &keys.tiers {
            // One candidate is the common case: a list only once a second distinct one
            // turns up.
            let mut one: Option<&T> = None;
            let mut many: Vec<T> = Vec::new();
            let mut other_domain = false;
            for k in tier {
                let by_name = k.starts_with(NAME_KEY);
                for c in self.by_key.get(k.as_str()).map_or(&[][..], Slot::items) {
                    if by_name && matches!((&keys.domain, &c.domain), (Some(a), Some(b)) if a != b)
                    {
                        other_domain = true;
                    }
                    let item = &c.item;
                    match one {
                        None => one = Some(item),
                        Some(o) if o == item => {}
                        Some(o) => {
                            if many.is_empty() {
                                many.push(o.clone());
                            }
                            if !many.contains(item) {
                                many.push(item.clone());
                            }
                        }
                    }
                }
            }
            match one {
                None => continue,
                Some(_) if !many.is_empty() => return Found::Many(many),
                Some(o) if other_domain => return Found::Many(vec![o.clone()]),
                Some(o) => return Found::One(o.clone()),
            }
        }
        Found::None
    }
}

/// The kinds that match on keys at all (activities never do).
pub fn matchable(kind: ObjectKind) -> bool {
    kind != ObjectKind::Activity
}

#[cfg(test)]
mod tests {
    use crmkit_core::{Company, Person};

    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased_but_not_folded() {
        assert_eq!(
            normalize_email("  Ann@Example.COM "),
            Some("ann@example.com".into())
        );
        assert_ne!(
            normalize_email("a.nn@gmail.com"),
            normalize_email("ann@gmail.com")
        );
        assert_ne!(
            normalize_email("ann+x@gmail.com"),
            normalize_email("ann@gmail.com")
        );
        assert_eq!(normalize_email("nope"), None);
        assert_eq!(normalize_email("@x.com"), None);
    }

    #[test]
    fn domains_come_from_urls_and_work_emails_but_never_free_mail() {
        assert_eq!(
            normalize_domain("https://www.Acme.com/about?x"),
            Some("acme.com".into())
        );
        assert_eq!(normalize_domain("acme.io"), Some("acme.io".into()));
        assert_eq!(
            normalize_domain("http://user@shop.acme.io:8080/"),
            Some("shop.acme.io".into())
        );
        assert_eq!(work_domain("bob@acme.com"), Some("acme.com".into()));
        for free in [
            "a@gmail.com",
            "a@yahoo.com",
            "a@outlook.com",
            "a@hotmail.com",
            "a@icloud.com",
        ] {
            assert_eq!(work_domain(free), None, "{free}");
        }
        assert_eq!(normalize_domain("localhost"), None);
    }

    #[test]
    fn company_names_ignore_case_punctuation_and_legal_suffixes() {
        let n = |s| normalize_company_name(s);
        assert_eq!(n("ACME, Inc."), Some("acme".into()));
        assert_eq!(n("Acme Corp"), n("acme"));
        assert_eq!(n("Müller GmbH & Co. KG"), Some("müller".into()));
        assert_eq!(n("Acme Holding B.V."), Some("acme holding b v".into()));
        assert_eq!(n("Acme Holding BV"), Some("acme holding".into()));
        assert_eq!(
            n("Co"),
            Some("co".into()),
            "a name that is only a suffix stays"
        );
        assert_eq!(n(" ,. "), None);
    }

    #[test]
    fn one_candidate_links_several_are_ambiguous_stronger_keys_first() {
        let company = |name: &str, url: Option<&str>| {
            Record::Company(Company {
                name: name.into(),
                url: url.map(Into::into),
                ..Company::default()
            })
        };
        let k = |r: &Record| keys(r, None);
        let mut idx = Index::new();
        idx.insert(&k(&company("Acme Inc", Some("https://acme.com"))), 1);
        idx.insert(&k(&company("Acme LLC", None)), 2);
        idx.insert(&k(&company("Globex", None)), 3);
        idx.insert(&k(&company("Globex Corp", None)), 4);
        // The domain decides before the (shared) name.
        assert_eq!(
            idx.find(&k(&company("ACME", Some("www.acme.com")))),
            Found::One(1)
        );
        assert_eq!(
            idx.find(&k(&company("Acme", None))),
            Found::Many(vec![1, 2])
        );
        assert_eq!(
            idx.find(&k(&company("Globex, Inc.", None))),
            Found::Many(vec![3, 4])
        );
        assert_eq!(idx.find(&k(&company("Initech", None))), Found::None);

        let person = |emails: &[&str]| {
            Record::Person(Person {
                emails: emails.iter().map(|e| e.to_string()).collect(),
                ..Person::default()
            })
        };
        let mut people = Index::new();
        people.insert(&k(&person(&["Ann@Acme.com", "ann@home.net"])), "a");
        people.insert(&k(&person(&["bob@acme.com"])), "b");
        assert_eq!(
            people.find(&k(&person(&["ann@acme.com "]))),
            Found::One("a")
        );
        assert_eq!(
            people.find(&k(&person(&["ann@home.net", "bob@acme.com"]))),
            Found::Many(vec!["a", "b"])
        );
        assert_eq!(people.find(&k(&person(&[]))), Found::None);
    }

    fn company(name: &str, domain: Option<&str>) -> Record {
        Record::Company(Company {
            name: name.into(),
            domain: domain.map(Into::into),
            ..Company::default()
        })
    }

    /// Looks `query` up in an index holding `candidate` alone.
    fn find_one(candidate: &Record, query: &Record) -> Found<u8> {
        let mut idx = Index::new();
        idx.insert(&keys(candidate, None), 1);
        idx.find(&keys(query, None))
    }

    #[test]
    fn the_same_name_and_domain_links() {
        assert_eq!(
            find_one(
                &company("Acme Inc", Some("acme.com")),
                &company("ACME", Some("https://www.acme.com/"))
            ),
            Found::One(1)
        );
    }

    #[test]
    fn the_same_name_across_different_domains_goes_to_review_never_links() {
        let inc = company("Acme Inc", Some("acme.com"));
        let ltd = company("Acme Ltd", Some("acme.co.uk"));
        assert_eq!(find_one(&inc, &ltd), Found::Many(vec![1]));
        assert_eq!(find_one(&ltd, &inc), Found::Many(vec![1]));
        // A website counts as the domain when there is no domain field.
        let site = Record::Company(Company {
            name: "Acme".into(),
            url: Some("https://acme.de".into()),
            ..Company::default()
        });
        assert_eq!(find_one(&inc, &site), Found::Many(vec![1]));
    }

    #[test]
    fn a_name_match_where_one_side_has_no_domain_links() {
        let with = company("Acme Inc", Some("acme.com"));
        let without = company("ACME Corp.", None);
        assert_eq!(find_one(&with, &without), Found::One(1));
        assert_eq!(find_one(&without, &with), Found::One(1));
        // A free-mail "domain" is no domain: it neither matches nor contradicts.
        let free = company("Acme", Some("gmail.com"));
        assert_eq!(find_one(&with, &free), Found::One(1));
    }
}
