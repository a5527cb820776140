//! Deterministic, realistic-looking names, emails and domains for seeding.

use fastrand::Rng;

const FIRST: &[&str] = &[
    "Ava", "Liam", "Maya", "Noah", "Zoe", "Ethan", "Priya", "Lucas", "Sofia", "Omar", "Hannah",
    "Mateo", "Chloe", "Kenji", "Isla", "Diego", "Amara", "Felix", "Nora", "Ravi", "Elena",
    "Samuel", "Leila", "Jonas", "Grace", "Tomás", "Ines", "Marcus", "Yara", "Owen",
];
const LAST: &[&str] = &[
    "Garcia",
    "Chen",
    "Patel",
    "Okafor",
    "Schmidt",
    "Rossi",
    "Nguyen",
    "Kowalski",
    "Silva",
    "Johnson",
    "Müller",
    "Haddad",
    "Tanaka",
    "Larsen",
    "Dubois",
    "Moreno",
    "Kim",
    "Brennan",
    "Novak",
    "Ali",
    "Fischer",
    "Walsh",
    "Costa",
    "Ivanova",
    "Lindqvist",
];
const COMPANY_A: &[&str] = &[
    "Copper",
    "Summit",
    "Bright",
    "North",
    "Blue",
    "Iron",
    "Cedar",
    "Harbor",
    "Pioneer",
    "Keystone",
    "Granite",
    "Silver",
    "Maple",
    "Atlas",
    "Beacon",
    "Evergreen",
    "Falcon",
    "Prairie",
];
const COMPANY_B: &[&str] = &[
    "Mechanical",
    "Electric",
    "Builders",
    "Plumbing",
    "Air",
    "Solar",
    "Roofing",
    "Contracting",
    "Systems",
    "Services",
    "Energy",
    "Controls",
    "Works",
];
const SUFFIX: &[&str] = &["Inc", "LLC", "Co", "Group", "Ltd"];
/// Industries the seeded `Industry` custom field chooses from.
pub const INDUSTRIES: &[&str] = &[
    "MEP Contractor",
    "General Contractor",
    "Solar Installer",
    "Property Management",
    "Manufacturing",
];
/// Trades the seeded multi-value `Trades` custom field chooses from.
pub const TRADES: &[&str] = &[
    "HVAC",
    "Electrical",
    "Plumbing",
    "Roofing",
    "Fire Protection",
];
const TITLES: &[&str] = &[
    "Owner",
    "Operations Manager",
    "Project Manager",
    "Estimator",
    "CFO",
    "Service Manager",
    "Office Manager",
    "VP Sales",
];

fn pick<'a>(rng: &mut Rng, list: &[&'a str]) -> &'a str {
    list[rng.usize(..list.len())]
}

/// A company name and its domain.
pub fn company(rng: &mut Rng) -> (String, String) {
    let a = pick(rng, COMPANY_A);
    let b = pick(rng, COMPANY_B);
    let name = format!("{a} {b} {}", pick(rng, SUFFIX));
    let domain = format!("{}{}.com", a.to_lowercase(), b.to_lowercase());
    (name, domain)
}

/// A person's full name and an email at `domain`.
pub fn person(rng: &mut Rng, domain: &str) -> (String, String, String) {
    let first = pick(rng, FIRST);
    let last = pick(rng, LAST);
    let local: String = format!("{first}.{last}")
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    (
        format!("{first} {last}"),
        format!("{local}@{domain}"),
        pick(rng, TITLES).to_string(),
    )
}

/// One of the seeded industries.
pub fn industry(rng: &mut Rng) -> &'static str {
    pick(rng, INDUSTRIES)
}

/// One to three distinct trades.
pub fn trades(rng: &mut Rng) -> Vec<String> {
    let n = rng.usize(1..=3);
    let mut out: Vec<String> = Vec::new();
    while out.len() < n {
        let t = pick(rng, TRADES).to_string();
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// A US phone number in E.164.
pub fn phone(rng: &mut Rng) -> String {
    format!("+1{}{:07}", rng.u32(201..990), rng.u32(0..10_000_000))
}

/// A Close-style id: prefix, underscore, 43 base62 characters.
pub fn close_id(rng: &mut Rng, prefix: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let tail: String = (0..43)
        .map(|_| ALPHABET[rng.usize(..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}_{tail}")
}
