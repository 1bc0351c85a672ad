//! SCIM filters (RFC 7644 §3.4.2.2), the part Aula answers: comparisons joined by `and`, as identity
//! providers send them to find one resource (`userName eq "alice@example.com"`). Value filters inside PATCH
//! paths (`emails[type eq "work"]`) use the same grammar.

use super::ScimError;
use serde_json::Value;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Pr,
    Gt,
    Ge,
    Lt,
    Le,
}

/// One comparison: `attribute op value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The attribute path as written (`userName`, `emails.value`, `urn:…:User:employeeNumber`).
    pub attribute: String,
    /// The operator.
    pub op: Op,
    /// The value compared with (`Null` for `pr`).
    pub value: Value,
}

/// Most comparisons in one filter.
const MAX_TERMS: usize = 10;

/// Parse a filter of comparisons joined by `and`.
pub fn parse(text: &str) -> Result<Vec<Comparison>, ScimError> {
    if text.len() > 1000 {
        return Err(ScimError::invalid_filter("the filter is longer than 1000 characters"));
    }
    let tokens = tokenize(text)?;
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let attribute = match tokens.get(i) {
            Some(Token::Word(w)) if !is_keyword(w) => w.clone(),
            Some(Token::Word(w)) => {
                return Err(ScimError::invalid_filter(format!(
                    "{w:?} is not supported here: Aula answers comparisons joined by `and`"
                )));
            }
            _ => return Err(ScimError::invalid_filter("a filter starts with an attribute name")),
        };
        let op = match tokens.get(i + 1) {
            Some(Token::Word(w)) => {
                parse_op(w).ok_or_else(|| ScimError::invalid_filter(format!("{w:?} is not a comparison operator")))?
            }
            _ => return Err(ScimError::invalid_filter(format!("{attribute} needs an operator"))),
        };
        let value = if op == Op::Pr {
            i += 2;
            Value::Null
        } else {
            let value = match tokens.get(i + 2) {
                Some(Token::Str(s)) => Value::String(s.clone()),
                Some(Token::Word(w)) => literal(w)
                    .ok_or_else(|| ScimError::invalid_filter(format!("{w:?} is not a value; quote strings")))?,
                None => return Err(ScimError::invalid_filter(format!("{attribute} needs a value"))),
            };
            i += 3;
            value
        };
        out.push(Comparison { attribute, op, value });
        if out.len() > MAX_TERMS {
            return Err(ScimError::invalid_filter(format!("at most {MAX_TERMS} comparisons")));
        }
        match tokens.get(i) {
            None => return Ok(out),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("and") => i += 1,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("or") || w.eq_ignore_ascii_case("not") => {
                return Err(ScimError::invalid_filter(format!(
                    "{w:?} is not supported: Aula answers comparisons joined by `and`"
                )));
            }
            Some(_) => return Err(ScimError::invalid_filter("comparisons are joined by `and`")),
        }
    }
}

/// Does `value` (an attribute's value) satisfy the comparison's operator and value? Texts compare without
/// regard to case, as SCIM's `caseExact: false` attributes do.
pub fn matches(op: Op, have: Option<&Value>, want: &Value) -> bool {
    let Some(have) = have.filter(|v| !v.is_null()) else {
        return false;
    };
    match (op, have, want) {
        (Op::Pr, _, _) => true,
        (_, Value::String(a), Value::String(b)) => {
            let (a, b) = (a.to_lowercase(), b.to_lowercase());
            match op {
                Op::Eq => a == b,
                Op::Ne => a != b,
                Op::Co => a.contains(&b),
                Op::Sw => a.starts_with(&b),
                Op::Ew => a.ends_with(&b),
                Op::Gt => a > b,
                Op::Ge => a >= b,
                Op::Lt => a < b,
                Op::Le => a <= b,
                Op::Pr => true,
            }
        }
        (Op::Eq, a, b) => a == b,
        (Op::Ne, a, b) => a != b,
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
}

fn is_keyword(w: &str) -> bool {
    ["and", "or", "not"].iter().any(|k| w.eq_ignore_ascii_case(k))
}

fn parse_op(w: &str) -> Option<Op> {
    Some(match w.to_ascii_lowercase().as_str() {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "co" => Op::Co,
        "sw" => Op::Sw,
        "ew" => Op::Ew,
        "pr" => Op::Pr,
        "gt" => Op::Gt,
        "ge" => Op::Ge,
        "lt" => Op::Lt,
        "le" => Op::Le,
        _ => return None,
    })
}

fn literal(w: &str) -> Option<Value> {
    match w.to_ascii_lowercase().as_str() {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        "null" => Some(Value::Null),
        _ => w.parse::<serde_json::Number>().ok().map(Value::Number),
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, ScimError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            // A JSON string: read it up to its closing quote, escapes and all, and let JSON decode it.
            let mut raw = String::from('"');
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                raw.push(c);
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        raw.push(n);
                    }
                } else if c == '"' {
                    closed = true;
                    break;
                }
            }
            if !closed {
                return Err(ScimError::invalid_filter("a quoted value is not closed"));
            }
            let s: String = serde_json::from_str(&raw)
                .map_err(|_| ScimError::invalid_filter(format!("{raw} is not a valid string")))?;
            tokens.push(Token::Str(s));
        } else if c == '(' || c == ')' || c == '[' || c == ']' {
            return Err(ScimError::invalid_filter(format!(
                "{c:?}: grouping is not supported; Aula answers comparisons joined by `and`"
            )));
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '"' || c == '(' || c == ')' || c == '[' || c == ']' {
                    break;
                }
                w.push(c);
                chars.next();
            }
            tokens.push(Token::Word(w));
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn comparisons_joined_by_and() {
        let f = parse(r#"userName eq "Alice@Example.com" and active eq true"#).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].attribute, "userName");
        assert_eq!(f[0].op, Op::Eq);
        assert_eq!(f[0].value, json!("Alice@Example.com"));
        assert_eq!(f[1].value, json!(true));
        let f = parse(r#"emails[type eq "work"]"#);
        assert!(f.is_err());
        let f = parse("title pr").unwrap();
        assert_eq!(f[0].op, Op::Pr);
        let f = parse(r#"displayName eq "say \"hi\"""#).unwrap();
        assert_eq!(f[0].value, json!("say \"hi\""));
    }

    #[test]
    fn what_is_not_answered_is_named() {
        for (filter, named) in [
            (r#"userName eq "a" or userName eq "b""#, "\"or\""),
            (r#"not (userName eq "a")"#, "grouping"),
            (r#"userName eq "a" and not active eq true"#, "\"not\""),
            (r#"userName eq "a"#, "not closed"),
            ("userName eq", "needs a value"),
            (r#"userName is "a""#, "\"is\""),
            ("userName eq bare", "\"bare\""),
        ] {
            let e = parse(filter).unwrap_err();
            assert_eq!(e.scim_type, Some("invalidFilter"), "{filter}");
            assert!(e.detail.contains(named), "{filter}: {}", e.detail);
        }
    }

    #[test]
    fn matching_ignores_case_of_texts() {
        assert!(matches(Op::Eq, Some(&json!("Work")), &json!("work")));
        assert!(matches(Op::Sw, Some(&json!("alice@x.test")), &json!("ALICE")));
        assert!(!matches(Op::Eq, None, &json!("x")));
        assert!(matches(Op::Eq, Some(&json!(true)), &json!(true)));
        assert!(!matches(Op::Gt, Some(&json!(1)), &json!(0)));
    }
}
