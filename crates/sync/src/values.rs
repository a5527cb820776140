//! Unified field values: reading the synced fields out of a record, their canonical form,
//! unit conversions, and writing decided values back into a record as a patch.
//!
//! A [`FieldMap`] holds only non-empty values: `null`, blank strings, empty lists and empty
//! objects are all "empty" and absent, so "no value" has one form on every CRM.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use crmkit_core::{Company, Crm, Deal, Error, Money, ObjectKind, Person, Record, Result};
use serde_json::{Map, Number, Value};
use sha2::digest::generic_array::GenericArray;

use crate::activity::ActivityField;
use crate::config::{EntityConfig, FieldType, Unit};

pub use crate::field_map::{FieldMap, Writes};

/// A unified field name, copied freely: the standard names are `'static` text and any
/// other name (custom fields, names read back from the store) is interned once per process,
/// so a record's field map allocates no key strings. Compares, orders and hashes as its
/// text, so maps keyed by it iterate (and hash) exactly as maps keyed by `String` did.
#[derive(Clone, Copy, Eq)]
pub struct Field(&'static str);

/// Hashed as its text, as equal fields have equal text.
impl std::hash::Hash for Field {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

// Compared as their text, written out rather than derived: the derived forms call the C
// library's `memcmp` for every comparison, and field names are short, nearly always differ
// in their first byte, and are compared for every value a plan sorts or looks up. Two
// fields of one name are nearly always one `'static` text, which settles equality at once.
impl PartialEq for Field {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0) || name_cmp(self.0, other.0).is_eq()
    }
}

impl PartialOrd for Field {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Field {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if std::ptr::eq(self.0, other.0) {
            return std::cmp::Ordering::Equal;
        }
        name_cmp(self.0, other.0)
    }
}

/// Orders field names as text (as `str::cmp` does) byte by byte, without a call to `memcmp`.
pub(crate) fn name_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    for (p, q) in x.iter().zip(y) {
        if p != q {
            return p.cmp(q);
        }
    }
    x.len().cmp(&y.len())
}

impl Field {
    /// A field named by static text (no interning needed).
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }

    /// The field named `name`, interning it on first use. The interned names are the field
    /// names of the configuration and of stored field values, so they stay few.
    pub fn intern(name: &str) -> Self {
        static NAMES: std::sync::Mutex<BTreeSet<&'static str>> =
            std::sync::Mutex::new(BTreeSet::new());
        let mut names = NAMES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = names.get(name) {
            return Self(n);
        }
        let n: &'static str = Box::leak(name.to_owned().into_boxed_str());
        names.insert(n);
        Self(n)
    }

    /// The name.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::ops::Deref for Field {
    type Target = str;

    fn deref(&self) -> &str {
        self.0
    }
}

impl std::borrow::Borrow<str> for Field {
    fn borrow(&self) -> &str {
        self.0
    }
}

impl From<&str> for Field {
    fn from(name: &str) -> Self {
        Self::intern(name)
    }
}

impl From<String> for Field {
    fn from(name: String) -> Self {
        Self::intern(&name)
    }
}

impl From<Field> for String {
    fn from(f: Field) -> Self {
        f.0.to_string()
    }
}

impl PartialEq<str> for Field {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Field {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl std::fmt::Debug for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.0, f)
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl serde::Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Self::intern(&name))
    }
}

/// The canonical hash of mapped fields: SHA-256 of their compact JSON (keys in order: the
/// map is sorted and [`canonical`] sorts nested objects and normalises numbers and
/// strings), first 16 bytes in hex.
///
/// The JSON is written whole into a buffer kept per thread, padded there and its blocks
/// compressed where they lie ([`sha256_padded`]; feeding a SHA-256 state piece by piece
/// cost more than the hashing), and text needing no escapes
/// (nearly all of it) is copied as it is: the hash is computed for every record read, so
/// the planner's speed depends on it. The bytes hashed, and so the hash, are exactly those
/// of `serde_json::to_vec`.
pub fn hash(fields: &FieldMap) -> FieldsHash {
    thread_local! {
        static JSON: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    JSON.with_borrow_mut(|json| {
        json.clear();
        json.push(b'{');
        for (i, (field, v)) in fields.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            json_str(json, field.as_str());
            json.push(b':');
            match v {
                Value::String(s) => json_str(json, s),
                // Numbers, lists and objects: serde_json's own form. Writing into a Vec
                // cannot fail.
                other => {
                    let _ = serde_json::to_writer(&mut *json, other);
                }
            }
        }
        json.push(b'}');
        let state = sha256_padded(json);
        // One long value (an e-mail body) does not keep its size of buffer for good. Its
        // length is read, not its capacity: padding may have doubled the capacity of a
        // buffer just under the limit, which is no reason to let it go each time.
        if json.len() > HASH_BUFFER_KEPT {
            *json = Vec::new();
        }
        FieldsHash::of_state(&state)
    })
}

/// SHA-256's initial state (FIPS 180-4, section 5.3.3).
const SHA256_INITIAL: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The SHA-256 state after hashing `message`, padded in place (FIPS 180-4, section 5.1.1:
/// a one bit, zeros, and the message's length in bits, to a whole number of 64-byte
/// blocks), so its blocks are compressed where they lie: the generic hasher copies the
/// tail into a block buffer of its own and pads there, which cost a record's hash a
/// fifth of its time. The first 16 bytes of the digest are the first four words, big-endian.
fn sha256_padded(message: &mut Vec<u8>) -> [u32; 8] {
    let bits = (message.len() as u64).wrapping_mul(8);
    message.push(0x80);
    let zeros = (64 - (message.len() + 8) % 64) % 64;
    message.resize(message.len() + zeros, 0);
    message.extend_from_slice(&bits.to_be_bytes());
    let mut state = SHA256_INITIAL;
    for block in message.chunks_exact(64) {
        sha2::compress256(
            &mut state,
            std::slice::from_ref(GenericArray::from_slice(block)),
        );
    }
    state
}

/// The longest padded JSON whose buffer [`hash`] keeps for the next record, in bytes (the
/// buffer may be up to twice that).
const HASH_BUFFER_KEPT: usize = 64 * 1024;

/// Appends `s` as a JSON string: as it is when serde_json would escape nothing in it.
/// Inlined: it runs for every name and text value of every record read.
#[inline(always)]
fn json_str(json: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        let _ = serde_json::to_writer(&mut *json, s);
    } else {
        json.push(b'"');
        json.extend_from_slice(s.as_bytes());
        json.push(b'"');
    }
}

/// Whether JSON would escape a byte of `b` (a quote, a backslash or a control byte). Every
/// string hashed is scanned, so eight bytes are tested at once, in a `u64` (the classic
/// "has a byte less than n" test), a tail as the last eight bytes (some tested twice,
/// which does not change the answer): only text shorter than a word is read byte by byte.
fn needs_escape(b: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Non-zero only where `x` has a byte below `n` (the borrow can mark a byte after a real
    // one as well, which does not change the answer).
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    let escapes = |w: &[u8]| {
        let x = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        below(x, 0x20)
            | below(x ^ (ONES * u64::from(b'"')), 1)
            | below(x ^ (ONES * u64::from(b'\\')), 1)
            != 0
    };
    if b.len() < 8 {
        return b.iter().any(|&c| c == b'"' || c == b'\\' || c < 0x20);
    }
    let mut words = b.chunks_exact(8);
    words.by_ref().any(escapes) || (!words.remainder().is_empty() && escapes(&b[b.len() - 8..]))
}

/// A [`hash`]: the first 16 bytes of a SHA-256 in lower-case hex, held inline. Every record
/// read gets one, so it is not a heap string: the store keeps it as its text
/// ([`FieldsHash::as_str`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldsHash([u8; 32]);

impl FieldsHash {
    /// The first 16 bytes of the digest whose state is `state`, in hex: each word's eight
    /// digits at once, in a `u64` (every record read gets a hash).
    fn of_state(state: &[u32; 8]) -> Self {
        const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
        let mut out = [0u8; 32];
        for (digits, w) in out.chunks_exact_mut(8).zip(state) {
            // Each nibble into a byte of its own, the lowest nibble in the lowest byte.
            let mut x = u64::from(*w);
            x = (x & 0xffff) | ((x & 0xffff_0000) << 16);
            x = (x & 0x0000_00ff_0000_00ff) | ((x & 0x0000_ff00_0000_ff00) << 8);
            x = (x & 0x000f_000f_000f_000f) | ((x & 0x00f0_00f0_00f0_00f0) << 4);
            // '0' + n, and 39 more ('a' - '0' - 10) where n is 10 or more (n + 6 carries
            // into the byte's fifth bit); no byte carries into the next.
            let letters = ((x + 6 * ONES) >> 4) & ONES;
            digits.copy_from_slice(&(x + u64::from(b'0') * ONES + 39 * letters).to_be_bytes());
        }
        Self(out)
    }

    /// The hash as the store keeps it: 32 lower-case hex digits.
    pub fn as_str(&self) -> &str {
        // Built from ASCII hex digits only, so always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Compared with the text the store keeps, byte for byte.
impl PartialEq<str> for FieldsHash {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl std::fmt::Display for FieldsHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for FieldsHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl serde::Serialize for FieldsHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl From<FieldsHash> for String {
    fn from(h: FieldsHash) -> Self {
        h.as_str().to_string()
    }
}

/// The reference fields: they hold a record id of the same CRM and are translated through
/// links when copied to another CRM.
pub const REFERENCES: [(&str, ObjectKind); 2] = [
    ("company", ObjectKind::Company),
    ("person", ObjectKind::Person),
];

/// The record id a reference field's value holds, as text: an id stored as a number (a
/// base from before fields had types) is its digits.
pub fn reference_id(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The kind a reference field points at, if `field` is one.
pub fn reference_kind(field: &str) -> Option<ObjectKind> {
    REFERENCES
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, k)| *k)
}

/// Close-style minor units (cents) to a decimal amount: `1999` → `19.99`.
pub fn cents_to_decimal(cents: i64) -> f64 {
    cents as f64 / 100.0
}

/// A decimal amount to minor units, rounded half away from zero: `19.99` → `1999`. `None`
/// for amounts no `i64` of cents can hold (or not finite).
pub fn decimal_to_cents(amount: f64) -> Option<i64> {
    let c = (amount * 100.0).round();
    (c.is_finite() && c.abs() < 9.0e15).then_some(c as i64)
}

/// A 0.0–1.0 probability to a 0–100 confidence: `0.25` → `25`.
pub fn probability_to_confidence(p: f64) -> Option<u8> {
    (p.is_finite() && (0.0..=1.0).contains(&p)).then(|| (p * 100.0).round() as u8)
}

/// A 0–100 confidence to a 0.0–1.0 probability: `25` → `0.25`.
pub fn confidence_to_probability(c: u8) -> f64 {
    f64::from(c.min(100)) / 100.0
}

/// The canonical form of a value of a field of type `ty`, or `None` when it is empty.
///
/// Strings are trimmed. In a [`FieldType::Number`] field, text that reads as a finite
/// number becomes that number, because HubSpot returns every property as text (`"1000.00"`
/// → `1000`); in a [`FieldType::Text`] field text stays text (`"2.10"` is not `"2.1"`) and a
/// number becomes its text. Numbers with an integral value become integers (`1.0` → `1`);
/// objects are rebuilt with sorted keys; lists keep their order but lose empty items.
pub fn canonical(v: &Value, ty: FieldType) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Bool(_) => Some(v.clone()),
        Value::Number(n) => Some(match ty {
            FieldType::Number => Value::Number(canonical_number(n)),
            FieldType::Text => Value::String(canonical_number(n).to_string()),
        }),
        Value::String(s) => {
            let t = trim(s);
            if t.is_empty() {
                return None;
            }
            if ty == FieldType::Number {
                if let Some(n) = t
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .and_then(Number::from_f64)
                {
                    return Some(Value::Number(canonical_number(&n)));
                }
            }
            Some(Value::String(t.to_string()))
        }
        Value::Array(items) => {
            let items: Vec<Value> = items.iter().filter_map(|i| canonical(i, ty)).collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                if let Some(v) = o.get(k).and_then(|v| canonical(v, ty)) {
                    out.insert(k.clone(), v);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
    }
}

/// Takes a stored base from before fields had types, which held numeric-looking text as a
/// number (`"2.10"` stored as `2.1`), as the current text when that text reads as the same
/// number: the upgrade is not mistaken for a change on that side.
pub fn upgrade_base(base: &mut FieldMap, now: &FieldMap) {
    for (field, b) in base.iter_mut() {
        if let (Value::Number(n), Some(Value::String(s))) = (&*b, now.get(field)) {
            if s.parse::<f64>().ok().is_some_and(|f| Some(f) == n.as_f64()) {
                *b = Value::String(s.clone());
            }
        }
    }
}

fn canonical_number(n: &Number) -> Number {
    if n.is_i64() || n.is_u64() {
        return n.clone();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Number::from(f as i64),
        Some(f) => Number::from_f64(f).unwrap_or_else(|| n.clone()),
        None => n.clone(),
    }
}

fn put(map: &mut FieldMap, field: Field, v: Value, ty: FieldType) {
    if let Some(v) = canonical(&v, ty) {
        map.insert(field, v);
    }
}

/// `s.trim()`, settled at once for text that starts and ends with a visible ASCII
/// character (nearly every value read: `str::trim` decodes characters at both ends, and
/// every text value of every record read is trimmed). No such character is whitespace.
#[inline]
pub(crate) fn trim(s: &str) -> &str {
    match s.as_bytes() {
        [first, .., last] if first.is_ascii_graphic() && last.is_ascii_graphic() => s,
        [only] if only.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

/// `put` for text, with one allocation instead of two.
fn put_str(map: &mut FieldMap, field: &'static str, s: &str) {
    let t = trim(s);
    if !t.is_empty() {
        map.insert(Field(field), Value::String(t.to_string()));
    }
}

fn text(map: &mut FieldMap, field: &'static str, v: &Option<String>) {
    if let Some(s) = v {
        put_str(map, field, s);
    }
}

/// A record id: trimmed text, never read as a number (HubSpot ids are digits).
fn id_text(map: &mut FieldMap, field: &'static str, v: &Option<String>) {
    if let Some(id) = v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        map.insert(Field(field), Value::String(id.to_string()));
    }
}

fn date(t: &Option<DateTime<Utc>>) -> Option<Value> {
    t.map(|t| Value::String(t.date_naive().to_string()))
}

fn list(items: &[String], lower: bool) -> Value {
    Value::Array(
        items
            .iter()
            .map(|s| {
                let s = trim(s);
                Value::String(if lower {
                    s.to_lowercase()
                } else {
                    s.to_string()
                })
            })
            .collect(),
    )
}

fn unit_in(v: &Value, unit: Option<Unit>) -> Value {
    let Some(f) = v.as_f64() else {
        return v.clone();
    };
    let out = match unit {
        Some(Unit::Cents) => f / 100.0,
        Some(Unit::Fraction) => f * 100.0,
        _ => return v.clone(),
    };
    Number::from_f64(out).map_or_else(|| v.clone(), Value::Number)
}

fn unit_out(v: &Value, unit: Option<Unit>) -> Value {
    let Some(f) = v.as_f64() else {
        return v.clone();
    };
    match unit {
        Some(Unit::Cents) => decimal_to_cents(f).map_or_else(|| v.clone(), Value::from),
        Some(Unit::Fraction) => {
            Number::from_f64(f / 100.0).map_or_else(|| v.clone(), Value::Number)
        }
        _ => v.clone(),
    }
}

/// The synced fields of `record` (read from `crm`) in unified, canonical form.
///
/// Fails only for a deal whose stage has no entry in the stage map and no fallback: an
/// unmapped stage is never guessed.
pub fn extract(record: &Record, crm: Crm, cfg: &EntityConfig) -> Result<FieldMap> {
    // Sized for every synced field up front: never grown while filled.
    let mut m = FieldMap::with_capacity(cfg.fields.len() + cfg.custom.len());
    let wants = |f: &str| cfg.fields.iter().any(|x| x == f);
    // Each kind's fields are read in name order, so each is appended to the map.
    match record {
        Record::Company(c) => {
            if wants("description") {
                text(&mut m, "description", &c.description);
            }
            if wants("domain") {
                if let Some(d) = c.domain.as_deref().map(|d| trim(d).to_lowercase()) {
                    if !d.is_empty() {
                        m.insert(Field("domain"), Value::String(d));
                    }
                }
            }
            if wants("name") {
                put_str(&mut m, "name", &c.name);
            }
            if wants("url") {
                text(&mut m, "url", &c.url);
            }
        }
        Record::Person(p) => {
            if wants("company") {
                id_text(&mut m, "company", &p.company_id);
            }
            if wants("emails") {
                put(
                    &mut m,
                    Field("emails"),
                    list(&p.emails, true),
                    FieldType::Text,
                );
            }
            if wants("name") {
                put_str(&mut m, "name", &p.name);
            }
            if wants("phones") {
                put(
                    &mut m,
                    Field("phones"),
                    list(&p.phones, false),
                    FieldType::Text,
                );
            }
            if wants("title") {
                text(&mut m, "title", &p.title);
            }
        }
        Record::Deal(d) => {
            if let Some(money) = d.amount.as_ref().filter(|_| wants("amount")) {
                if let Some(n) = Number::from_f64(cents_to_decimal(money.minor)) {
                    put(&mut m, Field("amount"), Value::Number(n), FieldType::Number);
                }
            }
            if wants("close_date") {
                if let Some(v) = date(&d.close_date) {
                    put(&mut m, Field("close_date"), v, FieldType::Text);
                }
            }
            if wants("company") {
                id_text(&mut m, "company", &d.company_id);
            }
            if wants("confidence") {
                if let Some(c) = d.confidence {
                    put(
                        &mut m,
                        Field("confidence"),
                        Value::from(c),
                        FieldType::Number,
                    );
                }
            }
            if let Some(money) = d.amount.as_ref().filter(|_| wants("currency")) {
                put_str(&mut m, "currency", &money.currency.to_uppercase());
            }
            if wants("name") {
                put_str(&mut m, "name", &d.name);
            }
            if wants("person") {
                id_text(&mut m, "person", &d.person_id);
            }
            if wants("stage") {
                if let Some(stage) = stage_of(d, crm, cfg)? {
                    put_str(&mut m, "stage", &stage);
                }
            }
        }
        Record::Activity(a) => crate::activity::extract(a, wants, &mut m, put_str),
    }
    let custom = record.custom();
    for (name, cf) in &cfg.custom {
        if let Some(v) = cf.key(crm).and_then(|k| custom.get(k)) {
            // Units convert the canonical number (HubSpot's text "1999" included).
            let ty = cf.field_type();
            if let Some(c) = canonical(v, ty) {
                put(
                    &mut m,
                    Field::intern(name),
                    unit_in(&c, cf.units.get(&crm).copied()),
                    ty,
                );
            }
        }
    }
    Ok(m)
}

fn stage_of(d: &Deal, crm: Crm, cfg: &EntityConfig) -> Result<Option<String>> {
    let Some(stage_id) = d.stage_id.as_deref() else {
        return Ok(None);
    };
    let describe = || format!("deal {} \"{}\"", d.id.as_deref().unwrap_or("(new)"), d.name);
    let Some((pname, p)) = cfg.pipeline_for(crm, d.pipeline_id.as_deref()) else {
        return Err(Error::config(format!(
            "{crm} stage {stage_id:?}: no [deal.pipelines.default] stage map"
        ))
        .with_crm(crm)
        .with_record(describe()));
    };
    if let Some((name, _)) = p
        .stages
        .iter()
        .find(|(_, ids)| ids.get(crm) == Some(stage_id))
    {
        return Ok(Some(name.clone()));
    }
    match &p.fallback {
        Some(fb) => Ok(Some(fb.clone())),
        None => Err(Error::config(format!(
            "{crm} stage {stage_id:?} is not in the stage map of pipeline {pname:?}: add it to [deal.pipelines.{pname}.stages] or set a fallback"
        ))
        .with_crm(crm)
        .with_record(describe())),
    }
}

/// An empty record of `kind`, to be filled by [`apply`] and created.
pub fn blank(kind: ObjectKind) -> Record {
    match kind {
        ObjectKind::Company => Record::Company(Company::default()),
        ObjectKind::Person => Record::Person(Person::default()),
        ObjectKind::Deal => Record::Deal(Deal::default()),
        ObjectKind::Activity => {
            Record::Activity(crmkit_core::Activity::new(crmkit_core::ActivityKind::Note))
        }
    }
}

fn as_text(v: Option<&Value>) -> Option<String> {
    v.map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn as_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items.iter().filter_map(|i| as_text(Some(i))).collect(),
        Some(other) => as_text(Some(other)).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Whether `record`, held by `crm` (or about to be created there), keeps the unified
/// `field`: a custom field only where the configuration names it for `crm`; an activity's
/// field only where its type has it ([`crate::activity::holds_field`]); every standard field
/// of companies, people and deals.
pub fn holds(record: &Record, crm: Crm, cfg: &EntityConfig, field: Field) -> bool {
    if let Some(cf) = cfg.custom.get(field.as_str()) {
        return cf.key(crm).is_some();
    }
    match record {
        Record::Activity(a) => {
            activity_field(field).is_some_and(|f| crate::activity::holds_field(crm, a.kind, f))
        }
        _ => true,
    }
}

/// The activity field named `field`. `None` is a name no activity has: the configuration
/// check refuses one in `[activity] fields`, and [`crate::activity::extract`] produces only
/// the names of [`ActivityField::ALL`], so such a name can only come from elsewhere (a
/// stored base of a version that synced a field since removed). No activity can hold it:
/// it is neither kept nor written.
fn activity_field(field: Field) -> Option<ActivityField> {
    ActivityField::named(field.as_str())
}

/// Whether writing `v` (`None` clears) into `field` of `record`, a record `crm` holds whose
/// field reads `now`, changes anything there. A write that cannot (a field the record
/// cannot hold, see [`holds`]; an activity's `kind`; a value the CRM keeps as `now`
/// already; a clear of the lead of a Close contact, opportunity or activity, each of
/// which belongs to exactly one lead, so Close refuses a null `lead_id` on update:
/// developer.close.com/resources/contacts) sends nothing, so the planner leaves it out:
/// neither planned, counted nor audited.
pub fn lands(
    record: &Record,
    crm: Crm,
    cfg: &EntityConfig,
    field: Field,
    v: Option<&Value>,
    now: Option<&Value>,
) -> bool {
    if let Some(cf) = cfg.custom.get(field.as_str()) {
        return cf.key(crm).is_some();
    }
    if crm == Crm::Close && v.is_none() && field.as_str() == "company" {
        return false;
    }
    match record {
        Record::Activity(a) => {
            activity_field(field).is_some_and(|f| crate::activity::write_lands(crm, a, f, v, now))
        }
        _ => true,
    }
}

/// Writes `changes` (field → new value, `None` to clear) into `record`, a record of `crm`
/// (the target's current record, so its `raw` lets the connector send only what differs, or
/// a [`blank`] one for a create). Reference fields must already hold `crm`'s ids.
pub fn apply(record: &mut Record, crm: Crm, cfg: &EntityConfig, changes: &Writes) -> Result<()> {
    for (field, value) in changes {
        let v = value.as_ref();
        if let Some(cf) = cfg.custom.get(field.as_str()) {
            let Some(key) = cf.key(crm) else { continue };
            let out = v.map_or(Value::Null, |v| unit_out(v, cf.units.get(&crm).copied()));
            record.custom_mut().insert(key.to_string(), out);
            continue;
        }
        match record {
            Record::Company(c) => match field.as_str() {
                "name" => c.name = as_text(v).unwrap_or_default(),
                "domain" => c.domain = as_text(v),
                "url" => c.url = as_text(v),
                "description" => c.description = as_text(v),
                _ => {}
            },
            Record::Person(p) => match field.as_str() {
                "name" => p.name = as_text(v).unwrap_or_default(),
                "title" => p.title = as_text(v),
                "emails" => p.emails = as_list(v),
                "phones" => p.phones = as_list(v),
                "company" => p.company_id = as_text(v),
                _ => {}
            },
            Record::Deal(d) => match field.as_str() {
                "name" => d.name = as_text(v).unwrap_or_default(),
                "amount" => {
                    d.amount = match v.and_then(Value::as_f64) {
                        Some(a) => {
                            let minor = decimal_to_cents(a).ok_or_else(|| {
                                Error::config(format!("amount {a} cannot be stored"))
                                    .with_crm(crm)
                                    .with_record(record_label(d))
                            })?;
                            let currency = changes
                                .get("currency")
                                .and_then(|c| as_text(c.as_ref()))
                                .or_else(|| d.amount.as_ref().map(|m| m.currency.clone()))
                                .unwrap_or_else(|| "USD".into());
                            Some(Money::new(minor, currency))
                        }
                        None => None,
                    }
                }
                "currency" => {
                    if let (Some(m), Some(c)) = (d.amount.as_mut(), as_text(v)) {
                        *m = Money::new(m.minor, c);
                    }
                }
                "stage" => set_stage(d, crm, cfg, as_text(v))?,
                "confidence" => d.confidence = v.and_then(Value::as_u64).map(|c| c.min(100) as u8),
                "close_date" => {
                    d.close_date = as_text(v)
                        .and_then(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok())
                        .and_then(|day| day.and_hms_opt(0, 0, 0))
                        .map(|t| t.and_utc())
                }
                "company" => d.company_id = as_text(v),
                "person" => d.person_id = as_text(v),
                _ => {}
            },
            Record::Activity(a) => {
                if let Some(f) = activity_field(*field) {
                    crate::activity::set(a, f, v);
                }
            }
        }
    }
    if let Record::Activity(a) = record {
        crate::activity::ready_for_create(a, crm)?;
    }
    Ok(())
}

fn record_label(d: &Deal) -> String {
    format!("deal {} \"{}\"", d.id.as_deref().unwrap_or("(new)"), d.name)
}

fn set_stage(d: &mut Deal, crm: Crm, cfg: &EntityConfig, stage: Option<String>) -> Result<()> {
    let Some(stage) = stage else {
        d.stage_id = None;
        return Ok(());
    };
    let Some((pname, p)) = cfg.pipeline_for(crm, d.pipeline_id.as_deref()) else {
        return Err(Error::config("no [deal.pipelines.default] stage map").with_crm(crm));
    };
    let Some(id) = p.stages.get(&stage).and_then(|ids| ids.get(crm)) else {
        return Err(Error::config(format!(
            "stage {stage:?} has no {crm} stage in pipeline {pname:?}: add it to [deal.pipelines.{pname}.stages]"
        ))
        .with_crm(crm)
        .with_record(record_label(d)));
    };
    d.stage_id = Some(id.to_string());
    if d.pipeline_id.is_none() {
        d.pipeline_id = p.ids.get(crm).map(str::to_string);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::config::{Config, CustomField};

    #[test]
    fn canonical_forms_follow_the_field_type_not_the_look_of_the_value() {
        use FieldType::{Number as N, Text as T};
        // Number fields: HubSpot's text is the number it reads as.
        assert_eq!(canonical(&json!(1.0), N), Some(json!(1)));
        assert_eq!(canonical(&json!("1"), N), Some(json!(1)));
        assert_eq!(canonical(&json!(" 1.50 "), N), Some(json!(1.5)));
        assert_eq!(canonical(&json!("1000.00"), N), canonical(&json!(1000), N));
        assert_eq!(canonical(&json!("007"), N), Some(json!(7)));
        assert_eq!(canonical(&json!("1e3"), N), Some(json!(1000)));
        assert_eq!(
            canonical(&json!("n/a"), N),
            Some(json!("n/a")),
            "kept, not lost"
        );
        assert_eq!(canonical(&json!("NaN"), N), Some(json!("NaN")));
        // Text fields: text stays text, so a change from "2.10" to "2.1" is a change.
        assert_eq!(canonical(&json!("2.10"), T), Some(json!("2.10")));
        assert_ne!(canonical(&json!("2.10"), T), canonical(&json!("2.1"), T));
        assert_eq!(canonical(&json!("007"), T), Some(json!("007")));
        assert_eq!(canonical(&json!(" 5 "), T), Some(json!("5")));
        assert_eq!(
            canonical(&json!(5.0), T),
            Some(json!("5")),
            "a number as its text"
        );
        assert_eq!(canonical(&json!("  Acme "), T), Some(json!("Acme")));
        assert_eq!(canonical(&json!("   "), T), None);
        assert_eq!(canonical(&json!([]), T), None);
        assert_eq!(
            canonical(&json!({"b": "1", "a": null}), T),
            Some(json!({"b": "1"}))
        );
        assert_eq!(canonical(&Value::Null, N), None);
    }

    #[test]
    fn text_fields_keep_numeric_looking_text_and_number_fields_read_hubspot_text() {
        let mut cfg = Config::new(vec![Crm::Close, Crm::HubSpot]).company;
        for (name, kind, units) in [
            ("code", None, BTreeMap::new()),
            ("budget", Some(FieldType::Number), BTreeMap::new()),
            ("spend", None, BTreeMap::from([(Crm::Close, Unit::Cents)])),
        ] {
            cfg.custom.insert(
                name.into(),
                CustomField {
                    close: Some(format!("custom.cf_{name}")),
                    hubspot: Some(name.into()),
                    units,
                    kind,
                    ..CustomField::default()
                },
            );
        }
        let company = |description: &str, custom: &[(&str, Value)]| {
            Record::Company(Company {
                name: "Acme".into(),
                description: Some(description.into()),
                custom: custom
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
                ..Company::default()
            })
        };
        let close = company(
            "2.10",
            &[
                ("cf_code", json!("2.10")),
                ("cf_budget", json!(1000)),
                ("cf_spend", json!(199_900)),
            ],
        );
        let hs = company(
            "2.10",
            &[
                ("code", json!("2.10")),
                ("budget", json!("1000.00")),
                ("spend", json!("1999")),
            ],
        );
        let c = extract(&close, Crm::Close, &cfg).expect("maps");
        let h = extract(&hs, Crm::HubSpot, &cfg).expect("maps");
        assert_eq!(c["description"], json!("2.10"));
        assert_eq!(c["code"], json!("2.10"));
        assert_eq!(h["budget"], json!(1000));
        assert_eq!(h["spend"], json!(1999));
        assert_eq!(c, h, "the same values in both CRMs");
        assert_eq!(hash(&c), hash(&h));
        // A text edit that a number would hide is a change.
        let edited = company(
            "2.1",
            &[
                ("code", json!("2.1")),
                ("budget", json!("1000")),
                ("spend", json!("1999.0")),
            ],
        );
        let e = extract(&edited, Crm::HubSpot, &cfg).expect("maps");
        assert_ne!(hash(&e), hash(&h));
        assert_eq!(e["description"], json!("2.1"));
        assert_eq!((&e["budget"], &e["spend"]), (&h["budget"], &h["spend"]));
    }

    #[test]
    fn a_base_stored_as_a_number_before_types_counts_as_the_same_text() {
        let now: FieldMap = [(Field::new("code"), json!("2.10"))].into();
        let mut base: FieldMap = [
            (Field::new("code"), json!(2.1)),
            (Field::new("other"), json!(3)),
        ]
        .into();
        upgrade_base(&mut base, &now);
        assert_eq!(base["code"], json!("2.10"));
        assert_eq!(base["other"], json!(3));
        let mut changed: FieldMap = [(Field::new("code"), json!(2.5))].into();
        upgrade_base(&mut changed, &now);
        assert_eq!(
            changed["code"],
            json!(2.5),
            "a different number stays a change"
        );
    }

    #[test]
    fn the_hash_is_sha256_of_the_compact_json_and_ignores_number_forms_order_and_padding() {
        let mut a = FieldMap::new();
        a.insert(
            "name".into(),
            canonical(&json!("  Acme "), FieldType::Text).unwrap(),
        );
        a.insert(
            "amount".into(),
            canonical(&json!(1.0), FieldType::Number).unwrap(),
        );
        let mut b = FieldMap::new();
        b.insert(
            "amount".into(),
            canonical(&json!("1"), FieldType::Number).unwrap(),
        );
        b.insert(
            "name".into(),
            canonical(&json!("Acme"), FieldType::Text).unwrap(),
        );
        assert_eq!(hash(&a), hash(&b));
        // Pinned: the stored hashes of existing links depend on these exact bytes.
        let want = Sha256::digest(br#"{"amount":1,"name":"Acme"}"#);
        assert_eq!(hash(&a).as_str(), hex::encode(&want[..16]));
        assert_eq!(
            hash(&FieldMap::new()).as_str(),
            hex::encode(&Sha256::digest(b"{}")[..16])
        );
        b.insert("amount".into(), json!(1.5));
        assert_ne!(hash(&a), hash(&b));
        // Text that must be escaped (in keys and values), text serde_json passes through
        // raw (DEL, U+2028, non-ASCII), lists and objects: the same bytes as serde_json
        // writes for the map as it was stored before field lists, a BTreeMap of strings.
        let pairs = [
            ("quote\"d", json!("say \"hi\"")),
            ("path\\", json!("C:\\dir\\f")),
            (
                "ctl\u{0}\u{1f}",
                json!("tab\there\nnew\u{0}\u{1}x\u{1f}\u{7f}"),
            ),
            ("sep\u{2028}", json!("line\u{2028}para\u{2029}")),
            ("utf", json!("Zürich — 東京 🚀")),
            // Escapes past the first 16-byte block the scan reads at once.
            (
                "long",
                json!("seventeen bytes..\" then a quote, and a tab\tin the third block"),
            ),
            ("list", json!(["a", "b\"c", 1, 2.5])),
            ("obj", json!({"k": "v", "n": null, "t": true})),
        ];
        let odd: FieldMap = pairs
            .iter()
            .map(|(k, v)| (Field::intern(k), v.clone()))
            .collect();
        let reference: BTreeMap<String, Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let want = Sha256::digest(serde_json::to_vec(&reference).unwrap());
        assert_eq!(hash(&odd).as_str(), hex::encode(&want[..16]));
        // Each value alone too, so one escape cannot hide behind another.
        for (k, v) in &pairs {
            let one: FieldMap = [(Field::intern(k), v.clone())].into();
            let reference = BTreeMap::from([(k.to_string(), v.clone())]);
            let want = Sha256::digest(serde_json::to_vec(&reference).unwrap());
            assert_eq!(hash(&one).as_str(), hex::encode(&want[..16]), "{k}");
        }
    }

    #[test]
    fn trimming_agrees_with_the_standard_form() {
        for s in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\ta\n",
            "Acme",
            "\u{a0}Acme",
            "Acme\u{3000}",
            "\u{85}x",
            "Zürich",
            "ÉCOLE",
            "\u{2028}",
            "x\u{2029}",
            "AcMe.COM",
            "İstanbul",
        ] {
            assert_eq!(trim(s), s.trim(), "{s:?}");
        }
    }

    #[test]
    fn a_hash_is_its_first_four_words_in_hex_digits() {
        let state = [
            0x0123_4567,
            0x89ab_cdef,
            0xfedc_ba98,
            0x7654_3210,
            1,
            2,
            3,
            4,
        ];
        assert_eq!(
            FieldsHash::of_state(&state).as_str(),
            "0123456789abcdeffedcba9876543210"
        );
        for w in [0, 9, 10, 15, 0x9a9a_9a9a, 0xafaf_0909, u32::MAX] {
            let want = format!("{w:08x}{:08x}{w:08x}{:08x}", !w, w.rotate_left(4));
            let state = [w, !w, w, w.rotate_left(4), 0, 0, 0, 0];
            assert_eq!(FieldsHash::of_state(&state).as_str(), want);
        }
    }

    #[test]
    fn the_hash_pads_every_length_as_sha256_does() {
        // JSON of every length from 8 to 207 bytes: the padding's one bit, zeros and
        // length land in the message's last block or a block of their own (55, 56, 63, 64
        // bytes and their next-block twins among them).
        for n in 0..200 {
            let m: FieldMap = [(Field::new("v"), json!("x".repeat(n)))].into();
            let json = serde_json::to_vec(&m).unwrap();
            assert_eq!(json.len(), n + 8);
            let want = Sha256::digest(&json);
            assert_eq!(
                hash(&m).as_str(),
                hex::encode(&want[..16]),
                "{} bytes",
                json.len()
            );
        }
        // Long values, past the buffer kept between records, and a short one after them
        // (the buffer dropped and grown again): the hashes, not the buffer's keeping.
        for n in [HASH_BUFFER_KEPT - 80, HASH_BUFFER_KEPT - 10, 70_000, 3] {
            let m: FieldMap = [(Field::new("v"), json!("é".repeat(n / 2)))].into();
            let want = Sha256::digest(serde_json::to_vec(&m).unwrap());
            assert_eq!(hash(&m).as_str(), hex::encode(&want[..16]), "{n}");
        }
        assert_eq!(
            hash(&FieldMap::new()).as_str(),
            "44136fa355b3678a1146ad16f7e8649e"
        );
    }

    #[test]
    fn the_escape_scan_finds_every_byte_json_escapes_wherever_it_sits() {
        // Every byte value at every place of two words and a tail, among bytes that need no
        // escape on either side (multi-byte UTF-8 lead bytes included), against the rule.
        for len in [1, 2, 5, 7, 8, 9, 15, 16, 19] {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut text = vec![b'a'; len];
                    text[0] = 0xc3;
                    text[at] = b;
                    let want = b == b'"' || b == b'\\' || b < 0x20;
                    assert_eq!(needs_escape(&text), want, "byte {b:#x} at {at} of {len}");
                }
            }
        }
        assert!(!needs_escape(b""));
    }

    #[test]
    fn conversions_round_trip() {
        assert_eq!(cents_to_decimal(1999), 19.99);
        assert_eq!(decimal_to_cents(19.99), Some(1999));
        assert_eq!(decimal_to_cents(0.005), Some(1));
        assert_eq!(decimal_to_cents(f64::NAN), None);
        assert_eq!(probability_to_confidence(0.25), Some(25));
        assert_eq!(probability_to_confidence(1.5), None);
        assert_eq!(confidence_to_probability(40), 0.4);
    }

    #[test]
    fn deals_extract_and_apply_through_the_stage_map_and_units() {
        let mut cfg = Config::new(vec![Crm::Close, Crm::HubSpot]).deal;
        cfg.custom.insert(
            "budget".into(),
            CustomField {
                close: Some("custom.cf_budget".into()),
                hubspot: Some("budget".into()),
                salesforce: None,
                units: [(Crm::Close, Unit::Cents)].into(),
                kind: None,
            },
        );
        let mut close = Deal {
            id: Some("oppo_1".into()),
            name: " Big deal ".into(),
            amount: Some(Money::new(150_050, "usd")),
            stage_id: Some("Opportunity".into()),
            confidence: Some(40),
            ..Deal::default()
        };
        close.custom.insert("cf_budget".into(), json!(250_000));
        let close = Record::Deal(close);
        let m = extract(&close, Crm::Close, &cfg).expect("maps");
        assert_eq!(m["name"], json!("Big deal"));
        assert_eq!(m["amount"], json!(1500.5));
        assert_eq!(m["currency"], json!("USD"));
        assert_eq!(m["stage"], json!("Demo"));
        assert_eq!(m["budget"], json!(2500));

        let mut hs = blank(ObjectKind::Deal);
        let changes = m.iter().map(|(k, v)| (*k, Some(v.clone()))).collect();
        apply(&mut hs, Crm::HubSpot, &cfg, &changes).expect("applies");
        let Record::Deal(d) = &hs else { panic!() };
        assert_eq!(d.stage_id.as_deref(), Some("presentationscheduled"));
        assert_eq!(d.amount, Some(Money::new(150_050, "USD")));
        assert_eq!(d.custom["budget"], json!(2500));
        assert_eq!(extract(&hs, Crm::HubSpot, &cfg).expect("maps"), m);

        let mut odd = close.clone();
        if let Record::Deal(d) = &mut odd {
            d.stage_id = Some("stat_unknown".into());
        }
        let e = extract(&odd, Crm::Close, &cfg).expect_err("unmapped");
        assert!(e.to_string().contains("stat_unknown"), "{e}");
        assert!(e.to_string().contains("oppo_1"), "{e}");
        cfg.pipelines.get_mut("default").unwrap().fallback = Some("New".into());
        assert_eq!(
            extract(&odd, Crm::Close, &cfg).unwrap()["stage"],
            json!("New")
        );
    }

    #[test]
    fn clearing_a_field_and_a_custom_field_is_explicit() {
        let mut cfg = Config::new(vec![Crm::Close, Crm::HubSpot]).company;
        cfg.custom.insert(
            "tier".into(),
            CustomField {
                close: Some("custom.cf_tier".into()),
                hubspot: Some("tier".into()),
                ..CustomField::default()
            },
        );
        let mut r = Record::Company(Company {
            name: "Acme".into(),
            url: Some("https://acme.com".into()),
            ..Company::default()
        });
        let changes = [(Field::new("url"), None), (Field::new("tier"), None)].into();
        apply(&mut r, Crm::Close, &cfg, &changes).expect("applies");
        let Record::Company(c) = &r else { panic!() };
        assert_eq!(c.url, None);
        assert_eq!(c.custom.get("cf_tier"), Some(&Value::Null));
    }
}
