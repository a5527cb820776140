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
//! for the review queue, never merged silently. A record whose one candidate went to the
//! review queue goes there too (see `plan::plan`): it is neither linked nor created.
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
use std::collections::hash_map::Entry;

use foldhash::fast::RandomState;

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

/// Whether `word` is a legal-form suffix ignored at the end of a company name (Inc, LLC,
/// Ltd, GmbH, …). A `match` rather than a search of a list: it tests the length and then
/// the bytes inline, where a list's comparisons each called the C library's `memcmp`, for
/// the last words of every company name planned.
pub fn is_legal_suffix(word: &str) -> bool {
    matches!(
        word,
        "inc"
            | "incorporated"
            | "llc"
            | "llp"
            | "lp"
            | "ltd"
            | "limited"
            | "gmbh"
            | "corp"
            | "corporation"
            | "co"
            | "company"
            | "sa"
            | "sas"
            | "sarl"
            | "ag"
            | "bv"
            | "nv"
            | "plc"
            | "pty"
            | "oy"
            | "ab"
            | "as"
            | "srl"
            | "spa"
            | "kg"
            | "ug"
    )
}

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
    let mut out = String::new();
    push_domain(text, &mut out).then_some(out)
}

/// Appends `text`'s domain in matching form ([`normalize_domain`]) to `out`; `false` (and
/// nothing appended) when it has none. Lower-cases a copy only when `text` needs it.
fn push_domain(text: &str, out: &mut String) -> bool {
    let t = crate::values::trim(text);
    let lower = if t.bytes().any(|b| !b.is_ascii() || b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(t.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(t)
    };
    let t: &str = &lower;
    let t = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .unwrap_or(t);
    // Cut at ASCII delimiters found byte by byte (always char boundaries): a domain is
    // read for every company planned, and the `str` splitters decode characters.
    let b = t.as_bytes();
    let end = b
        .iter()
        .position(|c| matches!(c, b'/' | b'?' | b'#'))
        .unwrap_or(b.len());
    let start = b[..end]
        .iter()
        .rposition(|c| *c == b'@')
        .map_or(0, |i| i + 1);
    let host = &t[start..end];
    let host = host.find(':').map_or(host, |i| &host[..i]);
    let host = host
        .strip_prefix("www.")
        .unwrap_or(host)
        .trim_end_matches('.');
    if !host.contains('.') || FREE_MAIL.contains(&host) {
        return false;
    }
    out.push_str(host);
    true
}

/// A company name in matching form (`"ACME, Inc."` → `"acme"`); `None` when nothing is
/// left.
pub fn normalize_company_name(name: &str) -> Option<String> {
    let mut out = String::new();
    push_company_name(name, &mut out).then_some(out)
}

/// Appends `name` in matching form ([`normalize_company_name`]) to `out`; `false` (and
/// nothing appended) when nothing is left.
fn push_company_name(name: &str, out: &mut String) -> bool {
    let start = out.len();
    if name.is_ascii() {
        // The common case, without the copies: words of letters and digits, one space
        // apart, each appended in one piece (found byte by byte: the text is ASCII) and the
        // whole lower-cased at the end.
        let b = name.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if !b[i].is_ascii_alphanumeric() {
                i += 1;
                continue;
            }
            let from = i;
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            if out.len() > start {
                out.push(' ');
            }
            out.push_str(&name[from..i]);
        }
        out[start..].make_ascii_lowercase();
    } else {
        let cleaned: String = name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { ' ' })
            .collect();
        for (i, w) in cleaned.split_whitespace().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(w);
        }
    }
    // Legal suffixes off the end, never the only word.
    // Spaces found byte by byte (ASCII, so at character boundaries): a name is short and
    // `rfind` calls the C library for each.
    while let Some(i) = out.as_bytes()[start..].iter().rposition(|c| *c == b' ') {
        if !is_legal_suffix(&out[start + i + 1..]) {
            break;
        }
        out.truncate(start + i);
    }
    out.len() > start
}

/// The matching keys of a record, strongest first; a record matches another on the first
/// key kind both have in common. All keys share one buffer, so a record's keys cost two
/// allocations whatever their number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// Every key's text, one after another (each starts with its kind: `domain:acme.com`).
    text: String,
    /// Per key: its strength tier (0 strongest) and where it ends in `text`.
    ends: Ends,
}

/// The ends of a record's keys: held inline up to three (a company has two keys, a deal
/// one, a person one per email), in a list beyond; keys are built for every record of a
/// run, so most cost no allocation for their ends.
#[derive(Debug, Clone)]
enum Ends {
    Inline(u8, [(u8, usize); 3]),
    Heap(Vec<(u8, usize)>),
}

impl PartialEq for Ends {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Ends {}

impl Default for Ends {
    fn default() -> Self {
        Ends::Inline(0, [(0, 0); 3])
    }
}

impl Ends {
    fn push(&mut self, end: (u8, usize)) {
        match self {
            Ends::Inline(n, items) if usize::from(*n) < items.len() => {
                items[usize::from(*n)] = end;
                *n += 1;
            }
            Ends::Inline(_, items) => {
                let mut v = items.to_vec();
                v.push(end);
                *self = Ends::Heap(v);
            }
            Ends::Heap(v) => v.push(end),
        }
    }

    fn as_slice(&self) -> &[(u8, usize)] {
        match self {
            Ends::Inline(n, items) => &items[..usize::from(*n)],
            Ends::Heap(v) => v,
        }
    }
}

impl Keys {
    /// Writes one key of `tier` through `write` (which appends its text and says whether
    /// there is one); a key with no text is dropped.
    fn push(&mut self, tier: u8, kind: &str, write: impl FnOnce(&mut String) -> bool) {
        let start = self.text.len();
        self.text.push_str(kind);
        if write(&mut self.text) {
            self.ends.push((tier, self.text.len()));
        } else {
            self.text.truncate(start);
        }
    }

    /// The keys of each tier, strongest tier first.
    pub fn tiers(&self) -> impl Iterator<Item = impl Iterator<Item = &str>> {
        let text = self.text.as_str();
        self.ends
            .as_slice()
            .chunk_by(|a, b| a.0 == b.0)
            .scan(0, move |start, tier| {
                let first = *start;
                *start = tier.last().map_or(first, |(_, end)| *end);
                let mut from = first;
                Some(tier.iter().map(move |(_, end)| {
                    let k = &text[from..*end];
                    from = *end;
                    k
                }))
            })
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.ends.as_slice().len()
    }

    /// Whether there is no key at all.
    pub fn is_empty(&self) -> bool {
        self.ends.as_slice().is_empty()
    }

    /// A company's own domain (normalised), which vetoes a name match with a company of
    /// another domain.
    pub fn domain(&self) -> Option<&str> {
        self.tiers()
            .flatten()
            .find_map(|k| k.strip_prefix(DOMAIN_KEY))
    }
}

/// The prefix of a company's domain key.
const DOMAIN_KEY: &str = "domain:";

/// The prefix of company-name keys, the tier a domain mismatch vetoes.
const NAME_KEY: &str = "name:";

/// The matching keys of `record`. Deals match on their company (as `company_key`, the same
/// for linked companies in every CRM) plus normalised name.
pub fn keys(record: &Record, company_key: Option<&str>) -> Keys {
    // Room for a company's domain and name keys: the buffer is not grown key by key.
    let mut keys = Keys {
        text: String::with_capacity(96),
        ends: Ends::default(),
    };
    match record {
        Record::Person(p) => {
            for e in &p.emails {
                keys.push(0, "email:", |out| {
                    normalize_email(e).map(|e| out.push_str(&e)).is_some()
                });
            }
        }
        Record::Company(c) => {
            keys.push(0, DOMAIN_KEY, |out| {
                c.domain.as_deref().is_some_and(|d| push_domain(d, out))
                    || c.url.as_deref().is_some_and(|u| push_domain(u, out))
            });
            keys.push(1, NAME_KEY, |out| push_company_name(&c.name, out));
        }
        Record::Deal(d) => {
            if let Some(co) = company_key {
                keys.push(0, "deal:", |out| {
                    out.push_str(co);
                    out.push(':');
                    push_company_name(&d.name, out)
                });
            }
        }
        Record::Activity(_) => {}
    }
    keys
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<T> {
    /// No candidate.
    None,
    /// Exactly one candidate: link.
    One(T),
    /// Several: an ambiguous match for the review queue.
    Many(Vec<T>),
}

/// An index of candidates by matching key, borrowing the keys it was given.
#[derive(Debug)]
pub struct Index<'k, T> {
    /// foldhash rather than the default SipHash: the index is built for every record of a
    /// run and hashing its keys was a large share of planning. foldhash is seeded at random
    /// per process but calls itself only minimally resistant to crafted collisions; the keys
    /// are emails, domains and names others can choose, so a flood of colliding keys could
    /// slow a run down (never change its result). Accepted for the speed.
    by_key: HashMap<&'k str, Slot<Candidate<'k, T>>, RandomState>,
}

/// A candidate and its own domain (companies), which a name match is checked against.
#[derive(Debug, Clone)]
struct Candidate<'k, T> {
    item: T,
    domain: Option<&'k str>,
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

impl<T> Default for Index<'_, T> {
    fn default() -> Self {
        Self {
            by_key: HashMap::default(),
        }
    }
}

impl<'k, T: Clone + PartialEq> Index<'k, T> {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty index with room for about `n` keys.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            by_key: HashMap::with_capacity_and_hasher(n, RandomState::default()),
        }
    }

    /// Adds `item` under each of its keys.
    pub fn insert(&mut self, keys: &'k Keys, item: T) {
        let candidate = Candidate {
            item,
            domain: keys.domain(),
        };
        for tier in keys.tiers() {
            for k in tier {
                // One lookup per key: the entry is found (or made) once.
                match self.by_key.entry(k) {
                    Entry::Vacant(v) => {
                        v.insert(Slot::One(candidate.clone()));
                    }
                    Entry::Occupied(mut o) => match o.get_mut() {
                        Slot::One(first) if first.item == candidate.item => {}
                        Slot::One(first) => {
                            let first = first.clone();
                            *o.get_mut() = Slot::Many(vec![first, candidate.clone()]);
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
        let own = keys.domain();
        for tier in keys.tiers() {
            // One candidate is the common case: a list only once a second distinct one
            // turns up.
            let mut one: Option<&T> = None;
            let mut many: Vec<T> = Vec::new();
            let mut other_domain = false;
            for k in tier {
                let by_name = k.starts_with(NAME_KEY);
                for c in self.by_key.get(k).map_or(&[][..], Slot::items) {
                    if by_name && matches!((own, c.domain), (Some(a), Some(b)) if a != b) {
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
        // The ASCII pass agrees with the general form (lower-case, anything but letters
        // and digits a space, words one space apart, suffixes off the end).
        let general = |s: &str| {
            let cleaned: String = s
                .to_lowercase()
                .chars()
                .map(|c| if c.is_alphanumeric() { c } else { ' ' })
                .collect();
            let mut words: Vec<&str> = cleaned.split_whitespace().collect();
            while words.len() > 1 && words.last().is_some_and(|w| is_legal_suffix(w)) {
                words.pop();
            }
            (!words.is_empty()).then(|| words.join(" "))
        };
        for s in [
            "",
            "x",
            "Inc",
            "  Acme   Inc  ",
            "...Acme---Widgets!!",
            "A.B.C",
            "Acme Inc Inc",
            "ACME123 ltd.",
            "9 to 5, LLC",
            "\tTab\nNew Co",
            "Co Co",
            "acme-co",
        ] {
            assert_eq!(n(s), general(s), "{s:?}");
        }
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
        let held = [
            k(&company("Acme Inc", Some("https://acme.com"))),
            k(&company("Acme LLC", None)),
            k(&company("Globex", None)),
            k(&company("Globex Corp", None)),
        ];
        let mut idx = Index::new();
        for (i, keys) in held.iter().enumerate() {
            idx.insert(keys, i + 1);
        }
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
        let (ann, bob) = (
            k(&person(&["Ann@Acme.com", "ann@home.net"])),
            k(&person(&["bob@acme.com"])),
        );
        let mut people = Index::new();
        people.insert(&ann, "a");
        people.insert(&bob, "b");
        assert_eq!(
            people.find(&k(&person(&["ann@acme.com "]))),
            Found::One("a")
        );
        assert_eq!(
            people.find(&k(&person(&["ann@home.net", "bob@acme.com"]))),
            Found::Many(vec!["a", "b"])
        );
        assert_eq!(people.find(&k(&person(&[]))), Found::None);
        assert!(k(&person(&["not an address"])).is_empty());
        let both = k(&company("Acme, Inc.", Some("https://WWW.Acme.com/x")));
        let tiers: Vec<Vec<&str>> = both.tiers().map(Iterator::collect).collect();
        assert_eq!(tiers, [vec!["domain:acme.com"], vec!["name:acme"]]);
        // More keys than are held inline: every one still matches, and equal keys compare
        // equal however they are held.
        let many = ["a@x.com", "b@x.com", "c@x.com", "d@x.com", "e@x.com"];
        let five = k(&person(&many));
        assert_eq!(five.len(), 5);
        let mut wide = Index::new();
        wide.insert(&five, "five");
        for e in many {
            assert_eq!(wide.find(&k(&person(&[e]))), Found::One("five"), "{e}");
        }
        assert_eq!(five, k(&person(&many)));
        assert_ne!(five, k(&person(&many[..3])));
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
        let candidate = keys(candidate, None);
        let mut idx = Index::new();
        idx.insert(&candidate, 1);
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
