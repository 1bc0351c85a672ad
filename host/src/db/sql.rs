//! A small builder for statements whose shape depends on the request (filters, scope).

use super::Backend;
use sqlx::Arguments;
use sqlx::any::AnyArguments;
use std::borrow::Cow;

/// A value bound to a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// Text.
    Text(String),
    /// A 64-bit integer.
    Int(i64),
    /// A float.
    Real(f64),
    /// SQL NULL, typed as text.
    Null,
    /// SQL NULL typed as an integer (PostgreSQL refuses a text-typed NULL in a BIGINT column of a VALUES row).
    NullInt,
}

impl Arg {
    /// An integer or an integer-typed NULL.
    pub fn int(v: Option<i64>) -> Arg {
        v.map_or(Arg::NullInt, Arg::Int)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_owned())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl<T: Into<Arg>> From<Option<T>> for Arg {
    fn from(v: Option<T>) -> Self {
        v.map_or(Arg::Null, Into::into)
    }
}

/// SQL text plus its arguments; `push_bind` numbers placeholders as `$n`.
///
/// A statement for a [`super::TenantTx`] starts with `Sql::tenant()`, which reserves `$1` for the tenant.
#[derive(Debug, Clone, Default)]
pub struct Sql {
    text: String,
    args: Vec<Arg>,
    reserved: usize,
}

impl Sql {
    /// A statement whose `$1` is the tenant; the first `push_bind` becomes `$2`.
    pub fn tenant(text: &str) -> Sql {
        Sql {
            text: text.to_owned(),
            args: Vec::new(),
            reserved: 1,
        }
    }

    /// A statement without a reserved tenant argument.
    pub fn plain(text: &str) -> Sql {
        Sql {
            text: text.to_owned(),
            args: Vec::new(),
            reserved: 0,
        }
    }

    /// Append SQL text.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Append a placeholder for `value`.
    pub fn push_bind(&mut self, value: impl Into<Arg>) -> &mut Self {
        self.args.push(value.into());
        let n = self.args.len() + self.reserved;
        self.text.push('$');
        self.text.push_str(&n.to_string());
        self
    }

    /// Append placeholders for each value, comma-separated (the inside of an `IN (…)`).
    pub fn push_list<'a>(&mut self, values: impl IntoIterator<Item = &'a str>) -> &mut Self {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.push_bind(value);
        }
        self
    }

    /// Append `($1, v1, v2, …), (…)` for a multi-row insert whose first column is the tenant. Large batches
    /// go in one statement each: on SQLite every statement is a round trip to its worker thread.
    pub fn push_rows(&mut self, rows: &[Vec<Arg>]) -> &mut Self {
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push("($1");
            for value in row {
                self.push(", ").push_bind(value.clone());
            }
            self.push(")");
        }
        self
    }

    /// Register `value` and return its placeholder (`$n`) without appending it.
    pub fn bind(&mut self, value: impl Into<Arg>) -> String {
        self.args.push(value.into());
        format!("${}", self.args.len() + self.reserved)
    }

    /// The same statement placed between `prefix` and `suffix` (as a subquery), with the same arguments.
    pub fn wrap(&self, prefix: &str, suffix: &str) -> Sql {
        Sql {
            text: format!("{prefix}{}{suffix}", self.text),
            args: self.args.clone(),
            reserved: self.reserved,
        }
    }

    /// The SQL text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text and arguments to run on `backend`, with the tenant as `$1` when given. On SQLite the numbered
    /// placeholders become anonymous ones bound in the order they appear ([`positional`]).
    pub(crate) fn prepared<'q>(&self, backend: Backend, tenant: Option<&str>) -> (Cow<'_, str>, AnyArguments<'q>) {
        if backend == Backend::Sqlite {
            let first = usize::from(tenant.is_some());
            if let Some((text, order)) = positional(&self.text, self.args.len() + first) {
                let mut out = AnyArguments::default();
                for n in order {
                    match (n, tenant) {
                        (1, Some(tenant)) => {
                            let _ = out.add(tenant.to_owned());
                        }
                        _ => super::add_arg(&mut out, &self.args[n - 1 - first]),
                    }
                }
                return (Cow::Owned(text), out);
            }
        }
        (Cow::Borrowed(&self.text), super::bind_all(&self.args, tenant))
    }
}

/// `text` with every numbered placeholder (`$7`) outside quotes and comments turned into an anonymous `?`, and
/// the numbers in the order they appear; `None` (keep the numbers) when the text already has a `?` of its own
/// or names a placeholder beyond `count`.
///
/// SQLite finds a numbered placeholder by a linear scan of the statement's placeholders, and the driver asks
/// for every one by number when binding, so binding numbered placeholders costs the square of their count: a
/// 50-row insert binds 500 values. Anonymous placeholders are bound by position.
pub(crate) fn positional(text: &str, count: usize) -> Option<(String, Vec<usize>)> {
    #[derive(PartialEq)]
    enum In {
        Code,
        Quote(u8),
        LineComment,
        BlockComment,
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut order = Vec::new();
    let mut state = In::Code;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match state {
            In::Code => match b {
                b'\'' | b'"' | b'`' | b'[' => state = In::Quote(if b == b'[' { b']' } else { b }),
                b'-' if bytes.get(i + 1) == Some(&b'-') => state = In::LineComment,
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    state = In::BlockComment;
                    i += 1;
                }
                b'?' => return None,
                b'$' => {
                    let digits = bytes[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
                    if digits > 0 {
                        let n: usize = text[i + 1..i + 1 + digits].parse().ok()?;
                        if n == 0 || n > count {
                            return None;
                        }
                        out.push_str(&text[copied..i]);
                        out.push('?');
                        order.push(n);
                        i += digits;
                        copied = i + 1;
                    }
                }
                _ => {}
            },
            In::Quote(end) if b == end => state = In::Code,
            In::LineComment if b == b'\n' => state = In::Code,
            In::BlockComment if b == b'*' && bytes.get(i + 1) == Some(&b'/') => {
                state = In::Code;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    Some((out, order))
}

#[cfg(test)]
mod tests {
    use super::positional;

    #[test]
    fn numbered_placeholders_become_positional() {
        let (text, order) = positional("SELECT $2, $10, $1 FROM t WHERE a = $1 AND b IN ($3, $2)", 10).unwrap();
        assert_eq!(text, "SELECT ?, ?, ? FROM t WHERE a = ? AND b IN (?, ?)");
        assert_eq!(order, vec![2, 10, 1, 1, 3, 2]);
    }

    #[test]
    fn quotes_and_comments_are_left_alone() {
        let sql = "SELECT json_extract(p, '$.a'), 'it''s $2', \"$3\" -- $4\n, /* $5 */ $1";
        let (text, order) = positional(sql, 5).unwrap();
        assert_eq!(
            text,
            "SELECT json_extract(p, '$.a'), 'it''s $2', \"$3\" -- $4\n, /* $5 */ ?"
        );
        assert_eq!(order, vec![1]);
        // A lone `$` is text.
        assert_eq!(positional("SELECT '$' || $1, $", 1).unwrap().0, "SELECT '$' || ?, $");
    }

    #[test]
    fn keeps_the_numbers_when_it_cannot_be_sure() {
        assert!(positional("SELECT ? , $1", 1).is_none(), "a ? of its own");
        assert!(positional("SELECT $2", 1).is_none(), "beyond the arguments");
        assert!(positional("SELECT $0", 1).is_none());
        assert_eq!(positional("SELECT '?', $1", 1).map(|p| p.1), Some(vec![1]));
    }
}
