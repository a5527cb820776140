//! Search cursors: how many results were returned so far, which sort they follow and where
//! the walk resumes, so a next page never rescans from the start and a cursor reused with
//! another sort is refused instead of read against the wrong order.

/// The most results a cursor may claim were returned: far more than any table the sandbox
/// holds, and far from `usize::MAX`, so adding a page to it cannot overflow.
const MAX_RETURNED: usize = 1 << 40;

/// Where the walk resumes.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Resume {
    /// After this insertion sequence number.
    Seq(u64),
    /// After this place in a time index.
    Time(i64, String),
    /// After this many sorted matches.
    Offset(usize),
}

/// A decoded cursor.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cursor {
    /// How many results were returned before it.
    pub returned: usize,
    /// The tag of the sort the pages follow (see `search::order`).
    pub sort: u64,
    /// Where to resume.
    pub at: Resume,
}

/// A cursor: how many results were returned so far, under which sort, and where to resume.
pub(super) fn encode(returned: usize, sort: u64, at: &Resume) -> String {
    match at {
        Resume::Seq(s) => format!("sbx3.{returned}.{sort:x}.s.{s}"),
        Resume::Time(t, id) => format!("sbx3.{returned}.{sort:x}.t.{t}.{id}"),
        Resume::Offset(o) => format!("sbx3.{returned}.{sort:x}.o.{o}"),
    }
}

/// Reads a cursor; a forged one is `None`. A count of results already returned above
/// `MAX_RETURNED` cannot come from a real walk, so it is refused rather than carried into
/// arithmetic.
pub(super) fn decode(cursor: &str) -> Option<Cursor> {
    let mut parts = cursor.strip_prefix("sbx3.")?.splitn(4, '.');
    let returned: usize = parts.next()?.parse().ok()?;
    if returned > MAX_RETURNED {
        return None;
    }
    let sort = u64::from_str_radix(parts.next()?, 16).ok()?;
    let kind = parts.next()?;
    let rest = parts.next()?;
    let at = match kind {
        "s" => Resume::Seq(rest.parse().ok()?),
        "o" => Resume::Offset(rest.parse().ok()?),
        "t" => {
            let (t, id) = rest.split_once('.')?;
            Resume::Time(t.parse().ok()?, id.to_string())
        }
        _ => return None,
    };
    Some(Cursor { returned, sort, at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(returned: usize, sort: u64, at: Resume) -> Option<Cursor> {
        Some(Cursor { returned, sort, at })
    }

    #[test]
    fn cursors_round_trip() {
        for at in [
            Resume::Seq(7),
            Resume::Offset(3),
            Resume::Time(-5, "lead_a.b".into()),
        ] {
            for sort in [0, 0xabc, u64::MAX] {
                assert_eq!(decode(&encode(12, sort, &at)), cursor(12, sort, at.clone()));
            }
        }
        assert_eq!(decode("sbx3.1.0.x.1"), None);
        assert_eq!(decode("sbx3.1.zz.s.1"), None);
        assert_eq!(decode("sbx2.1.s.1"), None);
        assert_eq!(decode("nonsense"), None);
    }

    #[test]
    fn hostile_cursors_are_refused_or_bounded() {
        let max = u64::MAX;
        for c in [
            format!("sbx3.{max}.0.s.0"),
            format!("sbx3.{}.0.s.0", MAX_RETURNED + 1),
            "sbx3.-1.0.s.0".to_string(),
            "sbx3.1.0.t.x.lead_a".to_string(),
            "sbx3.1.0.o.-3".to_string(),
            "sbx3.1.-1.s.0".to_string(),
            format!("sbx3.1.1{max:x}.s.0"),
            "sbx3..0.s.".to_string(),
        ] {
            assert_eq!(decode(&c), None, "{c}");
        }
        assert_eq!(
            decode(&format!("sbx3.1.0.s.{max}")),
            cursor(1, 0, Resume::Seq(max))
        );
        assert_eq!(
            decode(&format!("sbx3.1.0.t.{}.", i64::MIN)),
            cursor(1, 0, Resume::Time(i64::MIN, String::new()))
        );
    }
}
