//! A small builder for statements whose shape depends on the request (filters, scope).

use sqlx::any::AnyArguments;

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

    pub(crate) fn arguments<'q>(&self, tenant: Option<&str>) -> AnyArguments<'q> {
        super::bind_all(&self.args, tenant)
    }
}
