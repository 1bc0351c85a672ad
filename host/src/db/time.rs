//! Moments as the database keeps them (unix milliseconds, `BIGINT`) and as the API shows them (RFC 3339).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A moment: stored as unix milliseconds, shown as RFC 3339 with milliseconds and `Z`
/// (`2026-11-22T07:26:05.265Z`). Columns of this type decode straight into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct Timestamp(i64);

/// `2026-11-22T07:26:05.265Z`: always milliseconds, always UTC.
const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

impl Timestamp {
    /// Now.
    pub fn now() -> Timestamp {
        Timestamp(now_ms())
    }

    /// From unix milliseconds.
    pub fn from_ms(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    /// As unix milliseconds.
    pub fn ms(self) -> i64 {
        self.0
    }

    /// Read an RFC 3339 time (any offset).
    pub fn parse(text: &str) -> Option<Timestamp> {
        OffsetDateTime::parse(text.trim(), &Rfc3339)
            .ok()
            .map(|t| Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64))
    }

    /// The moment as a `time` value (UTC); `None` beyond the years `time` can represent.
    pub fn to_datetime(self) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000).ok()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The arithmetic this replaced measured within run-to-run noise of the users list (docs/BENCHMARKS.md).
        match self.to_datetime().and_then(|t| t.format(FORMAT).ok()) {
            Some(text) => f.write_str(&text),
            None => write!(f, "{}", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(de)?;
        Timestamp::parse(&text).ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 time"))
    }
}

impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "date-time"})
    }
}

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Unix milliseconds as RFC 3339 (see [`Timestamp`]).
pub fn rfc3339(ms: i64) -> String {
    Timestamp(ms).to_string()
}

#[cfg(test)]
mod tests {
    use super::Timestamp;

    #[test]
    fn prints_and_reads_rfc3339() {
        assert_eq!(Timestamp::from_ms(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp::from_ms(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_ms(1_795_332_365_265).to_string(),
            "2026-11-22T07:26:05.265Z"
        );
        assert_eq!(
            Timestamp::parse("2026-11-22T08:26:05.265+01:00"),
            Some(Timestamp::from_ms(1_795_332_365_265))
        );
        assert_eq!(Timestamp::parse("yesterday"), None);
        assert_eq!(
            serde_json::to_string(&Timestamp::from_ms(1_795_332_365_265)).unwrap(),
            "\"2026-11-22T07:26:05.265Z\""
        );
    }
}
