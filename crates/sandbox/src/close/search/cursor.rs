//! Search cursors: how many results were returned so far and where the walk resumes, so a
//! next page never rescans from the start.

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

/// A cursor: how many results were returned so far, and where to resume.
pub(super) fn encode(returned: usize, at: &Resume) -> String {
    match at {
        Resume::Seq(s) => format!("sbx2.{returned}.s.{s}"),
        Resume::Time(t, id) => format!("sbx2.{returned}.t.{t}.{id}"),
        Resume::Offset(o) => format!("sbx2.{returned}.o.{o}"),
    }
}

/// Reads a cursor; a forged one is `None`. A count of results already returned above
/// `MAX_RETURNED` cannot come from a real walk, so it is refused rather than carried into
/// arithmetic.
pub(super) fn decode(cursor: &str) -> Option<(usize, Resume)> {
    let mut parts = cursor.strip_prefix("sbx2.")?.splitn(3, '.');
    let returned: usize = parts.next()?.parse().ok()?;
    if returned > MAX_RETURNED {
        return None;
    }
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
    Some((returned, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for at in [
            Resume::Seq(7),
            Resume::Offset(3),
            Resume::Time(-5, "lead_a.b".into()),
        ] {
            assert_eq!(decode(&encode(12, &at)), Some((12, at)));
        }
        assert_eq!(decode("sbx2.1.x.1"), None);
        assert_eq!(decode("nonsense"), None);
    }

    #[test]
    fn hostile_cursors_are_refused_or_bounded() {
        let max = u64::MAX;
        for c in [
            format!("sbx2.{max}.s.0"),
            format!("sbx2.{}.s.0", MAX_RETURNED + 1),
            "sbx2.-1.s.0".to_string(),
            "sbx2.1.t.x.lead_a".to_string(),
            "sbx2.1.o.-3".to_string(),
            "sbx2..s.".to_string(),
        ] {
            assert_eq!(decode(&c), None, "{c}");
        }
        assert_eq!(
            decode(&format!("sbx2.1.s.{max}")),
            Some((1, Resume::Seq(max)))
        );
        assert_eq!(
            decode(&format!("sbx2.1.t.{}.", i64::MIN)),
            Some((1, Resume::Time(i64::MIN, String::new())))
        );
    }
}
