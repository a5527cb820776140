//! One seeded "world" of companies, people and deals, generated once from a seed, that each
//! CRM emulator maps into its own shapes. The CRMs overlap by design, so sync work has
//! records to match across them, and some fields differ between CRMs on purpose, so
//! matching has something to reconcile.
//!
//! Membership is deterministic per (seed, company, CRM): every company is in Close (the
//! sales team's CRM), about 70 % are in HubSpot (marketing) and about 50 % in Salesforce
//! (finance), independently, so all four overlaps occur.

use std::ops::Range;

use fastrand::Rng;

use crate::names;

/// A CRM the world is mapped into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Crm {
    /// Close.
    Close,
    /// HubSpot.
    HubSpot,
    /// Salesforce.
    Salesforce,
}

impl Crm {
    /// Out of 100, how many companies this CRM holds.
    fn share(self) -> u64 {
        match self {
            Crm::Close => 100,
            Crm::HubSpot => 70,
            Crm::Salesforce => 50,
        }
    }

    fn salt(self) -> u64 {
        match self {
            Crm::Close => 0x11,
            Crm::HubSpot => 0x22,
            Crm::Salesforce => 0x33,
        }
    }
}

/// The stages a deal moves through, in order; the last two are closed.
pub const DEAL_STAGES: &[&str] = &["Active", "Demo Scheduled", "Proposal Sent", "Won", "Lost"];

/// A company.
#[derive(Debug, Clone, PartialEq)]
pub struct Company {
    /// Its position in the world.
    pub index: usize,
    /// The legal name, e.g. `Copper Mechanical Inc`.
    pub name: String,
    /// The name without the legal suffix, e.g. `Copper Mechanical`.
    pub short_name: String,
    /// Its web domain.
    pub domain: String,
    /// One of the seeded industries.
    pub industry: &'static str,
    /// One to three of the seeded trades.
    pub trades: Vec<String>,
    /// Minutes relative to the world's origin when it was first recorded: never positive,
    /// so a large world stretches back in time from the origin instead of years into the
    /// future (a CRM's seeding may date a company's deals and activities a little after it).
    pub created_minute: i64,
    /// Its people, as indexes into [`World::people`].
    pub people: Range<usize>,
    /// Its deals, as indexes into [`World::deals`].
    pub deals: Range<usize>,
}

/// A person working at a company.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// The company's index.
    pub company: usize,
    /// Full name.
    pub name: String,
    /// Work email.
    pub email: String,
    /// Job title.
    pub title: String,
    /// Phone in E.164.
    pub phone: String,
}

/// A deal with a company.
#[derive(Debug, Clone, PartialEq)]
pub struct Deal {
    /// The company's index.
    pub company: usize,
    /// Value in cents.
    pub value_cents: i64,
    /// Win likelihood, 0–100.
    pub confidence: u8,
    /// Index into [`DEAL_STAGES`].
    pub stage: usize,
}

/// The generated world.
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    /// The seed it was generated from.
    pub seed: u64,
    /// Every company.
    pub companies: Vec<Company>,
    /// Every person.
    pub people: Vec<Person>,
    /// Every deal.
    pub deals: Vec<Deal>,
}

/// A cheap, stable mix of the inputs (splitmix64), for membership decisions.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

impl World {
    /// Generates `companies` companies with their people and deals from `seed`; linear in
    /// the size, and the same seed always gives the same world.
    pub fn generate(seed: u64, companies: usize) -> World {
        let mut rng = Rng::with_seed(seed ^ 0x05ee_d0f3_011d);
        let mut world = World {
            seed,
            companies: Vec::with_capacity(companies),
            people: Vec::with_capacity(companies * 2),
            deals: Vec::with_capacity(companies),
        };
        for index in 0..companies {
            let (name, domain) = names::company(&mut rng);
            let short_name = name
                .rsplit_once(' ')
                .map_or(name.as_str(), |(head, _)| head)
                .to_string();
            let industry = names::industry(&mut rng);
            let trades = names::trades(&mut rng);
            let first_person = world.people.len();
            for _ in 0..rng.usize(1..=3) {
                let (pname, email, title) = names::person(&mut rng, &domain);
                world.people.push(Person {
                    company: index,
                    name: pname,
                    email,
                    title,
                    phone: names::phone(&mut rng),
                });
            }
            let first_deal = world.deals.len();
            for _ in 0..rng.usize(0..=2) {
                world.deals.push(Deal {
                    company: index,
                    value_cents: rng.i64(10..=500) * 100_000,
                    confidence: rng.u8(10..=90),
                    stage: rng.usize(..DEAL_STAGES.len()),
                });
            }
            world.companies.push(Company {
                index,
                name,
                short_name,
                domain,
                industry,
                trades,
                created_minute: -37 * (companies - 1 - index) as i64,
                people: first_person..world.people.len(),
                deals: first_deal..world.deals.len(),
            });
        }
        world
    }

    /// Whether company `index` is held by `crm`.
    pub fn holds(&self, crm: Crm, index: usize) -> bool {
        mix(self.seed ^ mix(index as u64 ^ (crm.salt() << 56))) % 100 < crm.share()
    }

    /// The companies `crm` holds, in world order.
    pub fn members(&self, crm: Crm) -> impl Iterator<Item = &Company> + '_ {
        self.companies
            .iter()
            .filter(move |c| self.holds(crm, c.index))
    }

    /// The company's name as `crm` records it: HubSpot drops the legal suffix (its company
    /// names come from the domain), the others keep the legal name.
    pub fn company_name(&self, crm: Crm, company: &Company) -> String {
        match crm {
            Crm::HubSpot => company.short_name.clone(),
            Crm::Close | Crm::Salesforce => company.name.clone(),
        }
    }

    /// The person's phone as `crm` records it: Salesforce keeps what was typed
    /// (`(650) 555-1234`), the others normalise to E.164.
    pub fn phone(&self, crm: Crm, person: &Person) -> String {
        match crm {
            Crm::Salesforce => {
                let digits = person.phone.trim_start_matches("+1");
                match (digits.get(..3), digits.get(3..6), digits.get(6..)) {
                    (Some(a), Some(b), Some(c)) => format!("({a}) {b}-{c}"),
                    _ => person.phone.clone(),
                }
            }
            Crm::Close | Crm::HubSpot => person.phone.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_world() {
        assert_eq!(World::generate(4, 50), World::generate(4, 50));
        assert_ne!(World::generate(4, 50), World::generate(5, 50));
    }

    #[test]
    fn crms_overlap_in_every_combination() {
        let w = World::generate(9, 2_000);
        assert_eq!(w.members(Crm::Close).count(), 2_000);
        let hub = w.members(Crm::HubSpot).count();
        let sf = w.members(Crm::Salesforce).count();
        assert!((1_200..1_600).contains(&hub), "{hub}");
        assert!((800..1_200).contains(&sf), "{sf}");
        let both = (0..2_000)
            .filter(|&i| w.holds(Crm::HubSpot, i) && w.holds(Crm::Salesforce, i))
            .count();
        let neither = (0..2_000)
            .filter(|&i| !w.holds(Crm::HubSpot, i) && !w.holds(Crm::Salesforce, i))
            .count();
        assert!(both > 400 && neither > 200, "{both} {neither}");
    }

    #[test]
    fn some_fields_differ_between_crms_on_purpose() {
        let w = World::generate(1, 3);
        let c = &w.companies[0];
        assert_ne!(
            w.company_name(Crm::HubSpot, c),
            w.company_name(Crm::Close, c)
        );
        assert!(
            w.company_name(Crm::Close, c)
                .starts_with(&w.company_name(Crm::HubSpot, c))
        );
        let p = &w.people[c.people.start];
        assert!(w.phone(Crm::Close, p).starts_with("+1"));
        assert!(w.phone(Crm::Salesforce, p).starts_with('('));
        assert!(!c.people.is_empty() && w.deals[c.deals.clone()].iter().all(|d| d.company == 0));
    }
}
